"""The HiCAST example workflows (API twins of workflows/hicast_*.json) run end to end through the server."""
import json
import os

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def inputs(server):
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.astronaut()).resize((64, 64)).save(os.path.join(server.input_dir, "hicast_content.png"))
    Image.fromarray(data.coffee()).convert("L").resize((48, 48)).save(os.path.join(server.input_dir, "hicast_style.png"))
    return server


def load(name):
    with open(os.path.join(ROOT, "workflows", "api", name)) as f:
        return json.load(f)


@pytest.mark.parametrize("name, prefix, frames", [("hicast_image_ast.json", "hicast_image_ast", 1),
                                                  ("hicast_video_ast.json", "hicast_video_ast", 4)])
def test_workflow_runs_and_saves_images(inputs, name, prefix, frames):
    result = inputs.run(load(name))
    assert result.ok, result.describe_error()
    saved = [f for f in result.files if f[2].startswith(prefix)]
    assert len(saved) == frames
    for kind, sub, fname in saved:
        img = np.asarray(Image.open(os.path.join(inputs.output_dir, sub, fname)))
        assert img.shape == (64, 64, 3)


def test_ui_workflows_match_their_api_twins():
    for name in ("hicast_image_ast.json", "hicast_video_ast.json"):
        with open(os.path.join(ROOT, "workflows", name)) as f:
            ui = json.load(f)
        api = load(name)
        assert sorted(str(n["id"]) for n in ui["nodes"]) == sorted(api)
        assert {str(n["id"]): n["type"] for n in ui["nodes"]} == {k: v["class_type"] for k, v in api.items()}
