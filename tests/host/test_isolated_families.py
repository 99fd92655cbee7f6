"""A missing third-party package removes only the nodes that need it, with one log line naming it.

The block is real: a sys.meta_path finder refuses the package (and its cached modules are hidden) while
a fresh copy of the pack (fresh import caches too) is imported the way ComfyUI imports it, in this host
process.
"""
import asyncio
import importlib.abc
import importlib.util
import logging
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, packages):
        self.packages = packages

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


def fresh_pack_nodes(monkeypatch, blocked, tag):
    """Node classes of a fresh import of the pack while BLOCKED packages cannot be imported."""
    for key in [k for k in sys.modules if k.split(".")[0] in blocked]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setattr(sys, "meta_path", [Refuse(blocked)] + sys.meta_path)
    name = f"unistyle_blocked_{tag}"
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    try:
        extension = asyncio.run(module.comfy_entrypoint())
        return asyncio.run(extension.get_node_list())
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            sys.modules.pop(key, None)


def families(nodes):
    return {n.__module__.rsplit(".", 1)[1] for n in nodes}


def ids(nodes):
    return {n.define_schema().node_id for n in nodes}


@pytest.fixture
def full(unistyle, monkeypatch):
    return fresh_pack_nodes(monkeypatch, set(), "none")


@pytest.mark.parametrize("blocked, lost_families", [
    ({"kornia"}, {"hicast"}),
    ({"diffusers"}, {"stylemotif"}),
    ({"cv2"}, {"hicast", "dreamstyle_data"}),
])
def test_missing_family_package_removes_only_that_family(comfy, full, monkeypatch, caplog, blocked, lost_families):
    assert families(full) == {"dreamstyle", "dreamstyle_data", "dreamstyle_training", "hicast", "stylemotif"}
    caplog.set_level(logging.WARNING, logger="unistyle")
    nodes = fresh_pack_nodes(monkeypatch, blocked, "_".join(sorted(blocked)))
    assert families(nodes) == families(full) - lost_families
    assert ids(nodes) == {n.define_schema().node_id for n in full if n.__module__.rsplit(".", 1)[1] not in lost_families}
    (package,) = blocked
    lines = [r.getMessage() for r in caplog.records if r.name == "unistyle"]
    assert len(lines) == len(lost_families), lines  # one line per family left out, nothing else
    for line in lines:
        assert f"'{package}' is missing" in line and "install it with: pip install" in line, line


def test_missing_mediapipe_keeps_every_node_without_its_choices(comfy, full, monkeypatch, caplog):
    """Segmentation and pose also run on transformers / onnxruntime models: only mediapipe's choices go."""
    caplog.set_level(logging.WARNING, logger="unistyle")
    nodes = fresh_pack_nodes(monkeypatch, {"mediapipe"}, "mediapipe")
    assert ids(full) == ids(nodes)
    for node, input_id, choice in (("HiCASTPoseMap", "pose_model", "mediapipe (built in)"),
                                   ("HiCASTSegmentationMap", "seg_model", "mediapipe person (built in)")):
        schema = next(n for n in nodes if n.__name__ == node).define_schema()
        assert choice not in next(i for i in schema.inputs if i.id == input_id).options
    assert not [r for r in caplog.records if r.name == "unistyle"]


def test_pose_node_goes_only_when_neither_pose_runtime_imports(comfy, full, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="unistyle")
    nodes = fresh_pack_nodes(monkeypatch, {"mediapipe", "onnxruntime"}, "mediapipe_onnxruntime")
    assert ids(full) - ids(nodes) == {"HiCASTPoseMap"}  # segmentation stays: transformers models
    lines = [r.getMessage() for r in caplog.records if r.name == "unistyle"]
    assert len(lines) == 1 and "needs one of mediapipe, onnxruntime" in lines[0], lines
