"""MLD's latent sampling (diffusers' DDIMScheduler with MLD's settings) with classifier-free guidance
and StyleMotif's style fusion.

Scheduler (configs/modules/scheduler.yaml of the official code): 1000 training steps, scaled-linear
betas 0.00085..0.012, clip_sample off, set_alpha_to_one off, steps_offset 1, eta 0, 50 inference
steps; prediction epsilon (MLD's PREDICT_EPSILON; "sample" = z_0 prediction is MLD's ablation).
Guidance (scale 7.5 in the released config), with the empty prompt's text features as the
unconditional branch, exactly as MLD encodes [""] * B:

    pred = f(z_t, t, c_empty) + w * (f(z_t, t, c_text) - f(z_t, t, c_empty))

Both branches carry the same style feature, so with gamma = 0 every step equals unstylized sampling
bit for bit. `strength` < 1 starts from a noised given latent (motion style transfer:
z = sqrt(a_t) z_content + sqrt(1 - a_t) eps at the first kept timestep), then denoises with the
same text guidance.
"""
import torch
from diffusers import DDIMScheduler

TRAIN_TIMESTEPS = 1000
STEPS = 50
GUIDANCE = 7.5
PREDICTIONS = ("epsilon", "sample")


def make_scheduler(prediction="epsilon"):
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
    return DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type=prediction)


@torch.no_grad()
def ddim_sample(denoiser, text, null_text, steps=STEPS, seed=0, guidance=GUIDANCE, style=None, gamma=0.6, fuse_after=0,
                init_latent=None, strength=1.0, prediction="epsilon", progress=None):
    """Latents [B, L, D] for text features [B, T, C] with the empty-prompt features null_text [B or 1, T, C].

    seed fixes the initial noise (and the transfer noise); progress(i, n) is called after each step
    (it may raise to interrupt).
    """
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength: expected 0 < strength <= 1, got {strength}")
    device = next(denoiser.parameters()).device
    dtype = next(denoiser.parameters()).dtype
    text = denoiser.check_text(text.to(device, dtype))
    b = text.shape[0]
    null_text = denoiser.check_text(null_text.to(device, dtype)).expand(b, -1, -1)
    if null_text.shape != text.shape:
        raise ValueError(f"negative: empty-prompt features of shape {tuple(null_text.shape)} do not match the text's {tuple(text.shape)}")
    shape = (b, denoiser.latent_tokens, denoiser.latent_dim)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))).to(device, dtype)
    scheduler = make_scheduler(prediction)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if init_latent is None:
        z = noise * scheduler.init_noise_sigma
    else:
        timesteps = timesteps[max(0, min(steps - 1, int(round(steps * (1 - strength))))):]
        z = scheduler.add_noise(init_latent.to(device, dtype), noise, timesteps[:1])
    cond = torch.cat([null_text, text], 0)
    style2 = None if style is None else torch.cat([style, style], 0).to(device, dtype)
    for i, t in enumerate(timesteps):
        tt = torch.full((2 * b,), int(t), device=device)
        pred_u, pred_c = denoiser(torch.cat([z, z], 0), tt, cond, style2, gamma, fuse_after).chunk(2)
        z = scheduler.step(pred_u + guidance * (pred_c - pred_u), t, z, eta=0.0).prev_sample
        if progress is not None:
            progress(i + 1, len(timesteps))
    return z
