"""Write every tiny model fixture into MODELS (default build/models), skipping work already done.

    python scripts/make_fixtures.py [--out build/models] [--force]

A stamp file holds a hash of scripts/fixtures/*.py; when the builders change, everything is rebuilt.
"""
import argparse
import glob
import hashlib
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from scripts.comfy_root import import_comfy_in_process  # noqa: E402
from scripts.fixtures import BUILDERS  # noqa: E402

DEFAULT_OUT = os.path.join(ROOT, "build", "models")


def builders_hash():
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(HERE, "fixtures", "*.py"))):
        h.update(os.path.basename(path).encode())
        h.update(open(path, "rb").read())
    return h.hexdigest()[:16]


def ensure_fixtures(out=DEFAULT_OUT, force=False, log=print):
    stamp = os.path.join(out, ".fixtures-stamp")
    want = builders_hash()
    if not force and os.path.exists(stamp) and open(stamp).read() == want:
        return out
    import_comfy_in_process()
    os.makedirs(out, exist_ok=True)
    for name in BUILDERS:
        t0 = time.time()
        paths = importlib.import_module(f"scripts.fixtures.{name}").build(out)
        for p in paths:
            log(f"[fixtures] {os.path.relpath(p, out)}: {os.path.getsize(p) / 1e6:.2f} MB ({time.time() - t0:.1f}s)")
    with open(stamp + ".tmp", "w") as f:
        f.write(want)
    os.replace(stamp + ".tmp", stamp)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    ensure_fixtures(a.out, a.force)
