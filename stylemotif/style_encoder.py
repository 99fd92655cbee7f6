"""The style encoder: MLD's VAE encoder, pretrained as a VAE on content then style motion (paper
Sec. 3.2), decoder discarded. Its feature F_s is the posterior mean averaged over latent tokens."""
from torch import nn

from .mld_vae import MotionEncoder, MotionVAE


class StyleEncoder(nn.Module):
    def __init__(self, latent_dim=64, latent_tokens=1, layers=2, heads=4, ff_dim=128):
        super().__init__()
        self.encoder = MotionEncoder(latent_dim, latent_tokens, layers, heads, ff_dim)

    def init_from_vae(self, vae: MotionVAE):
        """Start from a pretrained VAE encoder (same config)."""
        self.encoder.load_state_dict(vae.encoder.state_dict())
        return self

    def forward(self, x):
        """Style features F_s [B, D] of normalised motion features x [B, F, 263]."""
        mu, _ = self.encoder(x)
        return mu.mean(1)
