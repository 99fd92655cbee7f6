"""A small motion classifier over normalised HumanML3D features with a content head and a style head:
the judge for the style recognition accuracy (SRA analogue) and for content preservation."""
import torch
from torch import nn

from .humanml3d import FEATURE_DIM


class MotionClassifier(nn.Module):
    def __init__(self, n_content, n_style, hidden=64, nfeats=FEATURE_DIM):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(nfeats, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2, stride=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2, stride=2), nn.GELU())
        self.content_head = nn.Linear(hidden, n_content)
        self.style_head = nn.Linear(hidden, n_style)

    def forward(self, x):
        """(content logits, style logits) of x [B, F, 263]."""
        h = self.net(x.transpose(1, 2)).mean(-1)
        return self.content_head(h), self.style_head(h)

    @torch.no_grad()
    def accuracy(self, x, content, style):
        """(content accuracy, style accuracy) against integer label tensors [B]."""
        c, s = self(x)
        return (c.argmax(-1) == content).float().mean().item(), (s.argmax(-1) == style).float().mean().item()
