"""COMFYUI_PATH selects a user's own ComfyUI checkout; without it the bundled host is used."""
import os

import pytest

from scripts.comfy_root import bundled_comfy_root, comfy_root


def test_comfyui_path_wins_over_the_bundled_host(tmp_path, monkeypatch):
    (tmp_path / "main.py").write_text("# a ComfyUI checkout\n")
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    assert comfy_root() == os.path.realpath(tmp_path)


def test_a_comfyui_path_without_main_py_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="COMFYUI_PATH=.*nowhere"):
        comfy_root()


def test_without_comfyui_path_the_bundled_copy_is_used(monkeypatch):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    assert comfy_root() == os.path.realpath(bundled_comfy_root())
    assert os.path.isfile(os.path.join(comfy_root(), "comfy", "model_base.py"))
