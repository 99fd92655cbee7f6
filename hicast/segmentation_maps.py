"""Person/background segmentation maps from mediapipe's bundled selfie-segmentation model.

Colour code (ADE20K palette, the one segmentation adapters and ControlNets are trained on):
person = (150, 5, 61), everything else black.
"""
import numpy as np

from .image_batch import as_rgb_batch, from_uint8, to_uint8
from .mediapipe_runtime import solutions

PERSON_RGB = (150, 5, 61)


def person_probability(images, progress=None):
    """Per-pixel person probability [B, H, W] (numpy float32) for an IMAGE batch, frame by frame."""
    frames = to_uint8(as_rgb_batch(images, "image"))
    out = []
    with solutions("segmentation").selfie_segmentation.SelfieSegmentation(model_selection=0) as model:
        for i, f in enumerate(frames):
            out.append(model.process(f).segmentation_mask.astype(np.float32))
            if progress:
                progress(i + 1, len(frames))
    return np.stack(out)


def segmentation_map(images, threshold=0.5, progress=None):
    """Colour-coded map [B, H, W, 3]: PERSON_RGB where p(person) > THRESHOLD, black elsewhere."""
    images = as_rgb_batch(images, "image")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold}")
    mask = person_probability(images, progress) > threshold
    out = np.zeros(mask.shape + (3,), np.uint8)
    out[mask] = PERSON_RGB
    return from_uint8(out, images.device)
