"""Monocular depth maps from user-provided DPT / Depth Anything weights, run through transformers.

A depth model is a folder holding config.json + model.safetensors in the Hugging Face layout (for
example depth-anything/Depth-Anything-V2-Small-hf or Intel/dpt-hybrid-midas), placed by the user
under the models folder; nothing is downloaded.
"""
import json
import os

import torch
import torch.nn.functional as F

from .image_batch import as_rgb_batch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# what each model family's image processor uses when the folder has no preprocessor_config.json
DEFAULT_NORMALIZATION = {"depth_anything": (IMAGENET_MEAN, IMAGENET_STD), "dpt": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


def processor_normalization(folder, model_type):
    """(mean, std) from the folder's preprocessor_config.json (image_mean / image_std, do_normalize), else the
    family's processor default: DPT (Intel/dpt-*) 0.5 / 0.5, Depth Anything ImageNet statistics."""
    mean, std = DEFAULT_NORMALIZATION[model_type]
    path = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            cfg = json.load(f)
        if cfg.get("do_normalize", True) is False:
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"depth model at {folder}: preprocessor_config.json image_mean/image_std must be 3 "
                             f"numbers (std > 0), got {mean} / {std}")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def depth_model_folders(root):
    """Sub-folders of ROOT that look like a transformers depth model (config.json + *.safetensors)."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, "config.json"))
                  and any(f.endswith(".safetensors") for f in os.listdir(os.path.join(root, d))))


def load_depth_model(folder, device="cpu", dtype=torch.float32):
    """Load a DPT / Depth Anything folder with transformers; a clear error names FOLDER when it is not one."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"no depth model installed at {folder}: expected a folder with config.json and model.safetensors "
            "(e.g. depth-anything/Depth-Anything-V2-Small-hf or Intel/dpt-hybrid-midas, downloaded by you)")
    with open(os.path.join(folder, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    if model_type not in ("dpt", "depth_anything"):
        raise ValueError(f"depth model at {folder}: expected model_type 'dpt' or 'depth_anything', got {model_type!r}")
    from transformers import AutoModelForDepthEstimation
    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    model.hicast_normalization = processor_normalization(folder, model_type)
    return model.to(device=device, dtype=dtype).eval()


def patch_multiple(model):
    """The input side must be a multiple of the backbone's patch size (14 for DINOv2, 16 for ViT)."""
    cfg = model.config
    backbone = getattr(cfg, "backbone_config", None)
    return getattr(backbone, "patch_size", None) or getattr(cfg, "patch_size", None) or 16


@torch.no_grad()
def depth_map(model, images, resolution=518, batch_size=4, progress=None):
    """Relative inverse depth, near = white: d = (p - min p) / (max p - min p) per frame (0 for a flat p), at input size.

    Frames are resized (Depth Anything: short side RESOLUTION, aspect kept; DPT, whose ViT wants a square
    token grid: RESOLUTION x RESOLUTION), sides rounded to the patch multiple, ImageNet-normalised, run in
    batches, normalised with the model's processor statistics (model.hicast_normalization, see
    processor_normalization), and the prediction is resized back bicubically.
    """
    images = as_rgb_batch(images, "image")
    b, h, w, _ = images.shape
    m = patch_multiple(model)
    scale = resolution / min(h, w)
    size = (max(m, round(h * scale / m) * m), max(m, round(w * scale / m) * m))
    if model.config.model_type == "dpt":
        size = (size[0], size[0]) if h <= w else (size[1], size[1])
    param = next(model.parameters())
    norm = getattr(model, "hicast_normalization", DEFAULT_NORMALIZATION.get(model.config.model_type,
                                                                             (IMAGENET_MEAN, IMAGENET_STD)))
    mean = torch.tensor(norm[0], device=param.device).view(1, 3, 1, 1)
    std = torch.tensor(norm[1], device=param.device).view(1, 3, 1, 1)
    out = []
    for i in range(0, b, batch_size):
        x = images[i:i + batch_size].to(param.device).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        pred = model(pixel_values=((x - mean) / std).to(param.dtype)).predicted_depth.float()
        pred = F.interpolate(pred[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0]
        lo = pred.amin(dim=(1, 2), keepdim=True)
        hi = pred.amax(dim=(1, 2), keepdim=True)
        span = hi - lo
        out.append(((pred - lo) / torch.where(span > 0, span, torch.ones_like(span))).to(images.device))
        if progress:
            progress(min(i + batch_size, b), b, out[-1][-1, :, :, None].expand(-1, -1, 3))
    return torch.cat(out)[..., None].expand(-1, -1, -1, 3).contiguous()
