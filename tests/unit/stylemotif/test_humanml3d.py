import math

import numpy as np
import pytest
import torch

from stylemotif.humanml3d import (FEATURE_DIM, LAYOUT, MotionError, Normalizer, canonicalize, check_features,
                                  features_from_joints, recover_from_ric, rotate_y)
from stylemotif.procedural import generate


def clip(content="walk", style="neutral", seed=0, frames=41):
    return generate(content, style, frames, np.random.default_rng(seed)).joints


def test_layout_covers_263_channels_in_order():
    widths = [s.stop - s.start for s in LAYOUT.values()]
    assert widths == [1, 2, 1, 63, 126, 66, 4] and sum(widths) == FEATURE_DIM
    assert all(a.stop == b.start for a, b in zip(list(LAYOUT.values()), list(LAYOUT.values())[1:]))


@pytest.mark.parametrize("content", ["walk", "run", "jump", "wave"])
def test_features_recover_the_joint_positions(content):
    joints = clip(content, seed=3)
    feats = features_from_joints(joints)
    assert feats.shape == (40, FEATURE_DIM)
    rec = recover_from_ric(feats.double())
    ref = canonicalize(torch.tensor(joints))[:-1]
    assert (rec - ref).abs().max() < 1e-5  # metres; float32 feature storage


def test_turning_motion_recovers_root_rotation_and_trajectory():
    joints = torch.tensor(clip("walk", seed=1, frames=61))
    yaw = torch.linspace(0, math.pi, 61)  # turn half a circle about the root path
    turned = rotate_y(joints, yaw[:, None])
    feats = features_from_joints(turned)
    assert feats[:, 0].abs().mean() > 0.01  # the root rotates
    assert (recover_from_ric(feats.double()) - canonicalize(turned)[:-1]).abs().max() < 1e-5


def test_features_do_not_depend_on_placement_or_heading():
    joints = torch.tensor(clip("run", seed=2))
    moved = rotate_y(joints, torch.tensor(1.1)) + torch.tensor([3.0, 0.5, -2.0])
    assert torch.allclose(features_from_joints(joints), features_from_joints(moved), atol=1e-5)


def test_foot_contacts_follow_foot_speed():
    feats = features_from_joints(clip("walk", seed=5, frames=81))
    contacts = feats[:, LAYOUT["foot_contact"]]
    assert set(contacts.unique().tolist()) <= {0.0, 1.0}
    assert 0 < contacts.mean() < 1  # a walk has stance and swing


def test_normalizer_round_trip_and_stats():
    feats = [features_from_joints(clip(seed=s)) for s in range(4)]
    norm = Normalizer.fit(feats)
    x = torch.cat(feats)
    z = norm.normalize(x)
    assert torch.allclose(norm.denormalize(z), x, atol=1e-4)
    varying = x.std(0) > 1e-2
    assert torch.allclose(z.mean(0)[varying], torch.zeros(int(varying.sum())), atol=1e-4)


def test_bad_feature_arrays_get_clear_errors():
    with pytest.raises(MotionError, match=r"\[frames, 263\].*got shape \(10, 250\)"):
        check_features(np.zeros((10, 250)))
    bad = np.zeros((10, 263))
    bad[3, 7] = np.nan
    with pytest.raises(MotionError, match="NaN"):
        check_features(bad)
    with pytest.raises(MotionError, match="empty motion"):
        check_features(np.zeros((0, 263)))
    with pytest.raises(MotionError, match="joint positions"):
        features_from_joints(np.zeros((10, 21, 3)))
