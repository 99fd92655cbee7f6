"""The HumanML3D 263-dimensional motion feature format (Guo et al. 2022), 22 joints at 20 fps.

Per frame, in this order (F joint-position frames give F-1 feature frames):

    slice      width  content
    0:1        1      root rotational velocity about y (HumanML3D stores half the per-frame yaw increment)
    1:3        2      root linear velocity in x, z, expressed in the root's facing frame
    3:4        1      root height y
    4:67       63     ric: joints 1..21 relative to the root in x/z, rotated into the facing frame (y absolute)
    67:193     126    rot: 6D rotation (first two matrix columns) of joints 1..21, local to the parent
    193:259    66     local velocity of all 22 joints, in the facing frame
    259:263    4      foot contacts (left ankle, left foot, right ankle, right foot), 0/1

Positions are recovered from the root channels and ric only (recover_from_ric, as HumanML3D's own
evaluation does). The rot slots hold this package's IK rotation of each joint itself (BVH
convention); the original dataset stores per-bone rotations there, which no code here reads.
"""
import math

import numpy as np
import torch

from .kinematics import inverse_kinematics
from .skeleton import FACE_JOINTS, FOOT_LEFT, FOOT_RIGHT, NUM_JOINTS, REST_OFFSETS

FEATURE_DIM = 263
LAYOUT = {
    "root_rot_vel": slice(0, 1),
    "root_lin_vel_xz": slice(1, 3),
    "root_y": slice(3, 4),
    "ric": slice(4, 4 + (NUM_JOINTS - 1) * 3),
    "rot": slice(67, 67 + (NUM_JOINTS - 1) * 6),
    "local_vel": slice(193, 193 + NUM_JOINTS * 3),
    "foot_contact": slice(259, 263),
}
FOOT_CONTACT_THRESHOLD = 0.002  # squared per-frame displacement, HumanML3D process_file(thres=0.002)


class MotionError(ValueError):
    """A motion array that is not a usable HumanML3D feature sequence or joint sequence."""


def check_features(x, name="motion"):
    """Validate a [F, 263] (or [B, F, 263]) feature array and return it as a float32 tensor."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if t.ndim not in (2, 3) or t.shape[-1] != FEATURE_DIM:
        raise MotionError(f"{name}: expected HumanML3D features of shape [frames, {FEATURE_DIM}] "
                          f"(or [batch, frames, {FEATURE_DIM}]), got shape {tuple(t.shape)}")
    if t.shape[-2] < 2:
        raise MotionError(f"{name}: expected at least 2 frames, got {t.shape[-2]} (empty motion)")
    if not torch.is_floating_point(t):
        t = t.float()
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise MotionError(f"{name}: contains {bad} NaN/inf values; expected finite numbers")
    return t.float()


def check_joints(x, name="joints", min_frames=2):
    """Validate a [F, 22, 3] joint-position array and return it as a float64 tensor."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if t.ndim != 3 or tuple(t.shape[1:]) != (NUM_JOINTS, 3):
        raise MotionError(f"{name}: expected joint positions of shape [frames, {NUM_JOINTS}, 3], got {tuple(t.shape)}")
    if t.shape[0] < min_frames:
        raise MotionError(f"{name}: expected at least {min_frames} frame(s), got {t.shape[0]} (empty motion)")
    if not torch.isfinite(t).all():
        raise MotionError(f"{name}: contains NaN/inf values; expected finite numbers")
    return t.double()


def rotate_y(v, angle):
    """Right-handed rotation about +y by angle (rad): x' = x cos a + z sin a, z' = -x sin a + z cos a."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([x * c + z * s, y, -x * s + z * c], -1)


def facing_angle(positions):
    """Heading h per frame [F] with forward = (sin h, 0, cos h); forward = y × across (HumanML3D)."""
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    across = positions[:, r_hip] - positions[:, l_hip] + positions[:, r_sdr] - positions[:, l_sdr]
    # forward = (0,1,0) x across = (across_z, 0, -across_x)
    return torch.atan2(across[:, 2], -across[:, 0])


def canonicalize(positions):
    """Put the motion on the floor, the first root over the origin and the first frame facing +z."""
    p = positions - torch.tensor([0.0, 1.0, 0.0], dtype=positions.dtype) * positions[..., 1].min()
    p = p - p[:1, :1] * torch.tensor([1.0, 0.0, 1.0], dtype=p.dtype)
    return rotate_y(p, -facing_angle(p[:1])[0])


def features_from_joints(positions, offsets=REST_OFFSETS):
    """HumanML3D features [F-1, 263] from joint positions [F, 22, 3] (HumanML3D process_file).

    The motion is canonicalised first (floor, origin, facing +z), so the result does not depend on
    where the motion was placed or which way it faced at the start.
    """
    p = canonicalize(check_joints(positions))
    heading = facing_angle(p)
    psi = -heading  # world -> facing-frame yaw: rotate_y(forward, psi) = +z
    root = p[:, 0]
    # root channels: velocities use the next frame's facing, as HumanML3D's get_rifke/get_cont6d_params
    dpsi = torch.remainder(psi[1:] - psi[:-1] + math.pi, 2 * math.pi) - math.pi
    rot_vel = (dpsi / 2)[:, None]
    lin_vel = rotate_y(root[1:] - root[:-1], psi[1:])[:, [0, 2]]
    root_y = root[:-1, 1:2]
    # ric: positions relative to the root in x/z, in the facing frame, y absolute
    rel = p - root[:, None] * torch.tensor([1.0, 0.0, 1.0], dtype=p.dtype)
    ric = rotate_y(rel, psi[:, None])[:-1, 1:].reshape(-1, (NUM_JOINTS - 1) * 3)
    rot = inverse_kinematics(p, offsets)[:-1, 1:, :, :2].transpose(-1, -2).reshape(-1, (NUM_JOINTS - 1) * 6)
    local_vel = rotate_y(p[1:] - p[:-1], psi[:-1, None]).reshape(-1, NUM_JOINTS * 3)
    disp = ((p[1:] - p[:-1]) ** 2).sum(-1)
    contacts = (disp[:, list(FOOT_LEFT) + list(FOOT_RIGHT)] < FOOT_CONTACT_THRESHOLD).to(p.dtype)
    feats = torch.cat([rot_vel, lin_vel, root_y, ric, rot, local_vel, contacts], -1)
    assert feats.shape[-1] == FEATURE_DIM
    return feats.float()


def recover_root(features):
    """Root yaw half-angle r [..., F] and root positions [..., F, 3] (HumanML3D recover_root_rot_pos)."""
    rot_vel = features[..., 0]
    r = torch.zeros_like(rot_vel)
    r[..., 1:] = rot_vel[..., :-1]
    r = torch.cumsum(r, -1)
    vel = torch.zeros(features.shape[:-1] + (3,), dtype=features.dtype, device=features.device)
    vel[..., 1:, 0] = features[..., :-1, 1]
    vel[..., 1:, 2] = features[..., :-1, 2]
    pos = torch.cumsum(rotate_y(vel, -2 * r), -2)
    pos[..., 1] = features[..., 3]
    return r, pos


def recover_from_ric(features):
    """Joint positions [..., F, 22, 3] from features [..., F, 263] (HumanML3D recover_from_ric)."""
    r, root = recover_root(features)
    ric = features[..., LAYOUT["ric"]].reshape(features.shape[:-1] + (NUM_JOINTS - 1, 3))
    joints = rotate_y(ric, -2 * r[..., None])
    joints = joints + (root * torch.tensor([1.0, 0.0, 1.0], dtype=root.dtype, device=root.device))[..., None, :]
    return torch.cat([root[..., None, :], joints], -2)


class Normalizer:
    """Per-channel z-scoring with HumanML3D's Mean.npy / Std.npy: x_n = (x - mean) / std."""

    def __init__(self, mean, std):
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(FEATURE_DIM)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(FEATURE_DIM)
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all() and (self.std > 0).all()):
            raise MotionError("normalisation stats: expected finite mean and positive finite std of width 263")

    @classmethod
    def fit(cls, features, min_std=1e-2):
        """Stats over every frame of a list of [F, 263] arrays; std floored at min_std (constant channels)."""
        x = torch.cat([check_features(f, "features") for f in features], 0)
        return cls(x.mean(0), x.std(0).clamp_min(min_std))

    def normalize(self, x):
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x):
        return x * self.std.to(x) + self.mean.to(x)
