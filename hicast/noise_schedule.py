"""SD-family DDPM schedule (scaled linear betas, 1000 steps) and the two formulas the trainers need."""
import torch


def alphas_cumprod(steps=1000, beta_start=0.00085, beta_end=0.012):
    """abar_t = prod_{s<=t} (1 - beta_s), beta = linspace(sqrt(b0), sqrt(b1))^2."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def add_noise(x0, noise, t, abar):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    a = abar.to(x0.device)[t].view(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def predict_x0(x_t, eps, t, abar):
    """x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)."""
    a = abar.to(x_t.device)[t].view(-1, *([1] * (x_t.ndim - 1)))
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()
