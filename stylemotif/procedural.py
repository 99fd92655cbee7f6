"""Procedural human motion with known content and style: the stand-in for HumanML3D / 100STYLE.

Each clip animates the skeleton of skeleton.py by forward kinematics (rigid bones), so content
(walk, run, jump, wave) and style parameters are known exactly:

    stride     scale of leg swing and of the distance covered
    bounce     vertical bob / jump height
    arm_swing  amplitude of arm motion
    lean       forward torso lean in radians (negative leans back)
    tempo      cycle frequency multiplier

Named styles are presets of these five numbers; every clip jitters them, its heading and phase, so
a classifier must learn the style from the motion itself. This gives a labelled style-recognition set.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from .kinematics import forward_kinematics
from .skeleton import FPS, NUM_JOINTS, REST_OFFSETS

CONTENTS = ("walk", "run", "jump", "wave")
STYLE_PARAMS = ("stride", "bounce", "arm_swing", "lean", "tempo")
STYLES = {
    "neutral": (1.0, 1.0, 1.0, 0.05, 1.0),
    "old": (0.55, 0.5, 0.35, 0.45, 0.7),
    "happy": (1.1, 2.2, 1.6, -0.05, 1.35),
    "proud": (1.3, 0.8, 1.8, -0.25, 0.85),
    "angry": (1.35, 1.4, 2.2, 0.3, 1.3),
}
CAPTIONS = {
    "walk": ("a person walks forward", "someone is walking straight ahead", "a man walks"),
    "run": ("a person runs forward", "someone is running", "a person jogs ahead quickly"),
    "jump": ("a person jumps up and down", "someone hops forward", "a person is jumping"),
    "wave": ("a person waves with the right hand", "someone stands and waves hello", "a man waves his arm"),
}
STYLE_TEXTS = {
    "neutral": ("neutral", "in a normal way", "plainly"),
    "old": ("old", "like an elderly person", "slowly like an old man"),
    "happy": ("happy", "joyfully and bouncy", "cheerful and excited"),
    "proud": ("proud", "proudly with chest out", "confident and upright"),
    "angry": ("angry", "aggressively and furious", "in an angry mood"),
}
STANDING_PELVIS_HEIGHT = 0.94


@dataclass
class Clip:
    joints: np.ndarray  # [F, 22, 3] metres, y up
    content: str
    style: str
    params: dict  # the jittered style parameters actually used


def _rx(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _ry(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rz(a):
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def _relu(x):
    return torch.clamp_min(x, 0.0)


def _pose(content, t, phase, p):
    """Local joint rotations [F, 22, 3, 3], root offset (forward, up, side) [F, 3] for one content."""
    s, b, a, lean, tempo = (p[k] for k in STYLE_PARAMS)
    frames = t.shape[0]
    zero = torch.zeros_like(t)
    rx = {j: zero.clone() for j in range(NUM_JOINTS)}
    rz = {j: zero.clone() for j in range(NUM_JOINTS)}
    yaw = zero.clone()
    fwd, up, side = zero.clone(), zero.clone(), zero.clone()
    if content in ("walk", "run"):
        run = content == "run"
        f = (1.4 if run else 0.9) * tempo
        ph = 2 * math.pi * f * t + phase
        hip_amp, knee_amp = (0.6, 1.1) if run else (0.35, 0.6)
        rx[1], rx[2] = -hip_amp * s * torch.sin(ph), hip_amp * s * torch.sin(ph)
        rx[4] = 0.1 + knee_amp * s * _relu(torch.cos(ph))
        rx[5] = 0.1 + knee_amp * s * _relu(-torch.cos(ph))
        rx[7], rx[8] = 0.15 * s * torch.sin(ph), -0.15 * s * torch.sin(ph)
        rx[16], rx[17] = (0.5 if run else 0.3) * a * torch.sin(ph), -(0.5 if run else 0.3) * a * torch.sin(ph)
        elbow = -(1.3 if run else 0.2)
        rx[18] = elbow - 0.2 * a * _relu(-torch.sin(ph))
        rx[19] = elbow - 0.2 * a * _relu(torch.sin(ph))
        rz[16], rz[17] = 0.08 + zero, -0.08 + zero
        yaw = 0.06 * s * torch.sin(ph)
        speed = 2 * (1.0 if run else 0.7) * s * f
        fwd = speed * t
        up = (0.06 if run else 0.025) * b * torch.cos(2 * ph) - (0.05 if run else 0.01)
    elif content == "jump":
        f = 0.8 * tempo
        ph = 2 * math.pi * f * t + phase
        air, crouch = _relu(torch.sin(ph)), _relu(-torch.sin(ph))
        rx[1] = rx[2] = -0.9 * crouch
        rx[4] = rx[5] = 1.6 * crouch + 0.05
        rx[7] = rx[8] = -0.7 * crouch + 0.3 * air
        rx[16] = rx[17] = -1.4 * a * air + 0.4 * a * crouch
        rz[16], rz[17] = 0.15 + 0.3 * a * air, -0.15 - 0.3 * a * air
        rx[18] = rx[19] = -0.3 + zero
        up = 0.22 * b * air - 0.25 * crouch
        fwd = 0.35 * s * f * t + 0.1 * s * torch.sin(ph)
    elif content == "wave":
        f = 1.5 * tempo
        ph = 2 * math.pi * f * t + phase
        rz[17] = -2.5 + 0.1 * a * torch.sin(ph)
        rz[19] = 0.6 * a * torch.sin(ph)
        rx[19] = -0.4 + zero
        rx[16] = 0.1 * a * torch.sin(0.5 * ph)
        rz[16] = 0.1 + zero
        rx[4] = rx[5] = 0.1 + 0.15 * b * (1 + torch.sin(2 * ph))
        rx[1] = rx[2] = -0.5 * rx[4]
        rx[7] = rx[8] = -0.5 * rx[4]
        side = 0.06 * s * torch.sin(0.5 * ph)
        up = -0.04 * b * (1 + torch.sin(2 * ph))
    else:
        raise ValueError(f"content: expected one of {CONTENTS}, got {content!r}")
    # torso lean spread over the three spine joints, counter-rotate the neck a little
    for j in (3, 6, 9):
        rx[j] = rx[j] + lean / 3
    rx[12] = rx[12] - lean / 3
    local = torch.stack([_rz(rz[j]) @ _rx(rx[j]) for j in range(NUM_JOINTS)], 1)
    local[:, 0] = _ry(yaw)
    return local, torch.stack([fwd, up, side], -1), frames


def generate(content, style, frames=41, rng=None, jitter=0.08):
    """One clip of `frames` joint frames at 20 fps; rng is a numpy Generator (seeded by the caller)."""
    if style not in STYLES:
        raise ValueError(f"style: expected one of {tuple(STYLES)}, got {style!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    params = {k: v * float(rng.uniform(1 - jitter, 1 + jitter)) for k, v in zip(STYLE_PARAMS, STYLES[style])}
    phase = float(rng.uniform(0, 2 * math.pi))
    heading = float(rng.uniform(-math.pi, math.pi))
    t = torch.arange(frames, dtype=torch.float64) / FPS
    local, offset, _ = _pose(content, t, phase, params)
    fwd, up, side = offset.unbind(-1)
    root = torch.stack([side, STANDING_PELVIS_HEIGHT + up, fwd], -1)
    local[:, 0] = _ry(torch.full_like(t, heading)) @ local[:, 0]
    root = torch.cat([root[:, :1] * math.cos(heading) + root[:, 2:] * math.sin(heading), root[:, 1:2],
                      -root[:, :1] * math.sin(heading) + root[:, 2:] * math.cos(heading)], -1)
    joints = forward_kinematics(local, root, REST_OFFSETS)
    return Clip(joints.numpy(), content, style, params)


def sample_clips(n, frames=41, seed=0, contents=CONTENTS, styles=tuple(STYLES)):
    """n clips with content and style drawn uniformly (balanced by cycling through the grid)."""
    rng = np.random.default_rng(seed)
    grid = [(c, s) for c in contents for s in styles]
    order = rng.permutation(np.arange(n) % len(grid))
    return [generate(*grid[i], frames=frames, rng=rng) for i in order]
