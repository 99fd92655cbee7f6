"""The flow-matching objective of DreamStyle on Wan2.1-I2V (rectified flow, ComfyUI's CONST sampling).

  x_t = (1 - σ) x_0 + σ ε              ComfyUI model_sampling CONST.noise_scaling
  v   = ε - x_0                        what the model predicts (CONST: x_0 = x_t - σ · v)
  σ   = shift·u / (1 + (shift-1)·u)    u ~ U(0, 1): Wan's timestep shift (ComfyUI time_snr_shift)
  t   = 1000 σ                         the timestep the Wan model receives (ModelSamplingDiscreteFlow)

DreamStyle "Loss & Training": the model receives z^v_t, t, z^1st_t, z^s_t and the caption; every
frame of the noisy channels is noised with the same σ (add_noise(z^sty, t), add_noise(z^1st, t),
add_noise(z^s, t)), the condition channels stay clean (z^raw, z^1st, z^s), and the regression
||v_θ - (ε - z^sty)||² is taken on the video frames only (the layout's video_slice): the first-frame
and style-image frames are held by the sampler at inference, so there is nothing to learn there.

Input perturbation (optional, against exposure bias; after Ning et al. 2023, "Input Perturbation Reduces
Exposure Bias in Diffusion Models", here in the x_0-correcting form): with an error e = γ ξ, ξ ~ N(0, I),

  x_t = (1 - σ) x_0 + σ ε + σ (1 - σ) e      v = (x_t - x_0) / σ = ε - x_0 + (1 - σ) e

the input leaves the straight path by an error that vanishes at both ends, and the target still points
from x_t to the clean x_0 (CONST: x_t - σ v = x_0), so a sampler step removes an error its earlier steps
left in x_t (a layout that drifted from z^raw) instead of refining it. γ = 0 is the plain objective.
"""
import torch

from .condition_latents import ConditionLatents, model_input

TIMESTEP_MULTIPLIER = 1000.0


def shift_sigma(u, shift):
    """Wan / ComfyUI time_snr_shift: σ = shift·u / (1 + (shift - 1)·u)."""
    if shift == 1.0:
        return u
    return shift * u / (1 + (shift - 1) * u)


def sample_sigma(generator, shift, dtype=torch.float32):
    """One σ: u ~ U(0, 1) from GENERATOR, shifted."""
    u = torch.rand((), generator=generator, dtype=torch.float64)
    return shift_sigma(u, shift).to(dtype)


def clean_latents(latents: ConditionLatents, z_sty):
    """x_0 of the noisy channels: z^1st ⊕f z^sty ⊕f z^s (the reference with the video frames = the target)."""
    layout = latents.layout
    if z_sty.shape != latents.condition[:, :, layout.video_slice].shape:
        raise ValueError(f"stylized video latent {list(z_sty.shape)} does not match the raw video latent "
                         f"{list(latents.condition[:, :, layout.video_slice].shape)}")
    x0 = latents.reference.clone()
    x0[:, :, layout.video_slice] = z_sty
    return x0


def add_noise(x0, noise, sigma):
    """x_t = (1 - σ) x_0 + σ ε with σ [B] (one σ per batch item, shared by all its frames)."""
    s = sigma.to(x0).view(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise


def training_pair(latents: ConditionLatents, z_sty, noise, sigma, error=None):
    """(36-channel model input, velocity target ε - x_0) for one batch; with ERROR e (the shape of NOISE) the
    input-perturbed pair of the module doc: x_t + σ (1 - σ) e and target ε - x_0 + (1 - σ) e."""
    x0 = clean_latents(latents, z_sty)
    xt, target = add_noise(x0, noise, sigma), noise - x0
    if error is not None:
        s = sigma.to(x0).view(-1, *([1] * (x0.ndim - 1)))
        xt, target = xt + s * (1 - s) * error, target + (1 - s) * error
    return model_input(xt, latents), target


def flow_matching_loss(prediction, target, layout):
    """Mean squared error of the velocity on the video frames of LAYOUT only (float32)."""
    video = layout.video_slice
    return torch.mean((prediction[:, :, video].float() - target[:, :, video].float()) ** 2)


def timestep(sigma):
    """The Wan model's timestep input for σ [B]."""
    return sigma * TIMESTEP_MULTIPLIER
