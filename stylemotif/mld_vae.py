"""MLD's motion VAE (Chen et al. 2023, `MldVae`, arch encoder_decoder, PE type mld), batch-first.

    encode: tokens = [global_motion_token (2L), skel_embedding(x_1..x_F)] + pe
            -> skip-transformer encoder (padding masked) -> first 2L tokens = (mu, logvar) [B, L, D]
            z = mu + exp(logvar / 2) * eps
    decode: queries = 0 + pe[:F] -> skip-transformer decoder with z as memory -> final_layer
            -> x_hat [B, F, 263], zero on padded frames
Variable lengths: `lengths` (one int per batch item, <= F) builds MLD's mask (lengths_to_mask);
frames past an item's length are ignored by the encoder and set to 0 by the decoder.
Released HumanML3D sizes: L = 1, D = 256, 9 layers, 4 heads, feed-forward 1024, 263 features.
"""
import torch
from torch import nn

from .humanml3d import FEATURE_DIM
from .transformer import MAX_POSITIONS, DecoderLayer, EncoderLayer, LearnedPositions, SkipTransformer


def lengths_mask(lengths, frames, batch, device):
    """[B, F] bool, True on valid frames; lengths None means every item has all F frames."""
    if lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device).reshape(-1)
    if lengths.numel() != batch or int(lengths.min()) < 1 or int(lengths.max()) > frames:
        raise ValueError(f"lengths: expected {batch} lengths in 1..{frames}, got {lengths.tolist()}")
    return torch.arange(frames, device=device)[None] < lengths[:, None]


def check_frames(frames, extra=0):
    limit = MAX_POSITIONS - extra
    if not 1 <= int(frames) <= limit:
        raise ValueError(f"frames: expected 1..{limit} (MLD's position table), got {frames}")
    return int(frames)


class MotionEncoder(nn.Module):
    """The encoder half of MldVae (same module names); the style encoder is another instance."""

    def __init__(self, latent_dim=256, latent_tokens=1, layers=9, heads=4, ff_dim=1024, dropout=0.1, nfeats=FEATURE_DIM):
        super().__init__()
        self.latent_dim, self.latent_tokens = latent_dim, latent_tokens
        self.query_pos_encoder = LearnedPositions(latent_dim)
        self.encoder = SkipTransformer(EncoderLayer, latent_dim, layers, heads, ff_dim, dropout)
        self.global_motion_token = nn.Parameter(torch.randn(2 * latent_tokens, latent_dim))
        self.skel_embedding = nn.Linear(nfeats, latent_dim)

    def posterior(self, x, lengths=None):
        """mu, logvar [B, L, D] of normalised features x [B, F, 263]."""
        b, f, _ = x.shape
        check_frames(f, 2 * self.latent_tokens)
        mask = lengths_mask(lengths, f, b, x.device)
        dist = self.global_motion_token.expand(b, -1, -1)
        seq = self.query_pos_encoder(torch.cat([dist, self.skel_embedding(x)], 1))
        pad = ~torch.cat([torch.ones(b, dist.shape[1], dtype=torch.bool, device=x.device), mask], 1)
        h = self.encoder(seq, pad_mask=pad)[:, :dist.shape[1]]
        return h[:, :self.latent_tokens], h[:, self.latent_tokens:]


class MotionVAE(MotionEncoder):
    def __init__(self, latent_dim=256, latent_tokens=1, layers=9, heads=4, ff_dim=1024, dropout=0.1, nfeats=FEATURE_DIM):
        super().__init__(latent_dim, latent_tokens, layers, heads, ff_dim, dropout, nfeats)
        self.query_pos_decoder = LearnedPositions(latent_dim)
        self.decoder = SkipTransformer(DecoderLayer, latent_dim, layers, heads, ff_dim, dropout)
        self.final_layer = nn.Linear(latent_dim, nfeats)

    def encoder_state_dict(self):
        """The encoder half's tensors, as MotionEncoder names them."""
        prefixes = ("query_pos_encoder.", "encoder.", "global_motion_token", "skel_embedding.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}

    def encode(self, x, lengths=None, sample=False, generator=None):
        """(z, mu, logvar) [B, L, D]; z = mu unless sample (reparameterised draw)."""
        mu, logvar = self.posterior(x, lengths)
        if not sample:
            return mu, mu, logvar
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar

    def decode(self, z, frames, lengths=None):
        """Normalised features [B, frames, 263] of latents z [B, L, D]; zero past each item's length."""
        frames = check_frames(frames)
        mask = lengths_mask(lengths, frames, z.shape[0], z.device)
        queries = self.query_pos_decoder(torch.zeros(z.shape[0], frames, self.latent_dim, device=z.device, dtype=z.dtype))
        out = self.final_layer(self.decoder(queries, memory=z, pad_mask=~mask))
        return out * mask[..., None]

    def loss(self, x, kl_weight=1e-4, generator=None, lengths=None):
        """Reconstruction MSE + kl_weight * KL(N(mu, sigma) || N(0, I)), averaged (MLD's VAE stage)."""
        z, mu, logvar = self.encode(x, lengths, sample=True, generator=generator)
        mask = lengths_mask(lengths, x.shape[1], x.shape[0], x.device)[..., None]
        recon = (((self.decode(z, x.shape[1], lengths) - x) * mask) ** 2).sum() / (mask.sum() * x.shape[-1])
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).mean()
        return recon + kl_weight * kl
