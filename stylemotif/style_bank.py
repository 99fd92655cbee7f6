"""The style space: every style (motion, text, image...) ends as one D-dim vector here.

Blending (style interpolation) is a weighted sum; a bank of named style vectors answers an aligned
query by cosine similarity, returning the nearest style or a softmax blend of the top k.
"""
import torch


def blend_styles(styles, weights):
    """Style interpolation: F_s = sum_k w_k F_s^k / sum_k w_k, styles [K, D], weights [K] >= 0."""
    styles = torch.as_tensor(styles, dtype=torch.float32)
    w = torch.as_tensor(weights, dtype=torch.float32).to(styles.device)
    if styles.ndim != 2 or w.shape != (styles.shape[0],):
        raise ValueError(f"blend: expected K style vectors [K, D] and K weights, got {tuple(styles.shape)} and {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"blend weights: expected non-negative weights with a positive sum, got {w.tolist()}")
    return (w[:, None] * styles).sum(0) / w.sum()


class StyleBank:
    """Named style vectors [N, D] (e.g. the mean style feature of each 100STYLE style)."""

    def __init__(self, vectors, labels):
        self.vectors = torch.as_tensor(vectors, dtype=torch.float32)
        self.labels = list(labels)
        if self.vectors.ndim != 2 or len(self.labels) != self.vectors.shape[0]:
            raise ValueError(f"style bank: expected [N, D] vectors with N labels, got {tuple(self.vectors.shape)} and {len(self.labels)} labels")

    def __len__(self):
        return len(self.labels)

    def similarities(self, query):
        """Cosine similarity [N] of an aligned query [D] to every bank entry."""
        q = torch.nn.functional.normalize(torch.as_tensor(query, dtype=torch.float32).reshape(-1), dim=0)
        keys = torch.nn.functional.normalize(self.vectors, dim=-1)
        if q.shape[0] != keys.shape[1]:
            raise ValueError(f"style query: expected width {keys.shape[1]}, got {q.shape[0]}")
        return keys @ q

    def retrieve(self, query, top_k=1, temperature=0.1):
        """(style vector [D], {label: weight}) from the top_k entries, weights = softmax(sim / temperature)."""
        if len(self) == 0:
            raise ValueError("style bank is empty: encode some style motions into it first")
        sim = self.similarities(query)
        k = max(1, min(int(top_k), len(self)))
        top = torch.topk(sim, k)
        w = torch.softmax(top.values / temperature, 0)
        return blend_styles(self.vectors[top.indices], w), {self.labels[i]: float(x) for i, x in zip(top.indices.tolist(), w)}

    def get(self, label):
        if label not in self.labels:
            raise ValueError(f"style label: expected one of {self.labels}, got {label!r}")
        return self.vectors[self.labels.index(label)]
