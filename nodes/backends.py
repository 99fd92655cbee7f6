"""Which third-party packages import here, and the one-line hint that names what to install.

Every family module (nodes/<family>.py) imports on its own; a node that needs an optional backend
names it in its class attribute BACKENDS (it stays when at least one of them imports). Both ask
`missing(package)`, which really imports the package once (a broken install counts as missing).
"""
import importlib
import importlib.metadata
import logging

log = logging.getLogger("unistyle")

# import name -> what to install (the requirement lines of requirements.txt / requirements-extras.txt)
INSTALL = {
    "cv2": "pip install opencv-python-headless  (any one OpenCV wheel provides cv2)",
    "kornia": 'pip install "kornia>=0.7.1"',
    "diffusers": 'pip install "diffusers>=0.30"',
    "mediapipe": "pip install --no-deps -r requirements-extras.txt  (mediapipe 0.10.21 with its bundled models)",
    "onnxruntime": "pip install onnxruntime-gpu  (CUDA)  or  pip install onnxruntime  (CPU)",
}
COMFYUI_MODULES = ("comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "node_helpers", "nodes")
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime-gpu", "onnxruntime", "onnxruntime-directml", "onnxruntime-openvino",
                             "onnxruntime-silicon")
OPENCV_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
                        "opencv-contrib-python-headless")
_checked = {}


def install_hint(package):
    if package in COMFYUI_MODULES:
        return "update ComfyUI (UniStyle needs 0.3.52 or later; see pyproject.toml requires-comfyui)"
    return INSTALL.get(package, f"pip install {package}")


def missing(package):
    """None when PACKAGE imports, else the error text (cached: the import runs once per process)."""
    if package not in _checked:
        try:
            importlib.import_module(package)
            _checked[package] = None
        except Exception as e:  # a broken install (ABI mismatch, missing shared library) is as good as missing
            _checked[package] = f"{type(e).__name__}: {e}"
    return _checked[package]


def missing_line(what, package, error):
    """The one log line for WHAT (a family or a node) left out because PACKAGE does not import."""
    return f"UniStyle: {what} not loaded: package '{package}' is missing ({error}); install it with: {install_hint(package)}"


def installed(distributions):
    """{distribution: version} for the DISTRIBUTIONS present in this environment."""
    found = {}
    for name in distributions:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def onnxruntime_providers():
    """onnxruntime's execution providers, GPU ones first (onnxruntime-gpu and the CPU wheel both import as
    `onnxruntime`; whichever the user has is used, and requirements.txt names neither)."""
    import onnxruntime
    available = onnxruntime.get_available_providers()
    preferred = [p for p in ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider",
                             "CoreMLExecutionProvider") if p in available]
    return preferred + ["CPUExecutionProvider"]


def check_opencv():
    """Log one line when two OpenCV wheels of different versions share the cv2 folder (they overwrite each
    other's files; ComfyUI-Manager aligns them, `pip install` alone does not)."""
    found = installed(OPENCV_DISTRIBUTIONS)
    if len(set(found.values())) > 1:
        log.warning("UniStyle: several OpenCV wheels with different versions share the cv2 module (%s); align "
                    "them (pip install NAME==VERSION for each) or keep one", ", ".join(f"{k} {v}" for k, v in found.items()))
    return found
