"""Side-by-side timing for benchmarks: candidates run interleaved, best-of-rounds median per candidate."""
import statistics
import time

import torch


def time_side_by_side(candidates, rounds=5, warmup=1):
    """candidates: {name: zero-argument callable}. Returns {name: median seconds}, measured interleaved
    so that machine load drifts affect every candidate alike."""
    with torch.no_grad():
        for _ in range(warmup):
            for fn in candidates.values():
                fn()
        samples = {name: [] for name in candidates}
        for _ in range(rounds):
            for name, fn in candidates.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


def metric(value, goal, unit, how):
    return {"value": round(float(value), 4), "goal": goal, "unit": unit, "how": how}
