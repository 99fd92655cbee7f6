import bvhio
import numpy as np
import pytest

from stylemotif.bvh import from_bvh_text, load_bvh, save_bvh, to_bvh_text
from stylemotif.humanml3d import MotionError
from stylemotif.procedural import generate
from stylemotif.render import render_skeleton
from stylemotif.skeleton import JOINT_NAMES

ROUND_TRIP_TOL_M = 1e-5  # 6-decimal centimetres in the file


@pytest.fixture
def joints():
    return generate("walk", "proud", 31, np.random.default_rng(4)).joints


def test_bvh_round_trip_reproduces_joint_positions(tmp_path, joints):
    path = save_bvh(str(tmp_path / "walk.bvh"), joints)
    back, fps = load_bvh(path)
    assert fps == pytest.approx(20.0)
    assert back.shape == joints.shape
    assert np.abs(back - joints).max() < ROUND_TRIP_TOL_M
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_bvh_opens_in_an_independent_parser(tmp_path, joints):
    path = save_bvh(str(tmp_path / "walk.bvh"), joints)
    root = bvhio.readAsHierarchy(path)
    names = [j.Name for j, _, _ in root.layout()]
    assert sorted(names) == sorted(JOINT_NAMES)
    for frame in (0, 17, 30):
        root.loadPose(frame)
        for j, _, _ in root.layout():
            pos = np.array(j.PositionWorld) / 100.0
            assert np.abs(pos - joints[frame, JOINT_NAMES.index(j.Name)]).max() < 1e-4  # bvhio works in float32


def test_unknown_or_missing_bvh_joints_are_named(joints):
    text = to_bvh_text(joints).replace("JOINT left_elbow", "JOINT LeftForeArm")
    with pytest.raises(MotionError, match=r"unknown BVH joints \['LeftForeArm'\].*missing joints \['left_elbow'\]"):
        from_bvh_text(text)
    with pytest.raises(MotionError, match="not a BVH"):
        from_bvh_text("hello")
    truncated = to_bvh_text(joints).rsplit("\n", 3)[0]
    with pytest.raises(MotionError, match="values"):
        from_bvh_text(truncated)


def test_bvh_channel_order_is_read_from_the_file(joints):
    # rewrite one joint's rotation channels in another order with the same rotation -> same positions
    from scipy.spatial.transform import Rotation
    lines = to_bvh_text(joints).splitlines()
    motion = lines.index("MOTION")
    values = np.array([[float(v) for v in line.split()] for line in lines[motion + 3:]])
    col = 6  # first joint after the root (left_hip) in the written order
    xyz = Rotation.from_euler("ZYX", values[:, col:col + 3], degrees=True).as_euler("XYZ", degrees=True)
    values[:, col:col + 3] = xyz
    hier = "\n".join(lines[:motion]).replace("JOINT left_hip\n  {\n    OFFSET 7.000000 -8.000000 0.000000\n    CHANNELS 3 Zrotation Yrotation Xrotation",
                                             "JOINT left_hip\n  {\n    OFFSET 7.000000 -8.000000 0.000000\n    CHANNELS 3 Xrotation Yrotation Zrotation")
    assert hier != "\n".join(lines[:motion])
    text = hier + "\n" + "\n".join(lines[motion:motion + 3]) + "\n" + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    back, _ = from_bvh_text(text)
    assert np.abs(back - joints).max() < 1e-5


def test_render_is_a_real_image_batch(joints):
    frames = render_skeleton(joints, width=96, height=64, azimuth=30, elevation=20)
    assert frames.shape == (31, 64, 96, 3) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    ink = (frames.sum(-1) < 1.5).mean(axis=(1, 2))  # dark/coloured pixels per frame: the skeleton
    assert (ink > 0.002).all()
    assert not np.array_equal(frames[0], frames[15])  # it moves
    side = render_skeleton(joints[:1], width=96, height=64, azimuth=90, elevation=20)
    assert not np.array_equal(side[0], frames[0])  # the camera option changes the view
    with pytest.raises(ValueError, match="size"):
        render_skeleton(joints, width=4, height=4)
