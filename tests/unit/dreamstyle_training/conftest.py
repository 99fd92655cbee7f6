"""Fixtures for the training core tests: a small synthetic benchmark folder and the toy Wan model."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    folder = str(tmp_path_factory.mktemp("ds_train") / "pairs")
    build_synthetic_benchmark(folder, scenes=3, styles=["palette", "ink"], frames=5, height=32, width=32, refs=2,
                              heldout=0.34, seed=0)
    return folder


@pytest.fixture(autouse=True)
def _single_threaded(one_torch_thread):
    """These tests run many tiny training steps."""
    yield
