"""Helpers for the paired-data tests: small random pairs."""
import numpy as np
import pytest

from dreamstyle.dataset_writer import PairData


def random_pair(pair_id, seed=0, frames=5, height=24, width=32, refs=2, **kw):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    kw.setdefault("caption_ns", "a red ball rolls left")
    kw.setdefault("caption_sty", "a red ball rolls left, in watercolor style")
    return PairData(pair_id, raw, 255 - raw, [raw[i % frames] for i in range(refs)], **kw)


@pytest.fixture
def make_pair():
    return random_pair
