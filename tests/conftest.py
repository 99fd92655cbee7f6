"""Shared fixtures for the three test tiers.

- unit tests (tests/unit): plain PyTorch, no ComfyUI import at all.
- host tests (tests/host, marker `host`): the real ComfyUI imported in process on the CPU; use the
  `comfy` fixture before importing any comfy module, and `tiny_models` for the fixture files
  (registered with folder_paths, so stock loader nodes find them by name).
- e2e tests (tests/e2e, marker `e2e`): a real ComfyUI server with this pack and the test-only nodes;
  `server` gives a ComfyClient-like handle with .run(workflow), .input_dir, .output_dir, .log.
"""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = os.path.relpath(str(item.fspath), os.path.join(ROOT, "tests")).split(os.sep)
        if parts[0] == "host":
            item.add_marker(pytest.mark.host)
        elif parts[0] in ("e2e", "abuse"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_models():
    from scripts.make_fixtures import ensure_fixtures
    return ensure_fixtures()  # build/models, or build/models-comfyui-<version> for a $COMFYUI_PATH host


@pytest.fixture(scope="session")
def toy_vae_loads(comfy, tiny_models):
    """Skip on hosts that build every Wan2.1 VAE at the released width 96 (ComfyUI 0.3.52 .. 0.3.64): the
    toy DreamStyle VAE (assets/dreamstyle_toy, 16 wide) cannot load there. The tiny fixture tells: its
    builder made it 96 wide exactly when the host refused the narrow one (scripts/fixtures/wan.py)."""
    from safetensors import safe_open
    with safe_open(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"), "pt") as f:
        width = f.get_slice("decoder.head.0.gamma").get_shape()[0]
    from scripts.fixtures.wan import RELEASED_VAE_DIM
    if width == RELEASED_VAE_DIM:
        pytest.skip("this ComfyUI builds every Wan2.1 VAE 96 wide; the toy DreamStyle VAE is 16 wide")


@pytest.fixture(scope="session")
def comfy(tiny_models):
    """Import the real ComfyUI in process (CPU) with the tiny fixtures registered as model folders."""
    from scripts.comfy_root import import_comfy_in_process
    root = import_comfy_in_process()
    import folder_paths
    for kind in ("diffusion_models", "vae", "text_encoders", "loras", "clip_vision"):
        folder_paths.add_model_folder_path(kind, os.path.join(tiny_models, kind), is_default=True)
    return root


class _Server:
    def __init__(self, base, port):
        from scripts.comfy_client import ComfyClient
        self.base = base
        self.url = f"http://127.0.0.1:{port}"
        self.client = ComfyClient(f"127.0.0.1:{port}", timeout=900)
        self.input_dir = os.path.join(base, "input")
        self.output_dir = os.path.join(base, "output")

    def run(self, workflow, **kw):
        return self.client.run(workflow, **kw)

    def get_json(self, path):
        return self.client.get_json(path)

    @property
    def log(self):
        with open(os.path.join(self.base, "comfy.log"), errors="replace") as f:
            return f.read()


@pytest.fixture(scope="session")
def server(tiny_models):
    import shutil
    from scripts import host
    base = os.path.join(BUILD, "test-host", str(os.getpid()))  # one server per pytest run, never shared
    port = host.start(base, models=tiny_models, test_nodes=True)
    try:
        yield _Server(base, port)
    finally:
        host.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def unistyle(comfy):
    """The pack imported the way ComfyUI imports it: its root as a package (here named unistyle_pack).

    `unistyle.nodes.dreamstyle` etc. are then importable as `unistyle_pack.nodes.<family>`.
    """
    import importlib.util
    if "unistyle_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "unistyle_pack", os.path.join(ROOT, "__init__.py"), submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules["unistyle_pack"] = module
        spec.loader.exec_module(module)
    return sys.modules["unistyle_pack"]


@pytest.fixture(scope="session")
def test_nodes(comfy):
    """The test-only nodes (tests/host_nodes: tiny UMT5 / CLIP-L loaders, CLIP-vision stand-in) as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("unistyle_test_nodes", os.path.join(ROOT, "tests", "host_nodes",
                                                                                      "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pack_node_ids(unistyle):
    import asyncio
    extension = asyncio.run(unistyle.comfy_entrypoint())
    return sorted(n.define_schema().node_id for n in asyncio.run(extension.get_node_list()))


@pytest.fixture
def one_torch_thread():
    """Run a test single-threaded (many tiny steps: one thread beats oversubscribing 2 cores); restore after."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def stylemotif_samples(server, tiny_models):
    """The fixture's sample motions in the server's input/samples/ (StyleMotifLoadMotion reads input/ only)."""
    import shutil
    shutil.copytree(os.path.join(tiny_models, "stylemotif", "samples"), os.path.join(server.input_dir, "samples"),
                    dirs_exist_ok=True)
    return os.path.join(server.input_dir, "samples")
