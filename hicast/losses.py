"""HiCAST training losses, one function each. Features are lists of [B, C, H, W] maps from a frozen phi."""
import torch
import torch.nn.functional as F


def content_loss(feats_out, feats_content, levels=None):
    """L_c = sum_{l in LEVELS} mean((phi_l(I_cs) - phi_l(I_c))^2) (every level when LEVELS is None; VGG: relu4_1)."""
    levels = range(len(feats_out)) if levels is None else levels
    return sum(F.mse_loss(feats_out[l], feats_content[l]) for l in levels)


def _mean_std(f, eps=1e-5):
    flat = f.flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=False) + eps).sqrt()


def style_loss(feats_out, feats_style):
    """L_s = sum_l ||mu(phi_l(I_cs)) - mu(phi_l(I_s))||_2 + ||sigma(phi_l(I_cs)) - sigma(phi_l(I_s))||_2,
    channel-wise feature statistics over space, averaged over the batch (style broadcast when its batch is 1)."""
    total = 0.0
    for o, s in zip(feats_out, feats_style):
        (mo, so), (ms, ss) = _mean_std(o), _mean_std(s)
        total = total + (mo - ms).norm(dim=1).mean() + (so - ss).norm(dim=1).mean()
    return total


def discriminator_loss(real_logits, fake_logits):
    """L_D = E[softplus(-D(x_real))] + E[softplus(D(x_fake))] (non-saturating GAN, patch logits averaged)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_adversarial_loss(fake_logits):
    """L_adv = E[softplus(-D(x_fake))]: the generator wants its patches judged real."""
    return F.softplus(-fake_logits).mean()


def harmonious_global_loss(eps_video, noise, eps_image):
    """L_h^global = ||eps_v - eps||^2 + ||eps_v - eps_img||^2: the video model's prediction stays with the
    true noise and with the (frozen) image model's prediction, so temporal layers cannot trade stylization
    strength for smoothness."""
    return F.mse_loss(eps_video, noise) + F.mse_loss(eps_video, eps_image)


def patch_contrastive_loss(frames, patch=2, tau=0.07, max_patches=256, generator=None):
    """L_h^local = -1/N sum_i log( exp(s(z^t_i, z^{t+1}_i)/tau) / sum_j exp(s(z^t_i, z^{t+1}_j)/tau) ),
    averaged over consecutive frame pairs: patch i of frame t must match the same-place patch of frame t+1
    against the other patches (s = cosine similarity). frames: [F, C, H, W], F >= 2."""
    if frames.shape[0] < 2:
        raise ValueError(f"frames: the local consistency term needs at least 2 frames, got {frames.shape[0]}")
    z = F.unfold(frames, patch, stride=patch).transpose(1, 2)  # [F, N, C * p * p]
    n = z.shape[1]
    if n > max_patches:
        idx = torch.randperm(n, generator=generator)[:max_patches].to(z.device)
        z = z[:, idx]
    z = F.normalize(z, dim=-1)
    logits = torch.einsum("fic,fjc->fij", z[:-1], z[1:]) / tau
    target = torch.arange(z.shape[1], device=z.device).expand(z.shape[0] - 1, -1)
    return F.cross_entropy(logits.reshape(-1, z.shape[1]), target.reshape(-1))


def harmonious_consistency_loss(eps_video, noise, eps_image, x0_frames, lambda_local=0.1, tau=0.07, generator=None):
    """L_h = L_h^global + lambda_local * L_h^local (HiCAST's harmonious consistency loss)."""
    return (harmonious_global_loss(eps_video, noise, eps_image)
            + lambda_local * patch_contrastive_loss(x0_frames, tau=tau, generator=generator))
