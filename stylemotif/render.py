"""Skeleton preview: joint positions [F, 22, 3] -> image batch [F, H, W, 3] float in 0..1 (numpy/PIL).

Orthographic camera orbiting the motion: azimuth (degrees, about +y; 0 looks at the skeleton's
+z side from the front), elevation (degrees above the horizon), zoom (1 fits the motion with a
margin). follow_root keeps the root centred in every frame; otherwise the whole trajectory is framed.
Right side red, left side blue, spine dark grey, floor grid light grey.
"""
import math

import numpy as np
from PIL import Image, ImageDraw

from .humanml3d import check_joints
from .skeleton import KINEMATIC_CHAIN

CHAIN_COLOURS = ((200, 40, 40), (40, 80, 210), (60, 60, 60), (230, 110, 60), (60, 160, 220))


def _camera(azimuth, elevation):
    """World -> camera rotation: rows are the camera's right, up and forward (depth) axes."""
    a, e = math.radians(azimuth), math.radians(elevation)
    forward = np.array([-math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])  # looking direction
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, forward])


def render_skeleton(joints, width=256, height=256, azimuth=30.0, elevation=15.0, zoom=1.0, follow_root=True,
                    line_width=3, background=(1.0, 1.0, 1.0), grid=True, progress=None):
    """Render every frame; returns float32 [F, height, width, 3] in 0..1. progress(done, total) after
    each frame (it may raise to stop)."""
    p = check_joints(joints, min_frames=1).numpy()
    if width < 16 or height < 16:
        raise ValueError(f"render size: expected width and height >= 16, got {width}x{height}")
    if zoom <= 0:
        raise ValueError(f"zoom: expected > 0, got {zoom}")
    rot = _camera(azimuth, elevation)
    if follow_root:
        centres = p[:, 0] * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 0.5 * (p[..., 1].min() + p[..., 1].max()), 0.0])
    else:
        lo, hi = p.reshape(-1, 3).min(0), p.reshape(-1, 3).max(0)
        centres = np.broadcast_to((lo + hi) / 2, (p.shape[0], 3))
    extent = np.abs((p - centres[:, None]) @ rot.T)[..., :2].max() + 0.2
    scale = zoom * 0.5 * min(width, height) / extent
    bg = tuple(int(round(255 * c)) for c in background)
    frames = []
    for f in range(p.shape[0]):
        img = Image.new("RGB", (width, height), bg)
        draw = ImageDraw.Draw(img)

        def project(x):
            c = (np.asarray(x) - centres[f]) @ rot.T
            return np.stack([width / 2 + scale * c[..., 0], height / 2 - scale * c[..., 1], c[..., 2]], -1)
        if grid:
            gx, gz = np.round(centres[f, 0]), np.round(centres[f, 2])
            for k in np.arange(-3, 3.01, 0.5):
                for a, b in (([gx + k, 0, gz - 3], [gx + k, 0, gz + 3]), ([gx - 3, 0, gz + k], [gx + 3, 0, gz + k])):
                    (x0, y0, _), (x1, y1, _) = project(a), project(b)
                    draw.line([(x0, y0), (x1, y1)], fill=(215, 215, 215), width=1)
        uv = project(p[f])
        segments = [(uv[a, 2] + uv[b, 2], a, b, CHAIN_COLOURS[c]) for c, chain in enumerate(KINEMATIC_CHAIN)
                    for a, b in zip(chain[:-1], chain[1:])]
        for _, a, b, colour in sorted(segments, reverse=True):  # far bones first
            draw.line([tuple(uv[a, :2]), tuple(uv[b, :2])], fill=colour, width=line_width)
        r = max(1, line_width)
        for x, y, _ in uv:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(30, 30, 30))
        frames.append(np.asarray(img, dtype=np.float32) / 255.0)
        if progress is not None:
            progress(f + 1, p.shape[0])
    return np.stack(frames)
