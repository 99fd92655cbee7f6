"""The control video a pair's two generations share: which maps each control needs, and their composition."""
import pytest
import torch

from dreamstyle.pair_control import CONTROLS, compose_control, maps_for


def test_depth_and_pose_is_the_default_and_each_control_names_its_maps():
    assert CONTROLS[0] == "depth+pose"
    assert maps_for("depth+pose") == ("depth_map", "pose_map") and maps_for("canny") == ("edge_map",)
    with pytest.raises(ValueError, match="control: expected one of"):
        maps_for("normal")


def test_pose_skeleton_is_drawn_over_depth():
    depth = torch.linspace(0, 1, 16).view(1, 1, 16, 1).expand(2, 8, 16, 1)  # grey depth, one channel
    pose = torch.zeros(2, 8, 16, 3)
    pose[:, 3, 4:12] = torch.tensor([0.0, 0.8, 0.2])
    out = compose_control("depth+pose", {"depth_map": depth, "pose_map": pose})
    assert out.shape == (2, 8, 16, 3)
    assert torch.equal(out[:, 3, 4:12], pose[:, 3, 4:12])
    assert torch.equal(out[:, 0], depth[:, 0].expand(2, 16, 3))  # off the skeleton: depth in all channels
    assert torch.equal(compose_control("depth", {"depth_map": depth}), depth.expand(2, 8, 16, 3))


def test_mismatched_or_missing_maps_are_named():
    depth = torch.zeros(2, 8, 16, 3)
    with pytest.raises(ValueError, match="pose_map: expected \\[2, 8, 16, 3\\]"):
        compose_control("depth+pose", {"depth_map": depth, "pose_map": torch.zeros(3, 8, 16, 3)})
    with pytest.raises(ValueError, match="pose_map: control 'pose' needs it"):
        compose_control("pose", {"depth_map": depth})
