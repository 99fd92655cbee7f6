"""MLD's latent denoiser (`MldDenoiser`, text condition, arch trans_enc with skip connections, PE type
mld), batch-first, with StyleMotif's single fusion point.

    time  = time_embedding(timestep_embedding(t, text_dim))            [B, 1, D]  (Linear-SiLU-Linear)
    text  = emb_proj(c) = Linear(ReLU(c))   (identity when text_dim == D)  [B, T, D]
    h     = query_pos([z_t, time, text])  -> skip transformer -> first L tokens = eps prediction
c is MLD's text feature: CLIP ViT-L/14's projected pooled embedding, one token ([B, 1, 768]).

StyleMotif (paper Sec. 3.3): with a style feature F_s [B, D], the output of block m (the skip
transformer's execution index, transformer.py: 0..3 input blocks, 4 the middle block, 5..8 output
blocks for the 9-layer model) is replaced once by F_c + gamma (F_s - mu_c) / sqrt(sigma_c^2 + eta),
and that fused state feeds both the next block and, for an input block, its long skip. The hidden
width is the latent width D, so the style path adds no parameters to the denoiser.
"""
import torch
from torch import nn

from .cross_norm import StyleFusion
from .transformer import EncoderLayer, LearnedPositions, SkipTransformer, timestep_embedding

FUSE_AFTER = 0  # the one default block m: right after the first input block (valid for every depth)


class TimestepMLP(nn.Module):
    """MLD's TimestepEmbedding: linear_2(silu(linear_1(x)))."""

    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(nn.functional.silu(self.linear_1(x)))


class LatentDenoiser(nn.Module):
    def __init__(self, latent_dim=256, latent_tokens=1, text_dim=768, layers=9, heads=4, ff_dim=1024, dropout=0.1):
        super().__init__()
        self.latent_dim, self.latent_tokens, self.text_dim = latent_dim, latent_tokens, text_dim
        self.time_embedding = TimestepMLP(text_dim, latent_dim)
        if text_dim != latent_dim:
            self.emb_proj = nn.Sequential(nn.ReLU(), nn.Linear(text_dim, latent_dim))
        self.query_pos = LearnedPositions(latent_dim)
        self.encoder = SkipTransformer(EncoderLayer, latent_dim, layers, heads, ff_dim, dropout)
        self.fusion = StyleFusion()

    @property
    def depth(self):
        return self.encoder.depth

    def check_fuse_after(self, fuse_after):
        if not 0 <= int(fuse_after) < self.depth:
            raise ValueError(f"block m (fuse_after): expected 0..{self.depth - 1} for a {self.depth}-block denoiser, got {fuse_after}")
        return int(fuse_after)

    def check_text(self, text, batch=None):
        """Text features as [B, T, text_dim] (a [B, text_dim] pooled embedding gets its token axis)."""
        text = text[:, None] if text.ndim == 2 else text
        if text.ndim != 3 or text.shape[-1] != self.text_dim or (batch is not None and text.shape[0] != batch):
            raise ValueError(f"text embedding: expected width {self.text_dim} (this model's text space, [batch, tokens, "
                             f"{self.text_dim}]), got shape {tuple(text.shape)}")
        return text

    def tokens(self, z, t, text):
        """The input sequence query_pos([z_t, time, text]) [B, L + 1 + T, D]."""
        text = self.check_text(text, z.shape[0])
        time = self.time_embedding(timestep_embedding(t.reshape(-1).expand(z.shape[0]), self.text_dim).to(z.dtype))
        text = self.emb_proj(text) if self.text_dim != self.latent_dim else text
        return self.query_pos(torch.cat([z, time[:, None], text], 1))

    def forward(self, z, t, text, style=None, gamma=0.6, fuse_after=FUSE_AFTER):
        """eps prediction [B, L, D] for noisy latents z [B, L, D], timesteps t [B] (0..999), text [B, T, text_dim]."""
        h = self.tokens(z, t, text)
        after = None
        if style is not None:
            m = self.check_fuse_after(fuse_after)
            after = lambda k, x: self.fusion(x, style, gamma) if k == m else x  # noqa: E731
        return self.encoder(h, after_block=after)[:, :self.latent_tokens]
