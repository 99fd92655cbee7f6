"""Style encoder E_s (HiCAST): multi-level feature statistics of the style image -> style tokens f_s.

f_s = MLP([mu(phi_1(s)), sigma(phi_1(s)), ..., mu(phi_L(s)), sigma(phi_L(s))]) (+ W_clip e_clip for an encoder
trained with CLIP-vision features), reshaped to N tokens of the UNet's cross-attention width.
e_clip comes from ComfyUI's CLIP_VISION_OUTPUT, its width read from the input when the encoder is made:
clip_source "image_embeds" (projected embedding: ViT-L/14 768, ViT-H/14 1024) or "penultimate" (mean of the
penultimate hidden states [B, 257, W]: ViT-L/14 1024, ViT-H/14 1280). The paper uses
VGG-16 for phi; here phi is a small trainable conv trunk shipped inside the encoder file.
The tokens join the cross-attention context: c' = [c ; lambda * f_s] (lambda = style scale).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batching import tile_to_batch


CLIP_SOURCES = ("image_embeds", "penultimate")
CLIP_MODELS = {("image_embeds", 768): "ViT-L/14", ("image_embeds", 1024): "ViT-H/14",
               ("penultimate", 1024): "ViT-L/14", ("penultimate", 1280): "ViT-H/14"}


def clip_vision_features(output, source, name="clip_vision_output"):
    """[B, W] features of a CLIP_VISION_OUTPUT (anything indexable by its field names) for SOURCE."""
    if source not in CLIP_SOURCES:
        raise ValueError(f"clip_source: expected one of {CLIP_SOURCES}, got {source!r}")
    key = "image_embeds" if source == "image_embeds" else "penultimate_hidden_states"
    try:
        x = output[key]
    except (KeyError, TypeError, AttributeError):
        x = None
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a CLIP_VISION_OUTPUT with {key}, got none")
    if (source == "image_embeds" and x.ndim != 2) or (source == "penultimate" and x.ndim != 3):
        raise ValueError(f"{name}: {key} has shape {tuple(x.shape)}; expected "
                         f"{'[B, W]' if source == 'image_embeds' else '[B, tokens, W]'}")
    return (x if x.ndim == 2 else x.mean(dim=1)).float()


def describe_clip(source, width):
    return f"{source} of width {width}" + (f" ({CLIP_MODELS[(source, width)]})" if (source, width) in CLIP_MODELS else "")


class StyleEncoder(nn.Module):
    def __init__(self, context_dim=768, tokens=4, widths=(32, 64, 128), hidden=256, clip_dim=0, size=224,
                 clip_source="image_embeds"):
        super().__init__()
        self.context_dim, self.tokens, self.widths, self.hidden, self.clip_dim = context_dim, tokens, tuple(widths), hidden, clip_dim
        self.size, self.clip_source = size, clip_source
        chans = (3,) + self.widths
        self.trunk = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1)
                                   for i in range(len(self.widths)))
        self.mlp = nn.Sequential(nn.Linear(2 * sum(self.widths), hidden), nn.SiLU(), nn.Linear(hidden, tokens * context_dim))
        self.clip_proj = nn.Linear(clip_dim, tokens * context_dim) if clip_dim else None

    def config(self):
        return {"context_dim": self.context_dim, "tokens": self.tokens, "widths": list(self.widths),
                "hidden": self.hidden, "clip_dim": self.clip_dim, "size": self.size, "clip_source": self.clip_source}

    def encode(self, style, clip_output=None):
        """f_s from a style batch and (for CLIP-trained encoders) a CLIP_VISION_OUTPUT of it."""
        p = next(self.parameters())
        style = style.to(p.device, p.dtype)
        if clip_output is None:
            return self(style, None)
        return self(style, clip_vision_features(clip_output, self.clip_source).to(p.device))

    def forward(self, style, clip_embeds=None):
        """style [B, 3, H, W] 0..1 (resized to size x size), clip_embeds [B, clip_dim] -> f_s [B, tokens, context_dim].

        An encoder trained with CLIP features needs them (the tokens would be off-distribution without)."""
        x = F.interpolate(style, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        stats = []
        for conv in self.trunk:
            x = F.relu(conv(x))
            stats += [x.mean(dim=(2, 3)), x.flatten(2).std(dim=2)]
        f = self.mlp(torch.cat(stats, dim=1))
        if clip_embeds is not None and self.clip_proj is None:
            raise ValueError("clip_vision_output: this style encoder was trained without CLIP-vision "
                             "features (clip_dim 0); leave the input unconnected")
        if self.clip_proj is not None:
            if clip_embeds is None:
                raise ValueError(f"clip_vision_output: this style encoder was trained with CLIP-vision "
                                 f"{describe_clip(self.clip_source, self.clip_dim)}; connect a CLIP Vision Encode output")
            if clip_embeds.shape[-1] != self.clip_dim:
                raise ValueError(f"clip_vision_output: expected {describe_clip(self.clip_source, self.clip_dim)}, "
                                 f"got {describe_clip(self.clip_source, clip_embeds.shape[-1])}")
            f = f + self.clip_proj(tile_to_batch(clip_embeds.to(f), f.shape[0], "clip_vision_output"))
        return f.view(-1, self.tokens, self.context_dim)


def append_style_tokens(context, style_tokens, scale):
    """c' = [c ; lambda * f_s] along the token axis, f_s tiled over the context batch."""
    s = tile_to_batch(style_tokens.to(context), context.shape[0], "style image")
    return torch.cat([context, scale * s], dim=1)
