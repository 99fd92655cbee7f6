"""The released CSD checkpoint (Somepalli et al., "Measuring Style Similarity in Diffusion Models") as a
ComfyUI CLIP-vision file.

CSD is OpenAI CLIP ViT-L/14's vision tower (`backbone.*`, its own projection removed) plus two heads,
`last_layer_style` and `last_layer_content` ([width, 768] each); a style embedding is
ln_post(CLS) @ last_layer_style, compared by cosine (DreamStyle keeps CT pairs with CSD > 0.5). That is
exactly OpenAI CLIP's image embedding with `proj` replaced by the head, so the conversion writes the
backbone under `visual.` with the chosen head as `visual.proj`: ComfyUI's stock CLIPVisionLoader converts
those keys itself (clip_vision.convert_to_transformers), detects ViT-L, and its CLIP_VISION `image_embeds`
are the CSD embeddings.

The .pth is read with torch.load(weights_only=True): tensors and plain containers only (the checkpoint's
argparse.Namespace of training arguments is the one class allowed); a pickle that would run code is refused.
"""
import argparse
import os

import torch

HEADS = ("style", "content")
_PREFIXES = ("module.", "model.")


def read_pth(path):
    """The object in the .pth at PATH, unpickled with weights_only=True (argparse.Namespace allowed)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _state_dict(obj):
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of tensors (or one under 'model_state_dict'), got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def csd_to_clip_vision(obj, head="style"):
    """OpenAI-layout CLIP-vision tensors (`visual.*`, `visual.proj` = the CSD HEAD) from a CSD checkpoint."""
    if head not in HEADS:
        raise ValueError(f"head: expected one of {HEADS}, got {head!r}")
    sd = _state_dict(obj)
    head_key = f"last_layer_{head}"
    if "backbone.transformer.resblocks.0.attn.in_proj_weight" not in sd or head_key not in sd:
        raise ValueError(f"not a CSD checkpoint: expected backbone.transformer.resblocks.* and {head_key}, "
                         f"got keys like {sorted(sd)[:4]}")
    width = sd["backbone.ln_post.weight"].shape[0]
    proj = sd[head_key]
    if proj.ndim != 2 or proj.shape[0] != width:
        raise ValueError(f"{head_key}: expected [{width}, D] for a backbone of width {width}, got {list(proj.shape)}")
    out = {"visual." + k[len("backbone."):]: v.contiguous() for k, v in sd.items()
           if k.startswith("backbone.") and k != "backbone.proj"}
    out["visual.proj"] = proj.contiguous()
    return out


def convert(src, dst, head="style", overwrite=False):
    """Write the CSD checkpoint SRC as the ComfyUI CLIP-vision safetensors DST; returns the tensor count."""
    from safetensors.torch import save_file
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} already exists; choose a new name or pass --overwrite")
    tensors = csd_to_clip_vision(read_pth(src), head)
    layers = sum(1 for k in tensors if k.endswith(".attn.in_proj_weight"))
    tmp = dst + ".tmp"
    save_file(tensors, tmp, metadata={"source": "CSD", "head": head, "layers": str(layers)})
    os.replace(tmp, dst)
    return len(tensors)
