"""The paired-data construction workflow through the real server with the tiny Wan Fun-control fixture:
it appends a valid pair the reader accepts; a pair under the thresholds is not written and the reason is
logged; the UI file is the UI form of its API twin."""
import json
import os
import uuid

from dreamstyle.captions import strip_style
from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_reader import iter_pairs
from dreamstyle.synthetic_scenes import make_scene
from scripts.media import write_video
from scripts.tiny_workflow import tiny_workflow
from scripts.workflow_format import api_to_ui

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "dreamstyle_build_pairs.json"
FRAMES, W, H = 5, 64, 48


def tiny_build_graph(server, dataset_dir, min_style, min_content):
    api = json.load(open(os.path.join(ROOT, "workflows", "api", NAME)))
    write_video(os.path.join(server.input_dir, "dsdata_raw.mp4"), make_scene(4, 9, H, W).render())
    g = tiny_workflow(api, steps=2, inputs={"dreamstyle_raw.mp4": "dsdata_raw.mp4"})
    for node in g.values():
        kind, args = node["class_type"], node["inputs"]
        if kind == "WanFunControlToVideo":
            args.update(width=W, height=H)
        elif kind == "ImageFromBatch" and args["batch_index"]:
            args.update(batch_index=1, length=3)  # K = 3 references from a 5-frame clip
        elif kind == "DreamStylePairFilter":
            args.update(min_style=min_style, min_content=min_content)
        elif kind == "DreamStyleSavePair":
            args["dataset_dir"] = dataset_dir
    g["7"]["inputs"]["value"] = FRAMES  # the clip length shared by both generations
    return g


def test_build_pairs_workflow_appends_a_valid_pair(server):
    dataset_dir = f"dsdata-{uuid.uuid4().hex[:8]}"
    result = server.run(tiny_build_graph(server, dataset_dir, min_style=-1.0, min_content=-1.0))
    assert result.ok, result.describe_error()
    folder = os.path.join(server.output_dir, dataset_dir)
    report = check_dataset(folder)
    assert report.ok and report.pairs == 1, report.summary()
    pair = next(iter_pairs(folder))
    raw, sty = pair.load_raw(), pair.load_stylized()
    assert raw.shape == sty.shape == (FRAMES, H, W, 3)
    assert pair.load_control().shape[0] == FRAMES and len(pair.refs()) == 3
    api = json.load(open(os.path.join(ROOT, "workflows", "api", NAME)))
    caption_sty = api["14"]["inputs"]["value"]
    assert pair.caption_sty == caption_sty and pair.caption_ns == strip_style(caption_sty).text
    assert set(pair.record["scores"]) == {"style", "content"}
    assert (raw != sty).any()  # different first frames under the same control and noise

    # a pair under the thresholds is not written, and why is logged
    result = server.run(tiny_build_graph(server, dataset_dir, min_style=1.0, min_content=1.0))
    assert result.ok, result.describe_error()
    assert check_dataset(folder).pairs == 1
    assert "not written: rejected:" in server.log and "min_content 1.000" in server.log


def test_ui_workflow_is_the_ui_form_of_its_api_twin(server):
    object_info = server.get_json("/object_info")
    ui = json.load(open(os.path.join(ROOT, "workflows", NAME)))
    api = json.load(open(os.path.join(ROOT, "workflows", "api", NAME)))
    assert ui == json.loads(json.dumps(api_to_ui(api, object_info, ui["extra"].get("title"))))
