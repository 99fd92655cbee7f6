"""Pair scores: style consistency (stylized video vs style references) and content consistency (raw vs
stylized video).

DreamStyle keeps CT pairs with CSD > 0.5. On a user's machine the scores come from image embeddings of a
real encoder (nodes/dreamstyle_data.py feeds ComfyUI CLIP_VISION outputs, e.g. CLIP ViT-H/ViT-L or the
CSD checkpoint converted by scripts/convert_csd.py):
- `embedding_style_score`: cosine of the mean unit embedding of the stylized frames and of the
  references (CSD's style similarity, averaged over frames and references), in [-1, 1];
- `embedding_content_score`: mean cosine of the embeddings of corresponding raw and stylized frames.

The offline scores below need no weights; they are the synthetic benchmark's metrics and a test
fixture, never the node's filter. `style_score` takes any embedder, a callable
uint8 [N, H, W, 3] -> [N, D] features; the default `FeatureStatsEmbedder` features, each block L2-normalised:
- colour: joint RGB histogram (bins^3), square-rooted (Hellinger);
- texture: for 3 pyramid levels, the gradient-magnitude-weighted orientation histogram (8 bins),
  gradient sparsity (mean / rms) and edge density, plus the energy share of each level and the
  log total energy.
All features are non-negative, so the score (cosine of mean embeddings) lies in [0, 1].

`content_score` compares layout, not appearance: each frame becomes a grid of cells (mean and std
of Lab colour), then the cells' self-similarity matrix; the score is the mean Pearson correlation
of the two videos' matrices over sampled frames, in [-1, 1]. Stylization changes what regions look
like but keeps which regions are alike, so a faithful pair correlates and a mismatched one does not.
"""
import cv2
import numpy as np


def _as_images(images, what):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise ValueError(f"{what}: expected uint8 images [N, H, W, 3] with N >= 1, got {images.dtype} {images.shape}")
    return images


def sample_frames(video, max_frames):
    """At most MAX_FRAMES frames of VIDEO, evenly spaced, first and last included."""
    idx = np.unique(np.linspace(0, len(video) - 1, min(max_frames, len(video))).round().astype(int))
    return video[idx]


def _resize_short(image, size, interpolation=None):
    h, w = image.shape[:2]
    s = size / min(h, w)
    interp = interpolation or (cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)


def _unit(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


class FeatureStatsEmbedder:
    """Style features from colour and gradient statistics (see module doc); images are resized so
    their short side is SIZE before any statistic, so references and videos of any size compare."""

    def __init__(self, size=96, bins=6, levels=3, orientations=8, edge=0.25):
        self.size, self.bins, self.levels, self.orientations, self.edge = size, bins, levels, orientations, edge

    def __call__(self, images):
        images = _as_images(images, "images")
        return np.stack([self._embed(_resize_short(im, self.size)) for im in images])

    def _embed(self, im):
        q = (im.astype(np.int64) * self.bins) // 256
        hist = np.bincount(((q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]).ravel(),
                           minlength=self.bins ** 3).astype(np.float64)
        colour = np.sqrt(hist / hist.sum())
        g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
        texture, energy = [], []
        for _ in range(self.levels):
            gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
            mag = np.hypot(gx, gy)
            ang = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * self.orientations).astype(int),
                             self.orientations - 1)
            hist = np.bincount(ang.ravel(), weights=mag.ravel(), minlength=self.orientations)
            texture += [hist / (hist.sum() + 1e-12),
                        [mag.mean() / (np.sqrt((mag ** 2).mean()) + 1e-12), (mag > self.edge).mean()]]
            energy.append(mag.mean())
            if min(g.shape) >= 2:
                g = cv2.pyrDown(g)
        energy = np.asarray(energy)
        texture += [energy / (energy.sum() + 1e-12), [np.log1p(10 * energy.sum())]]
        texture = np.concatenate([np.ravel(t) for t in texture])
        return _unit(np.concatenate([_unit(colour), _unit(texture)]))


def embedding_style_score(video_embeds, ref_embeds):
    """Cosine of the mean unit embedding of the video frames [N, D] and of the references [K, D]."""
    v = _unit(np.asarray(video_embeds, np.float64)).mean(0)
    r = _unit(np.asarray(ref_embeds, np.float64)).mean(0)
    return float(_unit(v) @ _unit(r))


def embedding_content_score(raw_embeds, stylized_embeds):
    """Mean cosine of the embeddings of corresponding raw and stylized frames ([N, D] each)."""
    a, b = np.asarray(raw_embeds, np.float64), np.asarray(stylized_embeds, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"raw embeddings {a.shape} and stylized embeddings {b.shape} must match")
    return float((_unit(a) * _unit(b)).sum(-1).mean())


def style_score(video, refs, embedder=None, max_frames=8):
    """Cosine similarity of the mean embedding of VIDEO's sampled frames and of the references'."""
    embedder = embedder or FeatureStatsEmbedder()
    video, refs = _as_images(video, "stylized video"), _as_images(refs, "style references")
    v = np.asarray(embedder(sample_frames(video, max_frames)), np.float64).mean(0)
    r = np.asarray(embedder(refs), np.float64).mean(0)
    return float(_unit(v) @ _unit(r))


def self_similarity(image, size=48, cell=4):
    """[C, C] similarity of the CELL x CELL cells of IMAGE (short side resized to SIZE)."""
    lab = cv2.cvtColor(_resize_short(image, size), cv2.COLOR_RGB2LAB).astype(np.float32) / 255
    h, w = lab.shape[0] // cell, lab.shape[1] // cell
    cells = lab[:h * cell, :w * cell].reshape(h, cell, w, cell, 3)
    desc = np.concatenate([cells.mean((1, 3)), 2 * cells.std((1, 3))], -1).reshape(h * w, -1)
    dist = ((desc[:, None] - desc[None]) ** 2).sum(-1)
    return np.exp(-dist / (np.median(dist) + 1e-6))


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def content_score(raw, stylized, max_frames=8, size=48, cell=4):
    """Mean correlation of the self-similarity matrices of corresponding RAW and STYLIZED frames."""
    raw, stylized = _as_images(raw, "raw video"), _as_images(stylized, "stylized video")
    if len(raw) != len(stylized):
        raise ValueError(f"raw video has {len(raw)} frames, stylized has {len(stylized)}; they must match")
    idx = np.unique(np.linspace(0, len(raw) - 1, min(max_frames, len(raw))).round().astype(int))
    return float(np.mean([_pearson(self_similarity(raw[i], size, cell), self_similarity(stylized[i], size, cell))
                          for i in idx]))
