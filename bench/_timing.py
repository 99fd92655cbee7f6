"""Side-by-side timing for benchmarks: candidates run interleaved, best-of-rounds median per candidate."""
import functools
import statistics
import time

import torch


def single_threaded(fn):
    """Run FN with one torch thread (restored after): on a shared 2-core machine, thread oversubscription
    swamps a side-by-side ratio."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return run


def samples_side_by_side(candidates, rounds=5, warmup=1):
    """candidates: {name: zero-argument callable}. Returns {name: [seconds per round]}, measured interleaved
    so that machine load drifts affect every candidate alike; every other round runs them in reverse order,
    so no candidate always runs first."""
    with torch.no_grad():
        for _ in range(warmup):
            for fn in candidates.values():
                fn()
        samples = {name: [] for name in candidates}
        for r in range(rounds):
            for name, fn in (reversed if r % 2 else iter)(list(candidates.items())):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return samples


def time_side_by_side(candidates, rounds=5, warmup=1):
    """{name: median seconds} of samples_side_by_side."""
    return {name: statistics.median(v) for name, v in samples_side_by_side(candidates, rounds, warmup).items()}


def median_ratio(samples, num, den):
    """Median over rounds of samples[num] / samples[den] (each round's pair ran back to back): robust to a
    shared machine whose load changes between rounds."""
    return statistics.median(a / b for a, b in zip(samples[num], samples[den]))


def metric(value, goal, unit, how):
    return {"value": round(float(value), 4), "goal": goal, "unit": unit, "how": how}
