import pytest
import torch

from hicast.edge_maps import canny
from hicast.temporal_smoothing import frame_change, temporal_smooth


def static_camera_clip(photo, frames=8, noise=0.02, seed=0):
    """A static-camera clip: the same photo with per-frame sensor noise and one small square moving right."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(photo.permute(0, 3, 1, 2), size=(128, 128), mode="area").permute(0, 2, 3, 1)
    clip = base.repeat(frames, 1, 1, 1) + noise * torch.randn(frames, 128, 128, 3, generator=g)
    for t in range(frames):
        clip[t, 90:110, 10 + 8 * t:30 + 8 * t] = 1.0
    return clip.clamp(0, 1)


def test_smoothing_lowers_frame_to_frame_change_on_a_static_camera(photos):
    clip = static_camera_clip(photos["astronaut"])
    maps = canny(clip, 60, 120)
    smoothed = temporal_smooth(maps, frames=clip)
    assert smoothed.shape == maps.shape
    assert frame_change(smoothed) < 0.7 * frame_change(maps)


def test_moving_object_is_followed_not_smeared(photos):
    clip = static_camera_clip(photos["astronaut"])
    maps = canny(clip, 60, 120)
    smoothed = temporal_smooth(maps, frames=clip)
    region = (slice(None), slice(88, 112), slice(60, 100))  # where the square sits in the last frame
    assert torch.equal(smoothed[-1][region], maps[-1][region])


def test_strength_zero_is_identity_and_first_frame_is_kept(photos):
    clip = static_camera_clip(photos["coffee"], frames=4)
    maps = canny(clip)
    assert torch.equal(temporal_smooth(maps, strength=0.0), maps)
    assert torch.equal(temporal_smooth(maps, strength=0.9)[0], maps[0])


def test_mismatched_frames_are_refused():
    with pytest.raises(ValueError, match="frames"):
        temporal_smooth(torch.rand(3, 16, 16, 3), frames=torch.rand(3, 8, 8, 3))
