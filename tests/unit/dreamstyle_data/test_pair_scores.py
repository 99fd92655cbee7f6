"""Offline pair scores on the synthetic benchmark, and the filter built on them."""
import math

import numpy as np
import pytest

from dreamstyle.pair_filter import PairThresholds, judge_pair
from dreamstyle.pair_scores import FeatureStatsEmbedder, content_score, sample_frames, style_score
from dreamstyle.synthetic_benchmark import synthetic_pairs
from dreamstyle.synthetic_styles import STYLES


@pytest.fixture(scope="module")
def pairs():
    return list(synthetic_pairs(scenes=5, frames=9, refs=3, seed=11))


def test_style_score_ranks_own_style_references_first(pairs):
    """Over every pair and every other style: the video scores closer to its style's references."""
    embed = FeatureStatsEmbedder()
    by_scene = {}
    for p in pairs:
        by_scene.setdefault(p.meta["scene_seed"], {})[p.meta["style"]] = p
    wins = total = 0
    for group in by_scene.values():
        for a, pa in group.items():
            own = style_score(pa.stylized, pa.refs, embed)
            for b, pb in group.items():
                if b != a:
                    wins += own > style_score(pa.stylized, pb.refs, embed)
                    total += 1
    assert total == 5 * 5 * 4 and wins == total


def test_style_score_is_bounded_and_prefers_stylized_over_raw(pairs):
    for p in pairs:
        s = style_score(p.stylized, p.refs)
        assert 0 <= s <= 1 + 1e-9
    mean = lambda key: np.mean([style_score(getattr(p, key), p.refs) for p in pairs])
    assert mean("stylized") > mean("raw") + 0.2


def test_style_score_takes_any_embedder(pairs):
    """A plugged-in embedder (here: mean colour) is what the score uses."""
    mean_colour = lambda images: np.asarray(images, np.float64).mean((1, 2))
    p = pairs[0]
    v, r = sample_frames(p.stylized, 8).mean((0, 1, 2)), np.stack(p.refs).mean((0, 1, 2))
    assert style_score(p.stylized, p.refs, mean_colour) == pytest.approx(v @ r / np.linalg.norm(v) / np.linalg.norm(r))


def test_content_score_prefers_the_true_pair(pairs):
    """Raw vs its own stylized twin scores above raw vs another scene in the same style, for most pairs,
    and above every mismatched pair on average per style."""
    wins = total = 0
    for style in STYLES:
        group = [p for p in pairs if p.meta["style"] == style]
        true = [content_score(p.raw, p.stylized) for p in group]
        wrong = [[content_score(p.raw, q.stylized) for q in group if q is not p] for p in group]
        assert np.mean(true) > np.max([np.mean(w) for w in wrong]), style
        wins += sum(t > w for t, ws in zip(true, wrong) for w in ws)
        total += sum(len(ws) for ws in wrong)
    assert wins / total >= 0.9, (wins, total)


def test_content_score_sees_motion_mismatch(pairs):
    """The same frames in reverse order (a motion mismatch) score lower than the aligned pair."""
    for p in pairs:
        if p.meta["style"] == "thermal":
            assert content_score(p.raw, p.stylized) > content_score(p.raw, p.stylized[::-1]) + 0.2


def test_scores_name_bad_inputs():
    with pytest.raises(ValueError, match="stylized video: expected uint8"):
        style_score(np.zeros((2, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="raw video has 3 frames, stylized has 2"):
        content_score(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8))


def test_sample_frames_is_even_and_bounded():
    v = np.arange(17)
    assert list(sample_frames(v, 5)) == [0, 4, 8, 12, 16]
    assert list(sample_frames(v[:3], 8)) == [0, 1, 2]


def test_filter_names_every_failed_threshold():
    t = PairThresholds(min_style=0.5, min_content=0.3)
    ok = judge_pair(0.8, 0.4, t)
    assert ok.passed and "style 0.800 >= 0.500" in ok.reason
    bad = judge_pair(0.2, 0.1, t)
    assert not bad.passed
    assert "style score 0.200 < min_style 0.500" in bad.reason and "content score 0.100 < min_content 0.300" in bad.reason
    assert not judge_pair(math.nan, 0.9, t).passed
    assert judge_pair(0.0, 0.0, PairThresholds(None, None)).passed
