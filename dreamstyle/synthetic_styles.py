"""Deterministic "styles" for the synthetic benchmark: exact, frame-wise functions of the raw video.

Each style is uint8 [T, H, W, 3] -> uint8 [T, H, W, 3], touches no randomness, and comes with the
phrase that turns a content caption into its style caption (t_sty = t_ns + ", " + phrase). The
phrases are written in the vocabulary that captions.strip_style removes.
"""
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


@dataclass(frozen=True)
class SyntheticStyle:
    name: str
    phrase: str
    fn: Callable[[np.ndarray], np.ndarray]

    def apply(self, frames):
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"style {self.name}: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
        return self.fn(frames)


def _luma(frames):
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def _grid(frames):
    _, h, w, _ = frames.shape
    return np.mgrid[0:h, 0:w].astype(np.float32)


PALETTE_COLOURS = np.array([(24, 40, 72), (42, 157, 143), (233, 196, 106), (231, 111, 81), (250, 243, 221)], np.float32)


def palette(frames):
    """Nearest of five fixed poster colours."""
    f = frames.astype(np.float32)[..., None, :]
    idx = np.argmin(((f - PALETTE_COLOURS) ** 2).sum(-1), axis=-1)
    return PALETTE_COLOURS[idx].astype(np.uint8)


def ink(frames):
    """Dark lines where the blurred luminance has strong gradients, on cream paper with a light wash."""
    out = []
    for lum in _luma(frames):
        lum = cv2.GaussianBlur(lum, (0, 0), 1.0)
        mag = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3))
        line = np.clip(mag * 4.0, 0, 1)[..., None]
        paper = np.array([245, 238, 220], np.float32) * (1 - 0.12 * (1 - lum[..., None]))
        out.append(paper * (1 - line) + np.array([20, 20, 30], np.float32) * line)
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)


def hatching(frames):
    """Four luminance levels drawn as 0-3 families of diagonal pen lines, blue ink on white."""
    y, x = _grid(frames)
    fams = [((x + y) % 6) < 1.5, ((x - y) % 6) < 1.5, (x % 5) < 1.2]
    level = np.clip((1 - _luma(frames)) * 4, 0, 3.999).astype(int)  # 0 light .. 3 dark
    ink_mask = np.zeros(level.shape, bool)
    for k, fam in enumerate(fams, start=1):
        ink_mask |= (level >= k) & fam
    white, blue = np.array([250, 250, 246], np.float32), np.array([30, 40, 110], np.float32)
    return np.where(ink_mask[..., None], blue, white).astype(np.uint8)


def halftone(frames, cell=6):
    """Magenta dots on a cell grid, radius growing with the cell's darkness."""
    t, h, w, _ = frames.shape
    y, x = _grid(frames)
    dark = 1 - _luma(frames)
    hh, ww = -(-h // cell) * cell, -(-w // cell) * cell
    padded = np.pad(dark, ((0, 0), (0, hh - h), (0, ww - w)), mode="edge")
    cells = padded.reshape(t, hh // cell, cell, ww // cell, cell).mean((2, 4))
    per_px = np.repeat(np.repeat(cells, cell, 1), cell, 2)[:, :h, :w]
    d = np.hypot((x % cell) - (cell - 1) / 2, (y % cell) - (cell - 1) / 2)
    dot = d < per_px * cell * 0.75
    return np.where(dot[..., None], np.array([214, 40, 140], np.uint8), np.array([252, 248, 240], np.uint8))


THERMAL_STOPS = np.array([(0, 0, 0), (60, 10, 110), (190, 30, 60), (245, 120, 20), (250, 220, 60), (255, 255, 240)],
                         np.float32)


def thermal(frames):
    """Luminance through a black-purple-red-orange-yellow-white ramp."""
    pos = _luma(frames) * (len(THERMAL_STOPS) - 1)
    i = np.clip(pos.astype(int), 0, len(THERMAL_STOPS) - 2)
    f = (pos - i)[..., None]
    return np.clip(THERMAL_STOPS[i] * (1 - f) + THERMAL_STOPS[i + 1] * f + 0.5, 0, 255).astype(np.uint8)


STYLES = {s.name: s for s in (
    SyntheticStyle("palette", "in a flat retro poster style with a limited five-colour palette", palette),
    SyntheticStyle("ink", "as a black ink line drawing on cream paper", ink),
    SyntheticStyle("hatching", "in a cross-hatched pen sketch style", hatching),
    SyntheticStyle("halftone", "in a pop-art halftone style with bold magenta dots", halftone),
    SyntheticStyle("thermal", "with a thermal camera false-colour palette, glowing warm tones", thermal),
)}
