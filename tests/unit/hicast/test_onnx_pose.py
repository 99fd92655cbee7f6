"""User-provided ONNX pose models: a colour-dot detector with fixed weights, exported with torch.onnx, has
its heatmap peaks exactly where the test image has its dots, so decoding and drawing are checked for real."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hicast import onnx_pose
from hicast.pose_maps import COLOURS

pytest.importorskip("onnx")  # torch.onnx.export needs it
pytest.importorskip("onnxruntime")

SIGMA = 0.1


class ColourDotDetector(torch.nn.Module):
    """Heatmap k = avgpool_8(exp(-||x - c_k||^2 / sigma^2)) with c_k = COLOURS[k] in the model's input space
    (BGR, v/256 - 0.5): 1 on pixels of exactly that colour, ~0 elsewhere; 19th channel = background
    (1 - max_k). No PAF output: the single-person decoding path."""

    def __init__(self):
        super().__init__()
        c = torch.tensor([colour[::-1] for colour in COLOURS], dtype=torch.float32) / 256 - 0.5  # [18, 3] BGR
        self.conv = torch.nn.Conv2d(3, len(COLOURS), 1)
        with torch.no_grad():  # -||x - c||^2 = 2 c.x - ||c||^2 - ||x||^2
            self.conv.weight.copy_(2 * c[:, :, None, None] / SIGMA ** 2)
            self.conv.bias.copy_(-(c * c).sum(1) / SIGMA ** 2)

    def forward(self, x):
        heat = F.avg_pool2d(torch.exp(self.conv(x) - (x * x).sum(1, keepdim=True) / SIGMA ** 2), 8)
        return torch.cat([heat, 1 - heat.amax(1, keepdim=True)], 1)


def export(path, size=None):
    x = torch.rand(1, 3, *(size or (64, 64)))
    dynamic = None if size else {"image": {2: "h", 3: "w"}}
    torch.onnx.export(ColourDotDetector().eval(), x, str(path), input_names=["image"], output_names=["heatmaps"],
                      dynamic_axes=dynamic, dynamo=False)
    return onnx_pose.load_onnx_pose(str(path))


def dots(h=256, w=256, radius=10):
    """One dot per keypoint, coloured COLOURS[k], on a 6x3 grid; returns the IMAGE and the dot centres."""
    img = np.zeros((h, w, 3), np.uint8)
    centres = []
    for k, colour in enumerate(COLOURS):
        x, y = int((k % 6 + 0.5) * w / 6), int((k // 6 + 0.5) * h / 3)
        cv2.circle(img, (x, y), radius, colour, thickness=-1)
        centres.append((x, y))
    return torch.from_numpy(img.astype(np.float32) / 255)[None], centres


@pytest.mark.parametrize("fixed", [None, (128, 128)], ids=["dynamic_size", "fixed_128"])
def test_keypoints_land_on_the_dots_and_are_drawn_in_openpose_colours(tmp_path, fixed):
    session = export(tmp_path / "dots.onnx", fixed)
    image, centres = dots(256, 192 if fixed else 256)
    stride = 8 * 256 / (fixed or (256, 256))[0]  # frame pixels per heatmap cell
    people = onnx_pose.onnx_pose_keypoints(session, image, threshold=0.1, resolution=256)[0]
    assert len(people) == 1
    found = people[0]
    for k, (centre, point) in enumerate(zip(centres, found)):
        assert point is not None, k
        assert abs(point[0] - centre[0]) <= stride and abs(point[1] - centre[1]) <= stride, (k, point, centre)
    drawn = (onnx_pose.onnx_pose_map(session, image, stick_width=3, resolution=256)[0] * 255).round().byte().numpy()
    assert drawn.shape == image.shape[1:]
    for k, point in enumerate(found):  # each joint is a disc of its OpenPose colour at the found keypoint
        assert tuple(drawn[int(point[1]), int(point[0])]) == COLOURS[k], k
    limbs = {tuple(int(c * 0.6) for c in colour) for colour in COLOURS[:17]}  # limbs: 0.6 x their colour
    seen = {tuple(c) for c in drawn.reshape(-1, 3).tolist()}
    assert limbs <= seen <= limbs | set(COLOURS) | {(0, 0, 0)}  # all 17 limbs, nothing but OpenPose colours


def test_nothing_above_threshold_gives_a_black_map(tmp_path):
    session = export(tmp_path / "dots.onnx")
    black = torch.zeros(2, 64, 64, 3)
    assert onnx_pose.onnx_pose_keypoints(session, black, resolution=64) == [[], []]
    assert onnx_pose.onnx_pose_map(session, black, resolution=64).sum() == 0


def test_peak_decoding_on_a_hand_made_heatmap():
    heat = np.zeros((18, 4, 4), np.float32)
    heat[3, 1, 2] = 1.0  # cell (row 1, col 2) of a 4x4 grid over a 32x32 frame: centre (20, 12)
    points = onnx_pose.peak_keypoints(heat, 32, 32, threshold=0.1)
    assert points[:3] == [None] * 3 and points[4:] == [None] * 14
    assert abs(points[3][0] - 20) <= 1 and abs(points[3][1] - 12) <= 1


def test_missing_model_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="hicast_pose"):
        onnx_pose.load_onnx_pose(str(tmp_path / "hicast_pose" / "body.onnx"))
    assert onnx_pose.onnx_model_files(str(tmp_path / "nowhere")) == []


def test_a_model_without_heatmaps_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"keypoint heatmaps \[1, 18\|19, h, w\], got \[\(1, 38, 8, 8\)\]"):
        onnx_pose.heatmap_output([np.zeros((1, 38, 8, 8), np.float32)])
