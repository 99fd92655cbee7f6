"""MLD's text-conditioned latent denoiser with StyleMotif's single fusion point.

Tokens: [text + timestep token, latent tokens]; a stack of pre-norm transformer blocks; the
prediction (the clean latent z_0, see sampling.py) is read from the latent tokens. When a style feature is given, the hidden
sequence is passed once through cross normalization after block `fuse_after` (0-based), i.e.
F_out = F_c + gamma * (F_s - mu_c) / sqrt(sigma_c^2 + eta) on the output of that block only.
The hidden width equals the latent width D, so the style encoder's D-dim feature fuses without any
projection: the style path adds no parameters to the denoiser.
"""
import torch
from torch import nn

from .cross_norm import StyleFusion
from .transformer import encoder_blocks, sinusoidal


class LatentDenoiser(nn.Module):
    def __init__(self, latent_dim=64, latent_tokens=1, text_dim=64, depth=4, heads=4, ff_dim=128):
        super().__init__()
        self.latent_dim, self.latent_tokens, self.text_dim, self.depth = latent_dim, latent_tokens, text_dim, depth
        self.text_proj = nn.Linear(text_dim, latent_dim)
        self.time_mlp = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.SiLU(), nn.Linear(latent_dim, latent_dim))
        self.in_proj = nn.Linear(latent_dim, latent_dim)
        self.pos = nn.Parameter(torch.randn(1 + latent_tokens, latent_dim) * 0.02)
        self.blocks = encoder_blocks(latent_dim, depth, heads, ff_dim)
        self.fusion = StyleFusion()
        self.norm = nn.LayerNorm(latent_dim)
        self.out_proj = nn.Linear(latent_dim, latent_dim)

    def check_fuse_after(self, fuse_after):
        if not 0 <= int(fuse_after) < self.depth:
            raise ValueError(f"block m (fuse_after): expected 0..{self.depth - 1} for a {self.depth}-block denoiser, got {fuse_after}")
        return int(fuse_after)

    def forward(self, z, t, text, style=None, gamma=0.6, fuse_after=1):
        """z_0 prediction [B, L, D] for noisy latents z [B, L, D], timesteps t [B], text [B, text_dim]."""
        if text.shape[-1] != self.text_dim:
            raise ValueError(f"text embedding: expected width {self.text_dim}, got {text.shape[-1]}")
        cond = self.text_proj(text) + self.time_mlp(sinusoidal(t, self.latent_dim))
        h = torch.cat([cond[:, None], self.in_proj(z)], 1) + self.pos
        fuse_after = self.check_fuse_after(fuse_after) if style is not None else -1
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == fuse_after:
                h = self.fusion(h, style, gamma)
        return self.out_proj(self.norm(h[:, 1:]))
