"""Temporal smoothing for per-frame control maps (video), and the flicker measure it is judged by."""
import torch
import torch.nn.functional as F

from .image_batch import as_rgb_batch


def frame_change(maps):
    """Flicker: mean over t of mean |m_t - m_{t-1}| for a map batch [T, H, W, C] (0 for a single frame)."""
    if maps.shape[0] < 2:
        return 0.0
    return (maps[1:].float() - maps[:-1].float()).abs().mean().item()


def temporal_smooth(maps, frames=None, strength=0.7, motion_threshold=0.04, window=9):
    """Motion-gated exponential smoothing over the frame axis.

    s_0 = m_0;  s_t = g_t * m_t + (1 - g_t) * (a * s_{t-1} + (1 - a) * m_t),  a = STRENGTH,
    g_t = [box_w(|f_t - f_{t-1}|) > motion_threshold]: where the source frames f (or the maps when no
    frames are given) really change, the map follows at once; elsewhere per-frame detector noise is averaged.
    """
    maps = as_rgb_batch(maps, "maps")
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"strength: expected 0 <= strength < 1, got {strength}")
    guide = maps if frames is None else as_rgb_batch(frames, "frames").to(maps.device)
    if guide.shape[:3] != maps.shape[:3]:
        raise ValueError(f"frames: expected the maps' frame count and size {tuple(maps.shape[:3])}, "
                         f"got {tuple(guide.shape[:3])}")
    grey = guide.mean(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    out = [maps[0]]
    for t in range(1, maps.shape[0]):
        motion = F.avg_pool2d((grey[t] - grey[t - 1]).abs()[None], window, 1, window // 2, count_include_pad=False)
        gate = (motion[0, 0] > motion_threshold).float()[..., None]
        ema = strength * out[-1] + (1.0 - strength) * maps[t]
        out.append(gate * maps[t] + (1.0 - gate) * ema)
    return torch.stack(out)
