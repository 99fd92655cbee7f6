"""Style encoder E_s (HiCAST): multi-level feature statistics of the style image -> style tokens f_s.

f_s = MLP([mu(phi_1(s)), sigma(phi_1(s)), ..., mu(phi_L(s)), sigma(phi_L(s))]) (+ W_clip e_clip when a
CLIP-vision embedding is given), reshaped to N tokens of the UNet's cross-attention width. The paper uses
VGG-16 for phi; here phi is a small trainable conv trunk shipped inside the encoder file.
The tokens join the cross-attention context: c' = [c ; lambda * f_s] (lambda = style scale).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batching import tile_to_batch


class StyleEncoder(nn.Module):
    def __init__(self, context_dim=768, tokens=4, widths=(32, 64, 128), hidden=256, clip_dim=0, size=224):
        super().__init__()
        self.context_dim, self.tokens, self.widths, self.hidden, self.clip_dim = context_dim, tokens, tuple(widths), hidden, clip_dim
        self.size = size
        chans = (3,) + self.widths
        self.trunk = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1)
                                   for i in range(len(self.widths)))
        self.mlp = nn.Sequential(nn.Linear(2 * sum(self.widths), hidden), nn.SiLU(), nn.Linear(hidden, tokens * context_dim))
        self.clip_proj = nn.Linear(clip_dim, tokens * context_dim) if clip_dim else None

    def config(self):
        return {"context_dim": self.context_dim, "tokens": self.tokens, "widths": list(self.widths),
                "hidden": self.hidden, "clip_dim": self.clip_dim, "size": self.size}

    def forward(self, style, clip_embeds=None):
        """style [B, 3, H, W] 0..1 (resized to size x size) -> f_s [B, tokens, context_dim]."""
        x = F.interpolate(style, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        stats = []
        for conv in self.trunk:
            x = F.relu(conv(x))
            stats += [x.mean(dim=(2, 3)), x.flatten(2).std(dim=2)]
        f = self.mlp(torch.cat(stats, dim=1))
        if clip_embeds is not None:
            if self.clip_proj is None:
                raise ValueError("clip_vision_output: this style encoder was trained without CLIP-vision "
                                 "embeddings (clip_dim 0); leave the input unconnected")
            if clip_embeds.shape[-1] != self.clip_dim:
                raise ValueError(f"clip_vision_output: expected image embeddings of width {self.clip_dim}, "
                                 f"got {clip_embeds.shape[-1]}")
            f = f + self.clip_proj(clip_embeds.to(f))
        return f.view(-1, self.tokens, self.context_dim)


def append_style_tokens(context, style_tokens, scale):
    """c' = [c ; lambda * f_s] along the token axis, f_s tiled over the context batch."""
    s = tile_to_batch(style_tokens.to(context), context.shape[0], "style image")
    return torch.cat([context, scale * s], dim=1)
