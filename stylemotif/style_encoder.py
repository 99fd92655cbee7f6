"""The style encoder: MLD's VAE encoder, pretrained as a VAE on content then style motion (paper
Sec. 3.2), decoder discarded. Its feature F_s is the posterior mean averaged over latent tokens."""
from .mld_vae import MotionEncoder, MotionVAE


class StyleEncoder(MotionEncoder):
    def init_from_vae(self, vae: MotionVAE):
        """Start from a pretrained VAE's encoder half (same config)."""
        self.load_state_dict(vae.encoder_state_dict())
        return self

    def forward(self, x, lengths=None):
        """Style features F_s [B, D] of normalised motion features x [B, F, 263]."""
        return self.posterior(x, lengths)[0].mean(1)
