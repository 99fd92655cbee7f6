"""BVH export and import of 22-joint motions.

Export: rest offsets are skeleton.REST_OFFSETS directions scaled to the motion's median bone lengths;
per-frame local rotations come from inverse kinematics and are written as Z, Y, X Euler channels
(intrinsic, degrees); the root also gets X/Y/Z position channels. Units: `units_per_metre` (100 =
centimetres, what most BVH tools expect). Import parses any BVH whose joints carry the 22 HumanML3D
joint names (any channel order, optional position channels) and runs forward kinematics.
For rigid-bone motions (the procedural generator) import(export(p)) = p to within the 6-decimal
text precision; for motions whose bone lengths vary per frame, bones take their median length.
"""
import os

import numpy as np
from scipy.spatial.transform import Rotation

from .humanml3d import MotionError, check_joints
from .kinematics import bone_lengths, inverse_kinematics
from .skeleton import FPS, JOINT_NAMES, PARENTS, REST_OFFSETS, children

EULER_ORDER = "ZYX"


def rest_offsets_for(positions):
    """REST_OFFSETS directions with the motion's median bone length per joint [22, 3]."""
    lengths = bone_lengths(positions).median(0).values
    dirs = REST_OFFSETS / REST_OFFSETS.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return dirs * lengths[:, None]


def to_bvh_text(positions, units_per_metre=100.0, fps=FPS):
    """BVH text of joint positions [F, 22, 3] in metres."""
    p = check_joints(positions)
    offsets = rest_offsets_for(p)
    local = inverse_kinematics(p, offsets)
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3).numpy()).as_euler(EULER_ORDER, degrees=True).reshape(p.shape[0], -1, 3)
    off = offsets.numpy() * units_per_metre
    lines = ["HIERARCHY"]
    order = []

    def write(j, depth):
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if PARENTS[j] < 0 else 'JOINT'} {JOINT_NAMES[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {off[j, 0]:.6f} {off[j, 1]:.6f} {off[j, 2]:.6f}")
        rot = " ".join(f"{a}rotation" for a in EULER_ORDER)
        lines.append(f"{pad}  CHANNELS {6 if PARENTS[j] < 0 else 3} " + ("Xposition Yposition Zposition " if PARENTS[j] < 0 else "") + rot)
        order.append(j)
        kids = children(j)
        for k in kids:
            write(k, depth + 1)
        if not kids:
            end = off[j] / max(np.linalg.norm(off[j]), 1e-9) * 0.05 * units_per_metre
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}", pad + "  }"])
        lines.append(pad + "}")
    write(0, 0)
    lines += ["MOTION", f"Frames: {p.shape[0]}", f"Frame Time: {1.0 / fps:.6f}"]
    root = p[:, 0].numpy() * units_per_metre
    for f in range(p.shape[0]):
        vals = list(root[f]) + [a for j in order for a in euler[f, j]]
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    return "\n".join(lines) + "\n"


def save_bvh(path, positions, units_per_metre=100.0, fps=FPS):
    """Write a BVH file atomically (temp file + os.replace)."""
    text = to_bvh_text(positions, units_per_metre, fps)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def _parse(text, source):
    tokens = text.split()
    joints, stack, i = [], [], 0  # joints: dict(name, parent, offset, channels)
    if not tokens or tokens[0] != "HIERARCHY":
        raise MotionError(f"{source}: not a BVH file (expected HIERARCHY first)")
    i = 1
    try:
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                joints.append({"name": tokens[i + 1], "parent": stack[-1] if stack else -1, "offset": None, "channels": []})
                i += 2
            elif tok == "End":
                joints.append({"name": None, "parent": stack[-1], "offset": None, "channels": []})  # end site
                i += 2
            elif tok == "{":
                stack.append(len(joints) - 1)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                joints[stack[-1]]["offset"] = [float(v) for v in tokens[i + 1:i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                joints[stack[-1]]["channels"] = tokens[i + 2:i + 2 + n]
                i += 2 + n
            else:
                raise MotionError(f"{source}: unexpected token {tok!r} in the BVH hierarchy")
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.array(tokens[i + 6:], dtype=np.float64)
    except (IndexError, ValueError) as e:
        raise MotionError(f"{source}: malformed BVH ({e})") from e
    n_channels = sum(len(j["channels"]) for j in joints)
    if frames < 1 or values.size != frames * n_channels:
        raise MotionError(f"{source}: expected {frames} frames x {n_channels} channels = {frames * n_channels} values, found {values.size}")
    return joints, values.reshape(frames, n_channels), frame_time


def from_bvh_text(text, units_per_metre=100.0, source="BVH"):
    """(joint positions [F, 22, 3] in metres, fps) from BVH text with the 22 HumanML3D joint names."""
    joints, values, frame_time = _parse(text, source)
    names = [j["name"] for j in joints if j["name"] is not None]
    unknown = [n for n in names if n not in JOINT_NAMES]
    missing = [n for n in JOINT_NAMES if n not in names]
    if unknown or missing:
        raise MotionError(f"{source}: unknown BVH joints {unknown} / missing joints {missing}; "
                          f"expected the 22 HumanML3D joint names {list(JOINT_NAMES)}")
    frames = values.shape[0]
    glob, pos, col = {}, {}, 0
    for k, j in enumerate(joints):
        if j["name"] is None:
            continue
        ch = j["channels"]
        vals = values[:, col:col + len(ch)]
        col += len(ch)
        offset = np.broadcast_to(np.array(j["offset"] or [0.0, 0.0, 0.0]), (frames, 3)).copy()
        for c, name in enumerate(ch):
            if name.endswith("position"):
                offset[:, "XYZ".index(name[0].upper())] = vals[:, c]
        rot_idx = [c for c, name in enumerate(ch) if name.endswith("rotation")]
        if rot_idx:
            order = "".join(ch[c][0].upper() for c in rot_idx)
            local = Rotation.from_euler(order, vals[:, rot_idx], degrees=True).as_matrix()
        else:
            local = np.broadcast_to(np.eye(3), (frames, 3, 3))
        p = j["parent"]
        if p < 0:
            glob[k], pos[k] = local, offset
        else:
            glob[k] = glob[p] @ local
            pos[k] = pos[p] + (glob[p] @ offset[..., None])[..., 0]
    by_name = {j["name"]: k for k, j in enumerate(joints) if j["name"] is not None}
    out = np.stack([pos[by_name[n]] for n in JOINT_NAMES], 1) / units_per_metre
    return out, (1.0 / frame_time if frame_time > 0 else float(FPS))


def load_bvh(path, units_per_metre=100.0):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BVH file not found: {path}")
    with open(path) as f:
        return from_bvh_text(f.read(), units_per_metre, source=path)
