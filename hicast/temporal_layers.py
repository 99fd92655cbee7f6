"""Temporal layers for video AST, inserted after each UNet encoder level and zero-initialised.

T(x) = x + W_o Attn_frames(LN(x + p_f)) at every pixel, attention across the F frames of a clip with a
sinusoidal frame position p_f. W_o starts at zero, so the image model is unchanged until training.
"""
import math

import torch
import torch.nn as nn

from .unet_levels import check_widths


def frame_positions(frames, dim, device, dtype):
    """Sinusoidal embedding p_f [F, dim] of the frame index f."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / half)
    ang = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * freqs[None]
    pe = torch.cat([ang.sin(), ang.cos()], dim=1)
    return torch.nn.functional.pad(pe, (0, dim - pe.shape[1])).to(dtype)


class TemporalAttention(nn.Module):
    def __init__(self, channels, heads=8):
        super().__init__()
        heads = math.gcd(channels, heads)
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, frames):
        """x [N * F, C, H, W] with frames contiguous per clip -> same shape."""
        nf, c, h, w = x.shape
        seq = x.view(nf // frames, frames, c, h * w).permute(0, 3, 1, 2).reshape(-1, frames, c)
        y = self.norm(seq + frame_positions(frames, c, x.device, x.dtype))
        y = self.proj_out(self.attn(y, y, y, need_weights=False)[0])
        y = y.view(nf // frames, h * w, frames, c).permute(0, 2, 3, 1).reshape(nf, c, h, w)
        return x + y


class TemporalLayers(nn.Module):
    def __init__(self, channels=(320, 640, 1280, 1280), heads=8):
        super().__init__()
        self.channels, self.heads = tuple(int(c) for c in channels), heads
        self.layers = nn.ModuleList(TemporalAttention(c, heads) for c in self.channels)

    def config(self):
        return {"channels": list(self.channels), "heads": self.heads}


class TemporalInjection:
    """input_block_patch applying level l's temporal layer to each clip in the batch (ComfyUI puts the
    cond/uncond chunks one after the other, each holding the clip's frames); single frames pass untouched."""

    def __init__(self, levels, layers):
        check_widths(levels, layers.channels, "temporal layers")
        self.layers = layers
        self.by_block = {lv.block: l for l, lv in enumerate(levels)}

    def __call__(self, h, transformer_options):
        kind, index = transformer_options["block"]
        if kind != "input" or index not in self.by_block:
            return h
        chunks = len(transformer_options.get("cond_or_uncond", [0])) or 1
        frames = h.shape[0] // chunks
        if frames < 2 or h.shape[0] % chunks:
            return h
        layer = self.layers.layers[self.by_block[index]]
        p = next(layer.parameters())  # where ComfyUI's memory manager loaded it
        return layer(h.to(p.device, p.dtype), frames).to(h.device, h.dtype)
