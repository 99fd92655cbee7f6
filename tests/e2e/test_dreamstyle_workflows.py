"""Every DreamStyle example workflow through the real server with the tiny Wan2.1-I2V fixtures: the
output video has exactly the input's frame count and size, odd lengths included; the UI files are
the UI form of their API twins."""
import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from scripts.demo import moving_shapes
from scripts.media import read_video, write_video
from scripts.tiny_workflow import tiny_workflow
from scripts.workflow_format import api_to_ui

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scripts.build_workflows import WORKFLOWS  # noqa: E402

INFERENCE = sorted(n for n in WORKFLOWS if n.startswith("dreamstyle_") and not n.startswith("dreamstyle_train"))
API = [os.path.join(ROOT, "workflows", "api", f"{name}.json") for name in INFERENCE]
ALL_API = sorted(glob.glob(os.path.join(ROOT, "workflows", "api", "*.json")))


@pytest.fixture(scope="module")
def inputs(server):
    write_video(os.path.join(server.input_dir, "ds_7.mp4"), moving_shapes(7, 40, 56))
    write_video(os.path.join(server.input_dir, "ds_13.mp4"), moving_shapes(13, 40, 56, seed=1))
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        os.path.join(server.input_dir, "ds_style.png"))
    Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save(os.path.join(server.input_dir, "ds_first.png"))
    return {"dreamstyle_style.png": "ds_style.png", "dreamstyle_first_frame.png": "ds_first.png"}


@pytest.mark.parametrize("path", API, ids=[os.path.basename(p)[:-5] for p in API])
def test_example_workflow_keeps_frame_count_and_size(server, inputs, path):
    api = json.load(open(path))
    long_video = any(n["class_type"] == "DreamStyleLongVideo" for n in api.values())
    frames = 13 if long_video else 7
    wf = tiny_workflow(api, steps=1, inputs=dict(inputs, **{"dreamstyle_input.mp4": f"ds_{frames}.mp4"}))
    for node in wf.values():
        if node["class_type"] == "DreamStyleLongVideo":
            node["inputs"].update(chunk_frames=5, overlap=1)
    result = server.run(wf)
    assert result.ok, result.describe_error()
    videos = [f for f in result.files if f[2].endswith(".mp4")]
    assert len(videos) == 1
    out = read_video(os.path.join(server.output_dir, videos[0][1], videos[0][2]))
    assert out.shape == (frames, 40, 56, 3)


def test_ui_workflows_are_the_ui_form_of_their_api_twins(server):
    """Every workflows/<name>.json is what scripts/build_workflows.py writes for workflows/api/<name>.json."""
    object_info = server.get_json("/object_info")
    assert len(ALL_API) > len(API) > 0
    for path in ALL_API:
        name = os.path.basename(path)
        ui = json.load(open(os.path.join(ROOT, "workflows", name)))
        title = ui["extra"].get("title")
        assert ui == json.loads(json.dumps(api_to_ui(json.load(open(path)), object_info, title))), name
        ids = {n["id"] for n in ui["nodes"]}
        for link_id, src, slot, dst, dst_slot, kind in ui["links"]:
            assert src in ids and dst in ids
            src_node = next(n for n in ui["nodes"] if n["id"] == src)
            dst_node = next(n for n in ui["nodes"] if n["id"] == dst)
            assert src_node["outputs"][slot]["type"] == kind == dst_node["inputs"][dst_slot]["type"]


def test_api_workflows_set_every_input_the_frontend_writes(server):
    """The frontend's graphToPrompt writes every widget of a node, optional ones included, so an API twin that
    leaves one out differs from what a user saving the UI file gets (scripts/check_ui_workflows.py found that
    for DreamStyleLongVideo.colour_match and DreamStyleTrainTokenLoRA.checkpoint_granularity)."""
    object_info = server.get_json("/object_info")
    missing = []
    for path in ALL_API:
        for nid, node in json.load(open(path)).items():
            spec = object_info[node["class_type"]]["input"]
            for section in ("required", "optional"):
                for key, (kind, *rest) in spec.get(section, {}).items():
                    widget = isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
                    if widget and key not in node["inputs"]:
                        missing.append(f"{os.path.basename(path)} node {nid} ({node['class_type']}).{key}")
    assert not missing, missing
