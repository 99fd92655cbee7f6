"""Procedural videos with known motion: coloured shapes bouncing over a drifting texture.

Everything is a pure function of the seed: the background is an analytic texture of (x - vx*t,
y - vy*t), so it translates by exactly (vx, vy) pixels a frame, and each shape moves at a constant
velocity and reflects off the frame border. `Scene.trajectories()` gives every shape's centre per
frame, `Scene.caption` describes the content without any style word.
"""
from dataclasses import dataclass

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
           "orange": (240, 130, 30), "purple": (140, 50, 170), "white": (240, 240, 240)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = ("striped", "checkerboard", "rippled", "cloudy")


@dataclass(frozen=True)
class MovingShape:
    shape: str
    colour: str
    radius: float
    start: tuple  # (x, y) centre at frame 0, pixels
    velocity: tuple  # (vx, vy) pixels per frame

    def centre(self, t, width, height):
        """Centre at frame T: constant velocity, reflected at the borders."""
        return tuple(_reflect(s + v * t, self.radius, size - self.radius)
                     for s, v, size in zip(self.start, self.velocity, (width, height)))

    @property
    def direction(self):
        vx, vy = self.velocity
        return ("right" if vx > 0 else "left") if abs(vx) >= abs(vy) else ("down" if vy > 0 else "up")


@dataclass(frozen=True)
class Scene:
    seed: int
    frames: int
    height: int
    width: int
    background: str
    bg_colours: tuple  # two RGB triples
    bg_velocity: tuple  # (vx, vy) pixels per frame
    bg_params: tuple  # texture parameters, see _texture
    shapes: tuple

    def frame(self, t):
        """Frame T as uint8 [H, W, 3]."""
        y, x = np.mgrid[0:self.height, 0:self.width].astype(np.float32) + 0.5
        vx, vy = self.bg_velocity
        mix = _texture(self.background, x - vx * t, y - vy * t, self.bg_params)[..., None]
        c0, c1 = (np.asarray(c, np.float32) for c in self.bg_colours)
        img = c0 * (1 - mix) + c1 * mix
        for s in self.shapes:
            cx, cy = s.centre(t, self.width, self.height)
            alpha = np.clip(0.5 - _signed_distance(s.shape, x - cx, y - cy, s.radius), 0, 1)[..., None]
            img = img * (1 - alpha) + np.asarray(COLOURS[s.colour], np.float32) * alpha
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def iter_frames(self):
        return (self.frame(t) for t in range(self.frames))

    def render(self):
        """All frames as uint8 [T, H, W, 3]."""
        return np.stack(list(self.iter_frames()))

    def trajectories(self):
        """Centre (x, y) of every shape at every frame: [[(x, y) per frame] per shape]."""
        return [[s.centre(t, self.width, self.height) for t in range(self.frames)] for s in self.shapes]

    @property
    def caption(self):
        parts = [f"{'an' if s.colour[0] in 'aeiou' else 'a'} {s.colour} {s.shape} moving {s.direction}"
                 for s in self.shapes]
        vx, vy = self.bg_velocity
        drift = ("right" if vx > 0 else "left") if abs(vx) >= abs(vy) else ("down" if vy > 0 else "up")
        return f"{' and '.join(parts)} over a {self.background} background drifting {drift}"


def make_scene(seed, frames=17, height=64, width=64):
    """The scene of SEED: 1-3 shapes, one of BACKGROUNDS, speeds of 0.5-2.5 pixels a frame."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    bg = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    c0, c1 = rng.choice(len(names), 2, replace=False)
    bg_colours = tuple(tuple(int(v * 0.6 + 40) for v in COLOURS[names[i]]) for i in (c0, c1))  # dimmer than shapes
    shapes = []
    for _ in range(rng.integers(1, 4)):
        r = float(rng.uniform(0.08, 0.16) * min(height, width))
        start = (float(rng.uniform(r, width - r)), float(rng.uniform(r, height - r)))
        speed, angle = rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
        shapes.append(MovingShape(SHAPES[rng.integers(len(SHAPES))], names[rng.integers(len(names))], r, start,
                                  (float(speed * np.cos(angle)), float(speed * np.sin(angle)))))
    bg_speed, bg_angle = rng.uniform(0.3, 1.5), rng.uniform(0, 2 * np.pi)
    params = (float(rng.uniform(6, 14)), float(rng.uniform(0, np.pi)), int(rng.integers(1 << 30)),
              (float(rng.uniform(0, width)), float(rng.uniform(0, height))))
    return Scene(seed, frames, height, width, bg, bg_colours,
                 (float(bg_speed * np.cos(bg_angle)), float(bg_speed * np.sin(bg_angle))), params, tuple(shapes))


def _reflect(p, lo, hi):
    span = hi - lo
    if span <= 0:
        return lo
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def _texture(kind, x, y, params):
    """Blend weight in [0, 1] of the second background colour at (x, y)."""
    period, angle, seed, (cx, cy) = params
    if kind == "striped":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    if kind == "checkerboard":
        return ((np.floor(x / period) + np.floor(y / period)) % 2).astype(np.float32)
    if kind == "rippled":
        return 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(x - cx, y - cy) / period)
    rng = np.random.default_rng(seed)  # cloudy: a few random plane waves
    field = sum(np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / (period * s) + p)
                for a, s, p in zip(rng.uniform(0, np.pi, 4), rng.uniform(1.5, 4, 4), rng.uniform(0, 6.3, 4)))
    return 0.5 + 0.125 * field


def _signed_distance(shape, dx, dy, r):
    if shape == "circle":
        return np.hypot(dx, dy) - r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - r * 0.85
    # triangle pointing up: three half-planes through the circumcircle of radius r
    n = [(0.0, 1.0), (0.866, -0.5), (-0.866, -0.5)]
    return np.max([dx * a + dy * b for a, b in n], axis=0) - r * 0.5
