"""Killing a writer with SIGKILL mid-append leaves a dataset the reader accepts, and a rerun resumes."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_reader import iter_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
N = 6

WRITER = r"""
import sys
import numpy as np
from dreamstyle.dataset_writer import DatasetWriter, PairData
w = DatasetWriter(sys.argv[1])
for i in range(int(sys.argv[2])):
    rng = np.random.default_rng(i)
    raw = rng.integers(0, 256, (24, 192, 192, 3), dtype=np.uint8)   # noise: slow to encode, a wide window
    w.append(PairData(f"p{i}", raw, raw[:, ::-1], [raw[0], raw[-1]], "a scene", "a scene, ink style"))
"""


def expected_raw(i):
    return np.random.default_rng(i).integers(0, 256, (24, 192, 192, 3), dtype=np.uint8)


def start_writer(folder):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(N)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when(proc, ready, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.005)
    raise AssertionError(f"writer ended (rc {proc.returncode}) before the kill point: {proc.stderr.read()[-2000:]}")


def temp_media(folder):
    """True while some pair's videos are being written (a video started, no reference image yet)."""
    pairs = folder / "pairs"
    temps = list(pairs.glob(".tmp-*")) if pairs.exists() else []
    return any(list(d.glob("*.mkv")) and not list(d.glob("*.png")) for d in temps)


def committed(folder):
    manifest = folder / "manifest.jsonl"
    return manifest.read_bytes().count(b"\n") if manifest.exists() else 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_a_readable_dataset_and_rerun_resumes(tmp_path):
    # kill 1: media half written for the very first pair, nothing committed yet
    kill_when(start_writer(tmp_path), lambda: temp_media(tmp_path))
    report = check_dataset(tmp_path)
    assert report.ok and report.pairs == committed(tmp_path), report.summary()
    assert any("interrupted append" in p.message for p in report.warnings)

    # kill 2: after some pairs are in, again while a pair's media is being written
    proc = start_writer(tmp_path)
    kill_when(proc, lambda: committed(tmp_path) >= 2 and temp_media(tmp_path))
    report = check_dataset(tmp_path)
    n = committed(tmp_path)
    assert report.ok and report.pairs == n and 2 <= n < N, report.summary()
    assert [p.id for p in iter_pairs(tmp_path)] == [f"p{i}" for i in range(n)]

    # rerun to the end: resumes, skips what is there, cleans the killed appends' temp folders
    proc = start_writer(tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = check_dataset(tmp_path)
    assert report.ok and report.pairs == N and not report.problems, report.summary()
    pairs = list(iter_pairs(tmp_path))
    assert [p.id for p in pairs] == [f"p{i}" for i in range(N)]
    for i in (0, n):  # the pairs that were being written at the two kills
        np.testing.assert_array_equal(pairs[i].load_raw(), expected_raw(i))
