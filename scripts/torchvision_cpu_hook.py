"""Make PyPI's CUDA-built torchvision importable beside a CPU-only torch.

torchvision's `_C.so` from PyPI links against CUDA torch libraries; on CPU torch it fails to load,
which torchvision tolerates, except that `_meta_registrations.py` registers fake kernels for
`torchvision::nms` / `qnms` and raises "operator ... does not exist". Defining those two schemas
first lets `import torchvision` succeed: transforms and models (pure Python) work, the C++ ops stay
unavailable. Nothing happens where `_C.so` loads (a matching torch, a user's GPU install).

    python torchvision_cpu_hook.py --install   # writes a .pth hook into this interpreter's site-packages
"""
import importlib.abc
import importlib.util
import os
import sys

_library = None


def define_missing_schemas():
    global _library
    if _library is not None or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch
    so = os.path.join(list(spec.submodule_search_locations)[0], "_C.so")
    if not os.path.exists(so):
        return
    try:
        torch.ops.load_library(so)
        return
    except (OSError, ImportError):
        pass
    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


class _OnTorchvisionImport(importlib.abc.MetaPathFinder):
    """Runs define_missing_schemas() once, right before the first `import torchvision`."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            define_missing_schemas()
        return None


def install_hook():
    if not any(isinstance(f, _OnTorchvisionImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnTorchvisionImport())


if __name__ == "__main__" and "--install" in sys.argv:
    import shutil
    import sysconfig
    site_dir = sysconfig.get_paths()["purelib"]
    shutil.copy(__file__, os.path.join(site_dir, "torchvision_cpu_hook.py"))
    with open(os.path.join(site_dir, "torchvision_cpu_hook.pth"), "w") as f:
        f.write("import torchvision_cpu_hook; torchvision_cpu_hook.install_hook()\n")
    print("[setup] torchvision CPU hook installed in", site_dir)
