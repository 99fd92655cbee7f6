"""The control video both generations of a pair share (DreamStyle data pipeline: depth and human-pose
control of the I2V model, the same signal for the raw and the stylized video).

CONTROLS are the choices; `maps_for(control)` names the extractor maps a choice needs, so a graph only
runs those; `compose_control` makes the one control video the Wan control model takes. "depth+pose"
(the paper's pair) draws the pose skeleton over the depth map: the skeleton's pixels (any channel above
POSE_THRESHOLD) replace the depth there, so both signals reach one control video.
"""
import torch

CONTROLS = ("depth+pose", "depth", "pose", "canny")
POSE_THRESHOLD = 0.05


def maps_for(control):
    """The extractor maps (depth_map, pose_map, edge_map) CONTROL needs."""
    if control not in CONTROLS:
        raise ValueError(f"control: expected one of {', '.join(CONTROLS)}, got {control!r}")
    return {"depth+pose": ("depth_map", "pose_map"), "depth": ("depth_map",), "pose": ("pose_map",),
            "canny": ("edge_map",)}[control]


def compose_control(control, maps):
    """The control video [T, H, W, 3] (floats 0..1) for CONTROL from MAPS (name -> [T, H, W, C] tensor)."""
    need = maps_for(control)
    got = []
    for name in need:
        m = maps.get(name)
        if m is None:
            raise ValueError(f"{name}: control {control!r} needs it, got nothing")
        if m.ndim != 4 or m.shape[-1] not in (1, 3) or m.shape[0] < 1:
            raise ValueError(f"{name}: expected images [T, H, W, 1|3], got {list(m.shape)}")
        got.append(m[..., :3].expand(*m.shape[:3], 3).float().clamp(0, 1))
    first = got[0]
    for name, m in zip(need[1:], got[1:]):
        if m.shape != first.shape:
            raise ValueError(f"{name}: expected {list(first.shape)} like {need[0]}, got {list(m.shape)}")
    if control != "depth+pose":
        return first.contiguous()
    depth, pose = got
    on_skeleton = (pose.amax(-1, keepdim=True) > POSE_THRESHOLD)
    return torch.where(on_skeleton, pose, depth).contiguous()
