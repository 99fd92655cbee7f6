"""Write every tiny model fixture into MODELS, skipping work already done.

    python scripts/make_fixtures.py [--out MODELS] [--force]

MODELS defaults to build/models for the bundled host and build/models-comfyui-<version> for another one
($COMFYUI_PATH): a fixture can depend on what the host's loaders accept (scripts/fixtures/wan.py).
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

from scripts.comfy_root import bundled_comfy_root, comfy_root, comfy_version, import_comfy_in_process  # noqa: E402
from scripts.fixtures import BUILDERS  # noqa: E402


def default_out():
    root = comfy_root()
    if root == os.path.realpath(bundled_comfy_root() or ""):
        return os.path.join(ROOT, "build", "models")
    return os.path.join(ROOT, "build", f"models-comfyui-{comfy_version(root)}")


def builders_hash():
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(HERE, "fixtures", "*.py"))):
        h.update(os.path.basename(path).encode())
        h.update(open(path, "rb").read())
    return h.hexdigest()[:16]


def ensure_fixtures(out=None, force=False, log=print):
    out = out or default_out()
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
    ap.add_argument("--out", default=None, help="default: build/models (bundled host) or build/models-comfyui-<version>")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    ensure_fixtures(a.out, a.force)
