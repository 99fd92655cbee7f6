"""MLD's transformer pieces (Chen et al. 2023, built on DETR's layers), batch-first, with the module
names of the official code so a released checkpoint loads key for key:

- `EncoderLayer` / `DecoderLayer`: post-norm (normalize_before = False) attention + GELU feed-forward
  blocks; the decoder layer adds cross-attention to a memory.
- `SkipTransformer`: MLD's long-skip stack of an odd number of layers, run in this order (the
  "execution index" k used for StyleMotif's fusion block m):
      k = 0 .. n-1      input_blocks[k]                 (outputs h_0 .. h_{n-1} kept for the skips)
      k = n             middle_block
      k = n+1 .. 2n     output_blocks[j] on linear_blocks[j](cat(x, h_{n-1-j})),  j = k - n - 1
  then the final LayerNorm `norm`; n = (layers - 1) / 2 (4 for the released 9-layer models).
- `LearnedPositions`: the learned absolute position table `pe` [max_len, 1, D] added to the tokens.
- `timestep_embedding`: DDPM sinusoidal timestep features with sin/cos flipped (flip_sin_to_cos,
  freq_shift 0), as MLD's `Timesteps`.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_POSITIONS = 500  # MLD's position table length: token sequences (frames + 2 for the VAE) must fit


class EncoderLayer(nn.Module):
    """x = norm1(x + SA(x)); x = norm2(x + W2 gelu(W1 x))."""

    def __init__(self, dim, heads, ff_dim, dropout=0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def feed_forward(self, x):
        return self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(x)))))

    def forward(self, x, memory=None, pad_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, key_padding_mask=pad_mask, need_weights=False)[0]))
        return self.norm2(x + self.feed_forward(x))


class DecoderLayer(EncoderLayer):
    """EncoderLayer's self-attention, then x = norm2(x + CA(x, memory)), then the feed-forward into norm3."""

    def __init__(self, dim, heads, ff_dim, dropout=0.1):
        super().__init__(dim, heads, ff_dim, dropout)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, memory=None, pad_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, key_padding_mask=pad_mask, need_weights=False)[0]))
        x = self.norm2(x + self.dropout(self.multihead_attn(x, memory, memory, need_weights=False)[0]))
        return self.norm3(x + self.feed_forward(x))


class SkipTransformer(nn.Module):
    """MLD's SkipTransformerEncoder / SkipTransformerDecoder (layer class chosen by `layer`)."""

    def __init__(self, layer, dim, layers, heads, ff_dim, dropout=0.1):
        super().__init__()
        if layers < 1 or layers % 2 != 1:
            raise ValueError(f"layers: MLD's skip transformer needs an odd number of layers, got {layers}")
        n = (layers - 1) // 2
        self.input_blocks = nn.ModuleList([layer(dim, heads, ff_dim, dropout) for _ in range(n)])
        self.middle_block = layer(dim, heads, ff_dim, dropout)
        self.output_blocks = nn.ModuleList([layer(dim, heads, ff_dim, dropout) for _ in range(n)])
        self.linear_blocks = nn.ModuleList([nn.Linear(2 * dim, dim) for _ in range(n)])
        self.norm = nn.LayerNorm(dim)

    @property
    def depth(self):
        return 2 * len(self.input_blocks) + 1

    def forward(self, x, memory=None, pad_mask=None, after_block=None):
        """after_block(k, h) -> h, if given, replaces the output of block k (execution index) everywhere
        it is used next, the skip included."""
        def run(k, block, h):
            h = block(h, memory, pad_mask)
            return h if after_block is None else after_block(k, h)
        skips = []
        for k, block in enumerate(self.input_blocks):
            x = run(k, block, x)
            skips.append(x)
        n = len(self.input_blocks)
        x = run(n, self.middle_block, x)
        for j, (block, linear) in enumerate(zip(self.output_blocks, self.linear_blocks)):
            x = run(n + 1 + j, block, linear(torch.cat([x, skips.pop()], -1)))
        return self.norm(x)


class LearnedPositions(nn.Module):
    def __init__(self, dim, max_len=MAX_POSITIONS):
        super().__init__()
        self.pe = nn.Parameter(torch.rand(max_len, 1, dim))

    def forward(self, x):
        """x [B, T, D] + pe[:T]."""
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[1]} tokens is longer than the {self.pe.shape[0]}-entry position table")
        return x + self.pe[:x.shape[1], 0]


def timestep_embedding(t, dim, max_period=10000):
    """[B, dim]: cat(cos(t w_i), sin(t w_i)), w_i = max_period^(-i / (dim/2)), i < dim/2 (DDPM, flipped)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], -1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb
