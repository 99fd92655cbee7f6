"""nodes/backends.py: the ONNX pose runtime uses whichever onnxruntime wheel is installed, GPU providers
first; a missing package's hint names what to install; OpenCV wheels of different versions are reported."""
import importlib.util
import logging
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def backends():
    spec = importlib.util.spec_from_file_location("unistyle_backends_under_test", os.path.join(ROOT, "nodes", "backends.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_onnxruntime(monkeypatch, providers):
    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(get_available_providers=lambda: providers))


def test_gpu_wheel_runs_on_cuda_first(monkeypatch):
    fake_onnxruntime(monkeypatch, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert backends().onnxruntime_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cpu_wheel_runs_on_cpu(monkeypatch):
    fake_onnxruntime(monkeypatch, ["CPUExecutionProvider"])
    assert backends().onnxruntime_providers() == ["CPUExecutionProvider"]


def test_hints_name_the_package_and_never_the_cpu_wheel_alone():
    b = backends()
    assert "onnxruntime-gpu" in b.install_hint("onnxruntime")
    assert "requirements-extras.txt" in b.install_hint("mediapipe")
    assert "update ComfyUI" in b.install_hint("comfy_api")
    line = b.missing_line("the hicast nodes", "kornia", "No module named 'kornia'")
    assert "'kornia' is missing" in line and 'pip install "kornia>=0.7.1"' in line and "\n" not in line


def test_opencv_wheels_of_different_versions_are_reported(monkeypatch, caplog):
    b = backends()
    versions = {"opencv-python-headless": "4.10.0.84", "opencv-contrib-python": "4.8.1.78"}

    def version(name):
        if name in versions:
            return versions[name]
        raise b.importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(b.importlib.metadata, "version", version)
    with caplog.at_level(logging.WARNING, logger="unistyle"):
        assert b.check_opencv() == versions
    (record,) = caplog.records
    assert "opencv-contrib-python 4.8.1.78" in record.getMessage()
    versions["opencv-contrib-python"] = "4.10.0.84"
    caplog.clear()
    b.check_opencv()
    assert not caplog.records  # same version: they coexist
