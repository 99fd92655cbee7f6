"""DreamStyle paired-data build: throughput and whether memory stays flat as the dataset grows.

A streamed build of synthetic pairs (dreamstyle/synthetic_benchmark, 17 frames of 64x64, K=3) runs
in a fresh subprocess for a small and a large pair count; each reports pairs per minute for the
build and for a deep check + full decode of every pair, the tracemalloc peak (numpy buffers
included) and ru_maxrss. Streaming means the large build's peak equals the small one's.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SMALL, LARGE = 2, 20  # scenes; x5 styles = 10 and 100 pairs

CHILD = r"""
import json, resource, sys, time, tracemalloc
from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_reader import iter_pairs
from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
folder, scenes = sys.argv[1], int(sys.argv[2])
tracemalloc.start()
t0 = time.perf_counter()
out = build_synthetic_benchmark(folder, scenes=scenes, frames=17, height=64, width=64, refs=3)
build_s = time.perf_counter() - t0
build_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
t0 = time.perf_counter()
report = check_dataset(folder, deep=True)
frames = sum(len(p.load_raw()) + len(p.load_stylized()) for p in iter_pairs(folder))
read_s = time.perf_counter() - t0
assert report.ok and report.pairs == out["pairs"], report.summary()
print(json.dumps({"pairs": out["pairs"], "build_s": build_s, "read_s": read_s, "frames": frames,
                  "build_peak": build_peak, "read_peak": tracemalloc.get_traced_memory()[1],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(scenes):
    with tempfile.TemporaryDirectory() as folder:
        r = subprocess.run([sys.executable, "-c", CHILD, folder, str(scenes)], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run():
    small, large = measure(SMALL), measure(LARGE)
    mb = 1 / 2 ** 20
    how = f"{large['pairs']} synthetic pairs (17x64x64, K=3) vs {small['pairs']}, fresh subprocess each"
    return {
        "dreamstyle_data_build_pairs_per_minute": {
            "value": 60 * large["pairs"] / large["build_s"], "unit": "pairs/min",
            "how": f"render + stylize + FFV1 encode + fsync + manifest append, {how}"},
        "dreamstyle_data_check_and_read_pairs_per_minute": {
            "value": 60 * large["pairs"] / large["read_s"], "unit": "pairs/min",
            "how": f"deep check (sha256 + decode) then decode raw and stylized of every pair, {how}"},
        "dreamstyle_data_build_peak_traced_mb": {
            "value": large["build_peak"] * mb, "unit": "MB", "how": f"tracemalloc peak during the build, {how}"},
        "dreamstyle_data_build_peak_ratio_large_vs_small": {
            "value": large["build_peak"] / small["build_peak"], "goal": "<= 1.10", "unit": "ratio",
            "how": f"tracemalloc peak of the build, {how}: flat means streamed"},
        "dreamstyle_data_read_peak_ratio_large_vs_small": {
            "value": large["read_peak"] / small["read_peak"], "goal": "<= 1.10", "unit": "ratio",
            "how": f"tracemalloc peak of check + read, {how}"},
        "dreamstyle_data_maxrss_mb": {
            "value": large["maxrss_kb"] / 1024, "unit": "MB",
            "how": f"ru_maxrss of the large run's process (imports included; small run: {small['maxrss_kb'] / 1024:.0f} MB)"},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
