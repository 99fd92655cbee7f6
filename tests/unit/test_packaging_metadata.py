"""The Registry metadata says what the pack is and needs: pyproject.toml vs requirements.txt, LICENSE,
requires-comfyui = the oldest host the suite runs against (Makefile OLDEST_COMFYUI), no placeholder."""
import os
import re
import tomllib

from scripts.sync_pyproject import requirements

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_dependencies_are_requirements_txt():
    deps = pyproject()["project"]["dependencies"]
    assert deps and deps == requirements()


def test_no_cpu_onnxruntime_and_one_opencv_flavour():
    names = [re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements()]
    assert "onnxruntime" not in names  # would replace a user's onnxruntime-gpu; the pose backend detects either
    assert len([n for n in names if n.startswith("opencv")]) == 1
    assert not any("==" in r or "<" in r for r in requirements() if r.startswith("opencv"))  # never pins: can align


def test_license_file_and_registry_fields():
    meta = pyproject()
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert project["license"] == {"file": "LICENSE"}
    text = open(os.path.join(ROOT, "LICENSE")).read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3" in text
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", project["name"]) and "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]) and project["description"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    if "Icon" in comfy:  # an Icon must be a real address, never empty
        assert comfy["Icon"].startswith("https://")
    for url in project.get("urls", {}).values():
        assert "example" not in url and "unistyle/UniStyle" not in url, url


def test_requires_comfyui_is_the_oldest_tested_host():
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    oldest = re.search(r"^OLDEST_COMFYUI\s*:?=\s*(\S+)", makefile, re.M).group(1)
    assert pyproject()["tool"]["comfy"]["requires-comfyui"] == f">={oldest}"
    assert re.search(r"^test-oldest:", makefile, re.M)
