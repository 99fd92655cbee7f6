"""Shared transformer pieces of the MLD networks: sinusoidal encodings and pre-norm block stacks."""
import math

import torch
from torch import nn


def sinusoidal(positions, dim):
    """Transformer sinusoidal encoding [..., dim] of (float) positions or diffusion timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angles = positions.float()[..., None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)


def encoder_blocks(dim, layers, heads, ff_dim, dropout=0.0):
    """`layers` independent pre-norm self-attention blocks (batch first), to be run in a loop."""
    return nn.ModuleList([nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True, norm_first=True)
                          for _ in range(layers)])
