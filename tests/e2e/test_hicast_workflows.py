"""The HiCAST example workflows (workflows/api/hicast_*.json, real SD1.5 + CLIP-L names) run end to end
through the server on the tiny fixtures (scripts/tiny_workflow.py swaps the names, CLIPLoader becomes
TinyCLIPLoader); the training workflow writes an adapter that HiCASTAdapterLoader then loads; the UI
files are the UI form of their API twins, and the API files are what scripts/build_workflows.py builds."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from scripts.build_workflows import HICAST_WORKFLOWS
from scripts.demo import moving_shapes
from scripts.media import read_video, write_video
from scripts.tiny_workflow import tiny_workflow
from scripts.workflow_format import api_to_ui

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRAMES = 4


@pytest.fixture(scope="module")
def inputs(server):
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.astronaut()).resize((64, 64)).save(os.path.join(server.input_dir, "hicast_content.png"))
    Image.fromarray(data.coffee()).convert("L").resize((48, 48)).save(os.path.join(server.input_dir, "hicast_style.png"))
    write_video(os.path.join(server.input_dir, "hicast_input.mp4"), moving_shapes(FRAMES, 64, 64))
    return server


def load(name):
    with open(os.path.join(ROOT, "workflows", "api", f"{name}.json")) as f:
        return json.load(f)


def saved(server, result, prefix):
    return [os.path.join(server.output_dir, sub, f) for kind, sub, f in result.files
            if os.path.join(sub, f).startswith(prefix)]


def test_image_workflow_stylizes_with_text_and_saves_the_edge_map(inputs):
    api = load("hicast_image_ast")
    assert [n["class_type"] for n in api.values()].count("HiCASTStyleConditioning") == 0  # style goes in once
    result = inputs.run(tiny_workflow(api, steps=2))
    assert result.ok, result.describe_error()
    for prefix in ("hicast/image_ast", "hicast/edge_map"):
        files = saved(inputs, result, prefix)
        assert len(files) == 1 and np.asarray(Image.open(files[0])).shape == (64, 64, 3)


def test_text_prompt_reaches_the_unet(inputs):
    api = tiny_workflow(load("hicast_image_ast"), steps=2)
    outs = []
    for text in ("an oil painting", "a pencil sketch"):
        api["6"]["inputs"]["text"] = text
        result = inputs.run(api)
        assert result.ok, result.describe_error()
        outs.append(np.asarray(Image.open(saved(inputs, result, "hicast/image_ast")[0])).astype(int))
    assert np.abs(outs[0] - outs[1]).max() > 0


def test_video_workflow_keeps_frame_count_and_size(inputs):
    result = inputs.run(tiny_workflow(load("hicast_video_ast"), steps=2))
    assert result.ok, result.describe_error()
    videos = saved(inputs, result, "hicast/video_ast")
    assert len(videos) == 1 and read_video(videos[0]).shape == (FRAMES, 64, 64, 3)


def test_training_workflow_writes_an_adapter_the_loader_loads(inputs):
    name = "e2e_hicast_edge_adapter.safetensors"
    folder = os.path.join(inputs.base, "models", "hicast_adapters")
    written = [os.path.join(folder, f) for f in (name, name.replace(".safetensors", ".hicast_resume"),
                                                      name.replace(".safetensors", "_style_encoder.safetensors"))]

    def clean():
        for path in written:
            if os.path.exists(path):
                os.unlink(path)

    clean()  # no checkpoint of an earlier run to resume from
    try:
        train = tiny_workflow(load("hicast_train_adapter"), steps=2)
        train["12"]["inputs"]["output_name"] = name
        result = inputs.run(train)
        assert result.ok, result.describe_error()
        assert len(saved(inputs, result, "hicast/train_preview")) == 1
        for path, kind in zip(written[::2], ("style_adapter", "style_encoder")):
            with safe_open(path, "pt") as f:
                assert f.metadata()["hicast_kind"] == kind
        use = tiny_workflow(load("hicast_image_ast"), steps=2)
        use["8"]["inputs"]["adapter_name"] = os.path.basename(written[0])
        use["9"]["inputs"]["adapter_name"] = os.path.basename(written[2])
        result = inputs.run(use)
        assert result.ok, result.describe_error()
        assert len(saved(inputs, result, "hicast/image_ast")) == 1
    finally:
        clean()


def test_api_files_are_what_build_workflows_builds():
    for name, (graph, _) in HICAST_WORKFLOWS.items():
        assert load(name) == json.loads(json.dumps(graph)), name


def test_ui_workflows_are_the_ui_form_of_their_api_twins(server):
    object_info = server.get_json("/object_info")
    for name, (graph, title) in HICAST_WORKFLOWS.items():
        with open(os.path.join(ROOT, "workflows", f"{name}.json")) as f:
            ui = json.load(f)
        assert ui["extra"].get("title") == title
        assert ui == json.loads(json.dumps(api_to_ui(load(name), object_info, title))), name
