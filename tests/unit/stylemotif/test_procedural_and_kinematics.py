import numpy as np
import pytest
import torch

from stylemotif.kinematics import bone_lengths, forward_kinematics, inverse_kinematics
from stylemotif.procedural import CONTENTS, STYLES, generate, sample_clips
from stylemotif.skeleton import REST_OFFSETS


def test_generator_is_seeded_and_rigid():
    a = generate("run", "happy", 41, np.random.default_rng(7)).joints
    b = generate("run", "happy", 41, np.random.default_rng(7)).joints
    assert np.array_equal(a, b) and a.shape == (41, 22, 3)
    lengths = bone_lengths(torch.tensor(a))
    assert torch.allclose(lengths, REST_OFFSETS.norm(dim=-1).expand_as(lengths), atol=1e-9)


def test_style_parameters_show_in_the_motion():
    def stats(style):
        j = np.stack([generate("walk", style, 81, np.random.default_rng(s)).joints for s in range(6)])
        wrist_swing = (j[:, :, 20] - j[:, :, 0]).std(1).mean()
        bob = j[:, :, 0, 1].std(1).mean()
        speed = np.linalg.norm(j[:, -1, 0, [0, 2]] - j[:, 0, 0, [0, 2]], axis=-1).mean() / 4.0
        return wrist_swing, bob, speed
    old, happy = stats("old"), stats("happy")
    assert happy[0] > 1.5 * old[0]  # arm swing
    assert happy[1] > 2 * old[1]  # bounce
    assert happy[2] > 1.5 * old[2]  # stride x tempo


def test_lean_tilts_the_torso_forward():
    def tilt(style):
        j = generate("walk", style, 41, np.random.default_rng(0)).joints
        trunk = j[:, 12] - j[:, 0]
        fwd = j[-1, 0] - j[0, 0]
        fwd = fwd / np.linalg.norm(fwd)
        return (trunk @ fwd).mean() / np.linalg.norm(trunk, axis=-1).mean()
    assert tilt("old") > tilt("neutral") + 0.1 > tilt("proud") + 0.1


def test_sample_clips_balances_labels():
    clips = sample_clips(40, 21, seed=0)
    pairs = {(c.content, c.style) for c in clips}
    assert len(pairs) == len(CONTENTS) * len(STYLES)
    with pytest.raises(ValueError, match="style"):
        generate("walk", "sleepy")


def test_ik_then_fk_reproduces_positions():
    j = torch.tensor(generate("jump", "angry", 31, np.random.default_rng(2)).joints)
    local = inverse_kinematics(j, REST_OFFSETS)
    eye = torch.eye(3, dtype=local.dtype)
    assert torch.allclose(local.transpose(-1, -2) @ local, eye.expand_as(local), atol=1e-9)  # rotations
    assert (forward_kinematics(local, j[:, 0], REST_OFFSETS) - j).abs().max() < 1e-9
