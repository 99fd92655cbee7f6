"""Multi-modal alignment (paper Sec. 3.4): a light projection from a frozen embedding space (CLIP or
ImageBind text/image/audio, or the hash text embedding here) into the style space, trained with the
symmetric contrastive loss on (description, style motion) pairs:

    L_align = -1/2 [ log exp(F_t^i·F_s^i/τ) / Σ_k exp(F_t^i·F_s^k/τ)
                   + log exp(F_t^i·F_s^i/τ) / Σ_k exp(F_t^k·F_s^i/τ) ]
averaged over the matched pairs i of a batch, with L2-normalised F_t (projected embedding) and F_s
(style feature).
"""
import torch
import torch.nn.functional as F
from torch import nn


class AlignmentHead(nn.Module):
    """Linear projection embed_dim -> style width D (the only trainable part of the alignment)."""

    def __init__(self, embed_dim=64, latent_dim=64):
        super().__init__()
        self.embed_dim = embed_dim
        self.proj = nn.Linear(embed_dim, latent_dim)

    def forward(self, emb):
        if emb.shape[-1] != self.embed_dim:
            raise ValueError(f"embedding: expected width {self.embed_dim} (the space this model was aligned to), got {emb.shape[-1]}")
        return self.proj(emb)


def symmetric_contrastive_loss(text_feats, style_feats, tau=0.07):
    """L_align over a batch of matched pairs (row i of each is a pair); [B, D] each."""
    t = F.normalize(text_feats, dim=-1)
    s = F.normalize(style_feats, dim=-1)
    logits = t @ s.t() / tau
    target = torch.arange(t.shape[0], device=t.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
