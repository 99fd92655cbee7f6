"""The style set of arbitrary-style training: N style images from an IMAGE batch and/or image files of a folder,
brought to one size so pairs can be batched."""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image_batch import as_rgb_batch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_STYLE_FILES = 10000


def folder_style_images(folder, name="style_folder"):
    """Every image file directly in FOLDER, sorted by name, as [H, W, 3] float 0..1 tensors."""
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(folder, f)))
    if not files:
        raise ValueError(f"{name}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {os.path.basename(folder)}")
    if len(files) > MAX_STYLE_FILES:
        raise ValueError(f"{name}: {len(files)} images, at most {MAX_STYLE_FILES}")
    out = []
    for f in files:
        with Image.open(os.path.join(folder, f)) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0))
    return out


def style_set(size, batches=(), images=()):
    """[N, 3, H, W] 0..1 at SIZE (H, W): every frame of the IMAGE BATCHES and every [h, w, 3] of IMAGES, resized
    (bilinear, antialiased) when its size differs."""
    out = []
    for i, batch in enumerate(batches):
        out += list(as_rgb_batch(batch, "style_images" if i == 0 else f"style_images_{i + 1}"))
    out += list(images)
    if not out:
        raise ValueError("style_images: expected at least one style image")
    resized = [F.interpolate(x.permute(2, 0, 1)[None].float(), size=size, mode="bilinear", align_corners=False,
                             antialias=True)[0] if tuple(x.shape[:2]) != tuple(size) else x.permute(2, 0, 1).float()
               for x in out]
    return torch.stack(resized).clamp(0, 1)
