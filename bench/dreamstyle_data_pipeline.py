"""DreamStyle pair construction through the real server with the tiny fixtures: pairs per minute and
peak memory of the ComfyUI process for the example workflow (depth+pose control from the HiCAST extractors,
first frame and references stylized by SD1.5 img2img, two Fun-control I2V generations sharing control and
noise, captions, CLIP-vision filter, save).

The filter thresholds are opened (-1) so that every generated pair is written; the dataset is then
checked with dreamstyle.dataset_check. Frames and size are the tiny graph's (17 frames, 64x48).
"""
import json
import os
import shutil
import sys
import threading
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._timing import metric  # noqa: E402

PAIRS, FRAMES, SIZE = 4, 17, (64, 48)


class PeakRSS(threading.Thread):
    """Samples the resident memory of a process and its children until stopped."""

    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.proc, self.every, self.peak, self.running = psutil.Process(pid), every, 0, True

    def run(self):
        while self.running:
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(self.every)


def run():
    from dreamstyle.dataset_check import check_dataset
    from scripts import host
    from scripts.comfy_client import ComfyClient
    from scripts.demo import moving_shapes
    from scripts.make_fixtures import ensure_fixtures
    from scripts.media import write_video
    from scripts.tiny_workflow import tiny_workflow
    base = os.path.join(ROOT, "build", "bench-host")
    port = host.start(base, models=ensure_fixtures(), test_nodes=True)
    dataset = os.path.join(base, "output", "bench_pairs")  # dataset_dir "bench_pairs" under the server's output/
    shutil.rmtree(dataset, ignore_errors=True)
    try:
        write_video(os.path.join(base, "input", "bench_raw.mp4"), moving_shapes(FRAMES, SIZE[1], SIZE[0]))
        api = json.load(open(os.path.join(ROOT, "workflows", "api", "dreamstyle_build_pairs.json")))
        client = ComfyClient(f"127.0.0.1:{port}")
        sampler = PeakRSS(int(open(os.path.join(base, "comfy.pid")).read()))
        sampler.start()
        t0 = time.perf_counter()
        for i in range(PAIRS):
            g = tiny_workflow(api, steps=2, inputs={"dreamstyle_raw.mp4": "bench_raw.mp4"}, size=SIZE)
            fed = {v[0]: name for node in g.values() for name, v in node["inputs"].items() if isinstance(v, list)}
            for nid, node in g.items():
                kind, args = node["class_type"], node["inputs"]
                if kind == "PrimitiveInt":  # the noise seed and the clip length both generations share
                    args["value"] = {"seed": 100 + i, "length": FRAMES, "batch_index": 0}[fed[nid]]
                elif kind == "HiCASTDepthMap":
                    args["resolution"] = 70
                elif kind == "DreamStylePairFilter":
                    args.update(min_style=-1.0, min_content=-1.0)
                elif kind == "DreamStyleSavePair":
                    args.update(dataset_dir="bench_pairs", pair_id=f"bench_{i}")
            result = client.run(g)
            if not result.ok:
                raise RuntimeError(result.describe_error())
        seconds = time.perf_counter() - t0
        sampler.running = False
        sampler.join()
        report = check_dataset(dataset)
        if not report.ok or report.pairs != PAIRS:
            raise RuntimeError(report.summary())
    finally:
        host.stop(base)
    how = f"{PAIRS} pairs of {FRAMES} frames at {SIZE[0]}x{SIZE[1]} through /prompt with the tiny Wan Fun-control"
    return {
        "dreamstyle_data_tiny_pipeline_pairs_per_minute": metric(60 * PAIRS / seconds, "report", "pairs/min", how),
        "dreamstyle_data_tiny_pipeline_server_peak_rss_mb": metric(sampler.peak / 2 ** 20, "report", "MB",
                                                                    how + "; server process tree, sampled every 0.1 s"),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
