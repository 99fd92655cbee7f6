"""The frozen base UNet as the HiCAST trainers call it, built from a denoiser (ComfyUI's patched apply_model).

ComfyUI's SD-family models take x = x_0 + sigma eps with sigma = sqrt((1 - abar_t) / abar_t) and return the
denoised x0_hat; the trainers work in the DDPM form x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps and want eps.
With x = x_t / sqrt(abar_t):  eps_hat = (x - x0_hat) / sigma, whatever the model predicts (eps or v), so the
model's own parameterisation, schedule, patches and wrappers all stay in the denoiser.
"""
import torch


def abar_from_sigmas(sigmas):
    """abar_t = 1 / (1 + sigma_t^2) for a model's discrete sigma table (ComfyUI's model_sampling.sigmas)."""
    return 1.0 / (1.0 + sigmas.detach().float().cpu() ** 2)


class DenoiserBase:
    """base(x_t, t, context, transformer_options) -> eps_hat for integer timesteps t [B], from
    DENOISE(x, sigma [B], context, transformer_options) -> x0_hat; ABAR is the model's abar_t table."""

    def __init__(self, denoise, abar):
        self.denoise, self.abar = denoise, abar

    def __call__(self, x_t, t, context, transformer_options):
        a = self.abar.to(x_t.device)[t].view(-1, *([1] * (x_t.ndim - 1)))
        sigma = ((1.0 - a) / a).sqrt()
        x = x_t / a.sqrt()
        x0 = self.denoise(x, sigma.flatten(), context, transformer_options)
        return (x - x0.to(x.dtype)) / sigma


def trainable(t):
    """A tensor autograd accepts: ComfyUI runs nodes under inference_mode, whose tensors autograd refuses."""
    return t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t
