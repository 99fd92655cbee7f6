"""The synthetic benchmark: known motion, exact deterministic styles, a held-out split, resumable."""
import dataclasses

import numpy as np
import pytest

from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_reader import iter_pairs
from dreamstyle.synthetic_benchmark import build_synthetic_benchmark, heldout_scenes, synthetic_pairs
from dreamstyle.synthetic_scenes import BACKGROUNDS, COLOURS, make_scene
from dreamstyle.synthetic_styles import STYLES


def test_scenes_are_deterministic_and_differ_by_seed():
    a, b = make_scene(3, frames=5), make_scene(3, frames=5)
    np.testing.assert_array_equal(a.render(), b.render())
    assert not np.array_equal(a.render(), make_scene(4, frames=5).render())


def test_shapes_are_where_their_trajectory_says():
    for seed in range(10):
        scene = make_scene(seed, frames=9)
        frames = scene.render()
        for shape, traj in zip(scene.shapes, scene.trajectories()):
            for t in (0, 4, 8):
                x, y = traj[t]
                hit = [s for s in scene.shapes if np.hypot(*np.subtract(s.centre(t, 64, 64), (x, y))) < s.radius]
                if hit[-1] is not shape:  # another shape drawn on top
                    continue
                np.testing.assert_allclose(frames[t, int(y), int(x)], COLOURS[shape.colour], atol=1)


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_translates_by_exactly_its_velocity(background):
    scene = dataclasses.replace(make_scene(5), background=background, bg_velocity=(2.0, -1.0), shapes=())
    f0, f3 = scene.frame(0).astype(int), scene.frame(3).astype(int)
    moved = np.roll(f0, (-3, 6), axis=(0, 1))  # 3 frames of (+2, -1) pixels
    assert np.abs(moved[8:-8, 8:-8] - f3[8:-8, 8:-8]).max() <= 1
    assert np.abs(f0[8:-8, 8:-8] - f3[8:-8, 8:-8]).mean() > 1  # it did move


@pytest.mark.parametrize("name", list(STYLES))
def test_styles_are_exact_frame_wise_functions(name):
    raw = make_scene(1, frames=4).render()
    out = STYLES[name].apply(raw)
    assert out.shape == raw.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, STYLES[name].apply(raw))
    np.testing.assert_array_equal(out[2:], STYLES[name].apply(raw[2:]))
    assert np.abs(out.astype(int) - raw).mean() > 20  # a style, not the identity


def test_heldout_split_is_deterministic_and_disjoint_in_content(tmp_path):
    assert heldout_scenes(8, 0.25, 0) == heldout_scenes(8, 0.25, 0) and len(heldout_scenes(8, 0.25, 0)) == 2
    assert heldout_scenes(3, 0.1, 0) and not heldout_scenes(3, 0.0, 0)
    pairs = list(synthetic_pairs(scenes=4, styles=["ink", "thermal"], frames=3, refs=2, heldout=0.25))
    assert len(pairs) == 8
    seeds = {s: {p.meta["scene_seed"] for p in pairs if p.split == s} for s in ("train", "heldout")}
    assert len(seeds["heldout"]) == 1 and len(seeds["train"]) == 3 and not seeds["train"] & seeds["heldout"]
    for p in pairs:
        assert p.caption_sty.startswith(p.caption_ns + ", ") and len(p.refs) == 2
        np.testing.assert_array_equal(p.stylized, STYLES[p.meta["style"]].apply(p.raw))
        assert not any(np.array_equal(r, p.stylized[0]) for r in p.refs)  # references share style, not content


def test_build_writes_a_valid_dataset_and_resumes(tmp_path):
    calls = []
    kw = dict(scenes=3, styles=["palette", "hatching"], frames=5, refs=2, heldout=0.34)
    out = build_synthetic_benchmark(tmp_path, progress=lambda d, t: calls.append((d, t)), **kw)
    assert out["written"] == 6 and calls[-1] == (6, 6)
    report = check_dataset(tmp_path)
    assert report.ok and report.pairs == 6 and report.splits == {"train": 4, "heldout": 2}, report.summary()
    again = build_synthetic_benchmark(tmp_path, **kw)
    assert again["written"] == 0 and again["skipped"] == 6
    p = next(iter_pairs(tmp_path))
    np.testing.assert_array_equal(p.load_stylized(), STYLES[p.record["meta"]["style"]].apply(p.load_raw()))
    with pytest.raises(ValueError, match="styles: unknown"):
        build_synthetic_benchmark(tmp_path, styles=["sepia"])
