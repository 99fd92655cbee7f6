"""Run every benchmark module in bench/ and write bench/results.json.

Each bench/<name>.py (names starting with _ are helpers) defines run() -> {metric: {"value": x, "goal": "<= 1.10", "unit": "ratio",
"how": "what was compared"}}. Ratios are measured side by side inside one run() call.

    python bench/run_all.py [NAME ...]     # only the named modules (file names without .py)
"""
import importlib.util
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def main(names):
    path = os.path.join(HERE, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    modules = sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".py") and f != "run_all.py" and not f.startswith("_"))
    failed = []
    for name in modules:
        if names and name not in names:
            continue
        spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(HERE, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        t0 = time.time()
        try:
            spec.loader.exec_module(module)
            metrics = module.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for key, m in metrics.items():
            results[key] = m
            print(f"{name:28s} {key:48s} {m['value']:>12.4g} {m.get('unit', ''):8s} goal {m.get('goal', '-')}")
        print(f"{name}: {time.time() - t0:.1f}s")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
