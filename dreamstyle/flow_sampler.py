"""A plain Euler sampler for the DreamStyle layout (evaluation of trained models without ComfyUI).

Rectified flow as ComfyUI's CONST sampling: σ from 1 to 0 on Wan's shifted schedule, x ← x + (σ' - σ)·v.
Like ComfyUI's denoise mask, the condition frames (first frame, style image) of the noisy channels are
held at add_noise(z, σ) at every step; the video frames are generated.
"""
import contextlib

import torch

from .condition_latents import model_input
from .flow_matching import add_noise, shift_sigma, timestep


def sample(model, latents, context, clip_fea=None, steps=12, shift=5.0, generator=None, hooks=None,
           frame_types=None, tokens_per_frame=None):
    """Generated latents [B, 16, T, h, w] (all frames; take layout.video_slice for the video)."""
    ref, keep = latents.reference, latents.denoise_mask
    x = torch.randn(ref.shape, generator=generator).to(ref)
    sigmas = shift_sigma(torch.linspace(1, 0, steps + 1, dtype=torch.float64), shift).float()
    for i in range(steps):
        s, s_next = sigmas[i], sigmas[i + 1]
        sig = s.expand(ref.shape[0])
        x = keep * x + (1 - keep) * add_noise(ref, torch.randn(ref.shape, generator=generator).to(ref), sig)
        routing = hooks.routing(frame_types, tokens_per_frame) if hooks is not None else contextlib.nullcontext()
        with torch.no_grad(), routing:
            v = model(model_input(x, latents), timestep(sig), context, clip_fea=clip_fea)
        x = x + (s_next - s) * v.to(x)
    return keep * x + (1 - keep) * ref
