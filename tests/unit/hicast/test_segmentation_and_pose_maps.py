import sys

import numpy as np
import pytest
import torch

from hicast import pose_maps, segmentation_maps


@pytest.fixture(scope="module")
def mediapipe():
    return pytest.importorskip("mediapipe")


def test_selfie_segmentation_finds_the_astronaut(mediapipe, photos):
    m = segmentation_maps.segmentation_map(photos["astronaut"])
    assert m.shape == photos["astronaut"].shape
    person = (m[0] * 255).round().to(torch.uint8).numpy()
    is_person = np.all(person == segmentation_maps.PERSON_RGB, axis=-1)
    assert np.all(is_person | (person.sum(-1) == 0))  # only the two colours
    assert 0.15 < is_person.mean() < 0.9
    ys, xs = np.nonzero(is_person)
    assert 100 < xs.mean() < 400  # the astronaut stands in the middle of the frame


def test_pose_finds_the_astronaut_and_draws_openpose_colours(mediapipe, photos):
    people = pose_maps.detect_poses(photos["astronaut"])
    assert len(people[0]) == 1
    kp = people[0][0]
    nose, neck = kp[0], kp[1]
    assert nose is not None and neck is not None and nose[1] < neck[1]  # head above the neck
    m = pose_maps.pose_map(photos["astronaut"])
    assert m.shape == photos["astronaut"].shape and m.sum() > 0
    colours = {tuple(c) for c in (m[0] * 255).round().to(torch.uint8).reshape(-1, 3).numpy().tolist()}
    assert set(pose_maps.COLOURS[:2]) <= colours  # right-shoulder and left-shoulder joint colours
    assert torch.equal(pose_maps.pose_map(photos["astronaut"]), m)  # deterministic


def test_missing_mediapipe_names_the_extra(monkeypatch, photos):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(RuntimeError, match="requirements-extras.txt"):
        pose_maps.pose_map(photos["astronaut"])
    with pytest.raises(RuntimeError, match="segmentation needs mediapipe"):
        segmentation_maps.segmentation_map(photos["astronaut"])
