"""MLD's motion VAE (Chen et al. 2023): a transformer encoder with distribution tokens and a
transformer decoder that reads the latent as memory.

    encode: x [B, F, 263] -> mu, logvar [B, L, D]   (L latent tokens, D latent width)
    z = mu + exp(logvar / 2) * eps
    decode: z [B, L, D], F -> x_hat [B, F, 263]
Losses: reconstruction ||x - x_hat||^2 + kl_weight * KL(N(mu, sigma) || N(0, I)).
"""
import torch
from torch import nn

from .humanml3d import FEATURE_DIM
from .transformer import encoder_blocks, sinusoidal


class MotionEncoder(nn.Module):
    """The VAE encoder; the style encoder is a copy of it (style_encoder.py)."""

    def __init__(self, latent_dim=64, latent_tokens=1, layers=2, heads=4, ff_dim=128, nfeats=FEATURE_DIM):
        super().__init__()
        self.latent_dim, self.latent_tokens = latent_dim, latent_tokens
        self.embed = nn.Linear(nfeats, latent_dim)
        self.dist_tokens = nn.Parameter(torch.randn(2 * latent_tokens, latent_dim) * 0.02)
        self.blocks = encoder_blocks(latent_dim, layers, heads, ff_dim)
        self.norm = nn.LayerNorm(latent_dim)

    def forward(self, x):
        """mu, logvar [B, L, D] of normalised features x [B, F, 263]."""
        b, f, _ = x.shape
        h = self.embed(x) + sinusoidal(torch.arange(f, device=x.device), self.latent_dim)
        h = torch.cat([self.dist_tokens.expand(b, -1, -1), h], 1)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h[:, :2 * self.latent_tokens])
        return h[:, :self.latent_tokens], h[:, self.latent_tokens:]


class MotionDecoder(nn.Module):
    def __init__(self, latent_dim=64, layers=2, heads=4, ff_dim=128, nfeats=FEATURE_DIM):
        super().__init__()
        self.latent_dim = latent_dim
        self.blocks = nn.ModuleList([nn.TransformerDecoderLayer(latent_dim, heads, ff_dim, 0.0, batch_first=True, norm_first=True)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(latent_dim)
        self.out = nn.Linear(latent_dim, nfeats)

    def forward(self, z, frames):
        q = sinusoidal(torch.arange(frames, device=z.device), self.latent_dim).expand(z.shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, z)
        return self.out(self.norm(q))


class MotionVAE(nn.Module):
    def __init__(self, latent_dim=64, latent_tokens=1, layers=2, heads=4, ff_dim=128):
        super().__init__()
        self.encoder = MotionEncoder(latent_dim, latent_tokens, layers, heads, ff_dim)
        self.decoder = MotionDecoder(latent_dim, layers, heads, ff_dim)

    def encode(self, x, sample=False, generator=None):
        mu, logvar = self.encoder(x)
        if not sample:
            return mu, mu, logvar
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar

    def decode(self, z, frames):
        return self.decoder(z, frames)

    def loss(self, x, kl_weight=1e-4, generator=None):
        """Reconstruction MSE + kl_weight * KL(N(mu, sigma) || N(0, I)), averaged."""
        z, mu, logvar = self.encode(x, sample=True, generator=generator)
        recon = ((self.decode(z, x.shape[1]) - x) ** 2).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).mean()
        return recon + kl_weight * kl
