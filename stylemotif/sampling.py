"""DDIM sampling of MLD latents (diffusers' DDIMScheduler) with classifier-free text guidance and
StyleMotif's style fusion.

    pred = f(z_t, t, null) + w * (f(z_t, t, text) - f(z_t, t, null))      (f predicts z_0)
Both branches carry the same style feature, so with gamma = 0 every step equals unstylized
sampling bit for bit. `strength` < 1 starts from a noised given latent (motion style transfer:
z_T' = sqrt(a_t) z_content + sqrt(1 - a_t) eps at the first kept timestep).
"""
import torch
from diffusers import DDIMScheduler

TRAIN_TIMESTEPS = 1000


# The network predicts the clean latent z_0 (MDM's choice) rather than MLD's epsilon: at the tiny
# sizes used here an epsilon network is too inaccurate at high noise, where text decides the content.
PREDICTION = "sample"


def make_scheduler():
    """MLD's noise schedule: scaled-linear betas 0.00085..0.012 over 1000 steps."""
    return DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type=PREDICTION)


@torch.no_grad()
def ddim_sample(denoiser, text, steps=20, seed=0, guidance=2.5, style=None, gamma=0.6, fuse_after=1,
                init_latent=None, strength=1.0, progress=None):
    """Latents [B, L, D] from text embeddings [B, text_dim]; style [B, D] or None.

    seed fixes the initial noise (and the transfer noise); progress(i, n) is called after each step.
    """
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength: expected 0 < strength <= 1, got {strength}")
    device = next(denoiser.parameters()).device
    b = text.shape[0]
    shape = (b, denoiser.latent_tokens, denoiser.latent_dim)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(shape, generator=gen).to(device)
    scheduler = make_scheduler()
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if init_latent is None:
        z = noise
    else:
        timesteps = timesteps[max(0, min(steps - 1, int(round(steps * (1 - strength))))):]
        z = scheduler.add_noise(init_latent.to(device), noise, timesteps[:1])
    text = text.to(device)
    cond = torch.cat([torch.zeros_like(text), text], 0)
    style2 = None if style is None else torch.cat([style, style], 0).to(device)
    for i, t in enumerate(timesteps):
        tt = torch.full((2 * b,), int(t), device=device)
        pred_u, pred_c = denoiser(torch.cat([z, z], 0), tt, cond, style2, gamma, fuse_after).chunk(2)
        z = scheduler.step(pred_u + guidance * (pred_c - pred_u), t, z).prev_sample
        if progress is not None:
            progress(i + 1, len(timesteps))
    return z
