"""DreamStyle's unified condition injection on Wan2.1-I2V's 36 input channels
([16 noisy latent | 4 mask | 16 condition latent], concatenated channel-wise, ⊕c).

  original video:   z^v_t   = add_noise(z^sty, t) ⊕c 0^{4×F×H×W} ⊕c z^raw
  first frame:      z^1st_t = add_noise(z^1st, t) ⊕c 1^{4×1×H×W} ⊕c z^1st   (prepended frame-wise)
  style image:      z^s_t   = add_noise(z^s, t)   ⊕c 1^{4×1×H×W} ⊕c z^s     (appended frame-wise)
  model input:      z^1st_t ⊕f z^v_t ⊕f z^s_t

The sampler owns add_noise: `reference` holds the clean latents it noises (z^1st, z^s; zeros where the
video will be generated) and `denoise_mask` says which frames it generates (1) and which it holds at
add_noise(z, t) at every step (0). Text goes through the model's own cross-attention, unchanged; the
style image's CLIP-vision features through its image branch.
"""
from dataclasses import dataclass

import torch

from .layout import FrameLayout
from .video_padding import round_up, wan_frame_count

LATENT_CHANNELS = 16
MASK_CHANNELS = 4


def plan_layout(frames, height, width, first_frame=False, style_image=False, temporal_stride=4):
    """The layout for a video of `frames` x height x width with the given optional style conditions."""
    padded = wan_frame_count(frames)
    return FrameLayout(first_frame=int(first_frame), video=(padded - 1) // temporal_stride + 1,
                       style_image=int(style_image), pixel_frames=frames, pixel_height=height, pixel_width=width,
                       padded_frames=padded, padded_height=round_up(height), padded_width=round_up(width))


@dataclass
class ConditionLatents:
    reference: torch.Tensor     # [B, 16, T, h, w]  z^1st | 0 | z^s  (what the sampler noises)
    condition: torch.Tensor     # [B, 16, T, h, w]  z^1st | z^raw | z^s
    mask: torch.Tensor          # [B, 4, T, h, w]   1 | 0 | 1  (DreamStyle's mask, as the model sees it)
    denoise_mask: torch.Tensor  # [B, 1, T, h, w]   0 | 1 | 0
    layout: FrameLayout


def _check(name, z, batch, h, w):
    if z.ndim != 5 or z.shape[1] != LATENT_CHANNELS or z.shape[2] != 1 or tuple(z.shape[-2:]) != (h, w):
        raise ValueError(f"{name} latent: expected [B, {LATENT_CHANNELS}, 1, {h}, {w}], got {list(z.shape)}")
    if z.shape[0] not in (1, batch):
        raise ValueError(f"{name} latent: batch {z.shape[0]} does not match the video's batch {batch}")
    return z.expand(batch, -1, -1, -1, -1)


def condition_latents(layout, z_raw, z_first=None, z_style=None):
    """Assemble the DreamStyle latents for one sampling call from VAE latents of the raw video
    [B, 16, F, h, w], the stylized first frame and the style image ([1 or B, 16, 1, h, w] each)."""
    if z_raw.ndim != 5 or z_raw.shape[1] != LATENT_CHANNELS:
        raise ValueError(f"video latent: expected [B, {LATENT_CHANNELS}, F, h, w], got {list(z_raw.shape)}")
    if z_raw.shape[2] != layout.video:
        raise ValueError(f"video latent has {z_raw.shape[2]} frames, the layout expects {layout.video}")
    if (z_first is not None) != bool(layout.first_frame) or (z_style is not None) != bool(layout.style_image):
        raise ValueError(f"conditions given (first frame: {z_first is not None}, style image: {z_style is not None}) "
                         f"do not match the layout ({layout.describe()})")
    b, _, _, h, w = z_raw.shape
    ref, cond = [], []
    if z_first is not None:
        z_first = _check("first frame", z_first, b, h, w)
        ref.append(z_first)
        cond.append(z_first)
    ref.append(torch.zeros_like(z_raw))
    cond.append(z_raw)
    if z_style is not None:
        z_style = _check("style image", z_style, b, h, w)
        ref.append(z_style)
        cond.append(z_style)
    per_frame = layout.condition_mask().to(z_raw.device, z_raw.dtype).view(1, 1, -1, 1, 1)
    mask = per_frame.expand(b, MASK_CHANNELS, -1, h, w).contiguous()
    return ConditionLatents(reference=torch.cat(ref, dim=2), condition=torch.cat(cond, dim=2), mask=mask,
                            denoise_mask=(1.0 - per_frame).expand(b, 1, -1, h, w).contiguous(), layout=layout)


def model_input(noisy, latents):
    """The 36-channel model input  noisy ⊕c mask ⊕c condition  (what Wan's patch embedding receives)."""
    return torch.cat([noisy, latents.mask.to(noisy), latents.condition.to(noisy)], dim=1)
