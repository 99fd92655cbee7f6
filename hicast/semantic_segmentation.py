"""Semantic segmentation maps from a user-provided transformers model (e.g. SegFormer trained on ADE20K).

A segmentation model is a folder with config.json + *.safetensors in the Hugging Face layout (for example
nvidia/segformer-b0-finetuned-ade-512-512), placed by the user in models/hicast_seg/; nothing is downloaded.
Each pixel gets the colour of its argmax class: the ADE20K palette (the colour code of segmentation
ControlNets and adapters, class order of ADE20K's 150 labels) for 150-class models, otherwise a fixed
palette of well-spread hues. Normalisation comes from the folder's preprocessor_config.json (SegFormer's
processor default, ImageNet statistics, otherwise).
"""
import colorsys
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from .depth_maps import IMAGENET_MEAN, IMAGENET_STD
from .image_batch import as_rgb_batch, from_uint8

# the ADE20K dataset's colour code (class i -> RGB), the one stock segmentation ControlNets read
ADE20K_PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70), (8,
    255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230,
    250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92),
    (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41), (255,
    5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140), (250, 10, 15), (20,
    255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255),
    (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0,
    255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82,
    255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0), (255, 0, 255),
    (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61), (0,
    71, 255), (255, 0, 204), (0, 255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194,
    255), (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0,
    184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255), (112, 224, 255), (70, 184, 160), (163,
    0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255,
    0), (255, 0, 235), (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204,
    255), (20, 0, 255), (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0,
    133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255)
)


def palette(classes):
    """[classes, 3] uint8: ADE20K's colours for a 150-class model, else evenly spread hues (golden ratio)."""
    if classes == len(ADE20K_PALETTE):
        return np.array(ADE20K_PALETTE, np.uint8)
    return np.array([[round(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.8, 0.95)]
                     for i in range(classes)], np.uint8)


def segmentation_model_folders(root):
    """Sub-folders of ROOT holding a transformers model (config.json + *.safetensors)."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json"))
                  and any(f.endswith(".safetensors") for f in os.listdir(os.path.join(root, d))))


def load_segmentation_model(folder):
    """A transformers semantic-segmentation model from FOLDER (CPU, eval), with its processor normalisation."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"no segmentation model at {folder}: expected a folder with config.json and "
                                "model.safetensors (e.g. nvidia/segformer-b0-finetuned-ade-512-512, downloaded by you)")
    from transformers import AutoModelForSemanticSegmentation
    model = AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    path = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            cfg = json.load(f)
        mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
    model.hicast_normalization = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def semantic_map(model, images, resolution=512, batch_size=4, progress=None):
    """Palette-coloured class map [B, H, W, 3] at the input size: frames resized to RESOLUTION x RESOLUTION
    (SegFormer's processor size), normalised, logits upsampled bilinearly to H x W, argmax per pixel."""
    images = as_rgb_batch(images, "image")
    b, h, w, _ = images.shape
    param = next(model.parameters())
    mean, std = (torch.tensor(v, device=param.device).view(1, 3, 1, 1) for v in model.hicast_normalization)
    colours = torch.from_numpy(palette(model.config.num_labels)).to(param.device)
    out = []
    for i in range(0, b, batch_size):
        x = images[i:i + batch_size].to(param.device).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
        logits = model(pixel_values=((x - mean) / std).to(param.dtype)).logits.float()
        classes = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).argmax(dim=1)
        out.append(colours[classes].cpu().numpy())
        if progress:
            progress(min(i + batch_size, b), b, torch.from_numpy(out[-1][-1]).float() / 255.0)
    return from_uint8(np.concatenate(out), images.device)
