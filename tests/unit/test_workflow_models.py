"""Every model file an example workflow reads is documented: in scripts/model_catalog.py (folder, where to get
it or which training workflow writes it), in the UI workflow (loader properties.models + a MarkdownNote) and in
README "Models". No workflow names a test fixture."""
import glob
import json
import os
import re

from scripts.model_catalog import MODELS, model_refs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API = sorted(glob.glob(os.path.join(ROOT, "workflows", "api", "*.json")))
MODEL_FILE = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|onnx|gguf)$")


def load(path):
    with open(path) as f:
        return json.load(f)


def ui_twin(path):
    return load(os.path.join(ROOT, "workflows", os.path.basename(path)))


def test_every_model_file_a_workflow_reads_is_catalogued():
    assert len(API) >= 14
    for path in API:
        for nid, node in load(path).items():
            for key, value in node["inputs"].items():
                reads_model = MODEL_FILE.search(value) if isinstance(value, str) else False
                if (reads_model and key != "output_name") or key == "depth_model":  # depth models are folders
                    assert value in MODELS, f"{os.path.basename(path)} node {nid}.{key}: {value} is not documented"


def test_no_workflow_names_a_test_fixture():
    for path in API + sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json"))):
        text = open(path).read()
        assert not re.search(r'"(tiny|toy)_[^"]*\.(safetensors|onnx)"', text), path


def test_catalogue_entries_say_where_to_get_each_file():
    workflows = {os.path.basename(p)[:-5] for p in API}
    for name, m in MODELS.items():
        assert m["directory"] and m["what"] and m["vram"], name
        if "url" in m:
            assert m["url"].startswith("https://") and m["url"].split("?")[0].endswith("/" + name), name
        elif "get" in m:  # released only in another form (e.g. a .pth): how to make the file
            assert "safetensors" in m["get"], name
        else:  # no release anywhere: one of the pack's training workflows (or nodes) writes it
            assert m["train"].split()[0] in workflows or m["train"].startswith("HiCASTTrain"), name


def test_ui_loaders_carry_properties_models_and_a_note_lists_them():
    for path in API:
        api, ui = load(path), ui_twin(path)
        refs = model_refs(api)
        nodes = {str(n["id"]): n for n in ui["nodes"]}
        for nid, _, name in refs:
            if MODELS[name].get("folder"):
                assert "models" not in nodes[nid]["properties"]  # no single file to download
                continue
            entries = nodes[nid]["properties"].get("models", [])
            entry = next(e for e in entries if e["name"] == name)
            assert entry["directory"] == MODELS[name]["directory"] and entry.get("url") == MODELS[name].get("url")
        notes = [n for n in ui["nodes"] if n["type"] == "MarkdownNote"]
        if refs:
            (note,) = notes
            text = note["widgets_values"][0]
            for _, _, name in refs:
                m = MODELS[name]
                assert f"models/{m['directory']}/{name}" in text
                if m.get("folder"):
                    assert "the whole folder" in text
                assert (m["url"] in text) if "url" in m else (m["get"] in text) if "get" in m else (
                    m["train"] in text and "train it first" in text)


def test_note_says_when_the_mediapipe_extra_is_needed():
    for path in API:
        uses = any(n["inputs"].get("pose_model") == "mediapipe (built in)" for n in load(path).values())
        text = "".join(n["widgets_values"][0] for n in ui_twin(path)["nodes"] if n["type"] == "MarkdownNote")
        assert ("requirements-extras.txt" in text) == uses, path


def test_readme_models_table_lists_every_catalogued_file():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("### Models", 1)[1].split("\n## ", 1)[0]
    for name, m in MODELS.items():
        row = next((line for line in section.splitlines() if f"`{name}`" in line), None)
        assert row is not None, f"README Models: no row for {name}"
        assert f"`{m['directory']}/`" in row and (m.get("url", "") in row if "url" in m else m["get"] in row if "get" in m else m["train"] in row), row
