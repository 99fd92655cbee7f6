"""Stage 3 (HiCAST): train the temporal layers on short clips with the harmonious consistency loss.

Per step, one t for the whole clip: x_t^f = sqrt(abar_t) z^f + sqrt(1 - abar_t) eps^f;
eps_img = UNet(x_t) without temporal layers (frozen, no grad), eps_v = UNet(x_t) with them;
L_h = ||eps_v - eps||^2 + ||eps_v - eps_img||^2 + lambda * L_patch-NCE(x0_hat^f, x0_hat^{f+1}).
"""
import torch

from .batching import tile_to_batch
from .losses import harmonious_consistency_loss
from .noise_schedule import add_noise, alphas_cumprod, predict_x0
from .temporal_layers import TemporalInjection
from .training_loop import run_resumable, step_generator


def clip_loss(base, levels, layers, z0, t, noise, context, lambda_local=0.1, tau=0.07, image_patches=(), abar=None,
              generator=None):
    """L_h of one noised clip z0 [F, 4, h, w] at timestep t [F] (one value) with noise eps [F, 4, h, w]."""
    abar = alphas_cumprod() if abar is None else abar
    x_t = add_noise(z0, noise, t, abar)
    ctx = tile_to_batch(context, z0.shape[0], "context")
    with torch.no_grad():
        eps_img = base(x_t, t, ctx, {"patches": {"input_block_patch": list(image_patches)}, "cond_or_uncond": [0]})
    temporal = TemporalInjection(levels, layers)
    eps_v = base(x_t, t, ctx, {"patches": {"input_block_patch": [*image_patches, temporal]}, "cond_or_uncond": [0]})
    return harmonious_consistency_loss(eps_v, noise, eps_img, predict_x0(x_t, eps_v, t, abar),
                                       lambda_local=lambda_local, tau=tau, generator=generator)


def train_temporal_layers(base, levels, layers, clips, context, steps, *, lambda_local=0.1, tau=0.07, lr=1e-4,
                          t_max=1000, image_patches=(), abar=None, checkpoint_path=None, save_every=50, progress=None, seed=0,
                          job=None):
    """Train LAYERS (TemporalLayers); CLIPS(step, generator) -> latent clip [F, 4, h, w]; IMAGE_PATCHES: other
    input_block_patches of the image model (e.g. adapters) applied in both passes; ABAR: the base model's abar_t
    table (SD's scaled-linear schedule when None). Returns the loss history."""
    abar = alphas_cumprod() if abar is None else abar
    layers.train().requires_grad_(True)
    opt = torch.optim.AdamW(layers.parameters(), lr=lr)

    def step_fn(step):
        g = step_generator(seed, step)
        z0 = clips(step, g)
        t = torch.randint(0, t_max, (1,), generator=g).expand(z0.shape[0]).to(z0.device)
        noise = torch.randn(z0.shape, generator=g).to(z0)
        loss = clip_loss(base, levels, layers, z0, t, noise, context, lambda_local, tau, image_patches, abar, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss_h": loss.item()}

    return run_resumable(step_fn, {"temporal_layers": layers}, {"opt": opt}, steps, checkpoint_path, save_every, progress,
                         job)
