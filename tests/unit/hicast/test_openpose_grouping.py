"""Multi-person decoding from keypoint heatmaps + PAFs, on the outputs an OpenPose body model gives for a
synthetic image of two people side by side (Gaussian peaks at the joints, unit limb vectors along each limb)."""
import numpy as np
import torch

from hicast.openpose_grouping import PAF_LIMBS, group_people
from hicast.pose_maps import COLOURS, LIMBS, render_poses

STRIDE = 8
# one standing body in body-18 order (nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist,
# r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear), x relative to the body's centre
BODY = [(0, 30), (0, 50), (-18, 50), (-24, 80), (-26, 110), (18, 50), (24, 80), (26, 110), (-10, 120), (-12, 160),
        (-12, 200), (10, 120), (12, 160), (12, 200), (-5, 25), (5, 25), (-10, 28), (10, 28)]


def model_outputs(centres, h=256, w=384, sigma=1.0):
    """Heatmaps [18, h/8, w/8] and PAFs [38, h/8, w/8] of people standing at the CENTRES (x)."""
    gh, gw = h // STRIDE, w // STRIDE
    ys, xs = torch.meshgrid(torch.arange(gh) + 0.5, torch.arange(gw) + 0.5, indexing="ij")
    heat, paf = torch.zeros(18, gh, gw), torch.zeros(38, gh, gw)
    people = [[(cx + x, y) for x, y in BODY] for cx in centres]
    for body in people:
        for k, (x, y) in enumerate(body):
            g = torch.exp(-((xs - x / STRIDE) ** 2 + (ys - y / STRIDE) ** 2) / (2 * sigma ** 2))
            heat[k] = torch.maximum(heat[k], g)
        for (a, b), (cx_, cy_) in PAF_LIMBS:
            (xa, ya), (xb, yb) = (np.array(body[a]) / STRIDE), (np.array(body[b]) / STRIDE)
            d = np.array([xb - xa, yb - ya])
            length = np.linalg.norm(d)
            u = d / length
            along = (xs - xa) * u[0] + (ys - ya) * u[1]
            across = ((xs - xa) * u[1] - (ys - ya) * u[0]).abs()
            on = (along >= -0.5) & (along <= length + 0.5) & (across <= 1.0)
            paf[cx_][on], paf[cy_][on] = float(u[0]), float(u[1])
    return heat.numpy(), paf.numpy(), people


def test_two_people_get_two_skeletons_with_their_own_joints():
    heat, paf, truth = model_outputs([100, 280])
    found = group_people(heat, paf, 256, 384)
    assert len(found) == 2
    for body, want in zip(found, truth):
        for k, (point, (x, y)) in enumerate(zip(body, want)):
            assert point is not None, k
            assert abs(point[0] - x) <= STRIDE and abs(point[1] - y) <= STRIDE, (k, point, (x, y))
    drawn = (render_poses([found], 256, 384, 3, "cpu")[0] * 255).round().byte().numpy()
    cols = np.nonzero(drawn.sum(axis=(0, 2)))[0]
    assert cols.min() < 100 < cols.max() and not drawn[:, 150:230].any()  # two skeletons, nothing drawn between
    colours = {tuple(c) for c in drawn.reshape(-1, 3).tolist()}
    assert {tuple(int(c * 0.6) for c in colour) for colour in COLOURS[:len(LIMBS)]} <= colours


def test_limbs_without_affinity_are_not_joined():
    heat, paf, _ = model_outputs([100, 280])
    assert group_people(heat, np.zeros_like(paf), 256, 384) == []  # peaks but no limbs: nobody
    one_heat, one_paf, _ = model_outputs([190])
    assert len(group_people(one_heat, one_paf, 256, 384)) == 1
