"""The paired-data construction workflow through the real server with the tiny fixtures (Wan Fun-control, SD1.5
img2img stylizer, Depth Anything, CLIP vision): depth+pose control from the pack's extractors, both videos
generated from the identical control latent and noise (recorded inside the sampler and compared), a valid
pair appended; a pair under the thresholds is not written and the reason is logged; the UI file is the UI
form of its API twin."""
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
FRAMES, W, H, K = 5, 64, 48, 3


def api():
    return json.load(open(os.path.join(ROOT, "workflows", "api", NAME)))


def nodes_of(g, kind):
    return [nid for nid, node in g.items() if node["class_type"] == kind]


def tiny_build_graph(server, dataset_dir, min_style, min_content, record, control=None):
    write_video(os.path.join(server.input_dir, "dsdata_raw.mp4"), make_scene(4, 9, H, W).render())
    g = tiny_workflow(api(), steps=2, inputs={"dreamstyle_raw.mp4": "dsdata_raw.mp4"}, size=(W, H))
    frames = next(n for n in nodes_of(g, "PrimitiveInt") if g[n]["inputs"]["value"] == 33)
    g[frames]["inputs"]["value"] = FRAMES  # the clip length both generations share
    for node in g.values():
        kind, args = node["class_type"], node["inputs"]
        if kind == "ImageFromBatch" and args["batch_index"] == 8:
            args.update(batch_index=1, length=K)  # K references from a 5-frame clip
        elif kind == "HiCASTDepthMap":
            args["resolution"] = 70
        elif kind == "DreamStyleControlVideo" and control:
            args["control"] = control
        elif kind == "DreamStylePairFilter":
            args.update(min_style=min_style, min_content=min_content)
        elif kind == "DreamStyleSavePair":
            args["dataset_dir"] = dataset_dir
        elif kind == "KSampler" and isinstance(args["seed"], list):  # the two Wan generations
            node["class_type"] = "RecordingKSampler"
            args["record"] = record
    return g


def records(server, record):
    with open(os.path.join(server.output_dir, record + ".jsonl")) as f:
        return [json.loads(line) for line in f]


def test_build_pairs_workflow_shares_control_and_noise_and_appends_a_valid_pair(server):
    g = api()
    control = g[nodes_of(g, "DreamStyleControlVideo")[0]]["inputs"]
    assert control["control"] == "depth+pose"  # the paper's default
    assert {g[n]["class_type"] for n in (control["depth_map"][0], control["pose_map"][0])} == \
        {"HiCASTDepthMap", "HiCASTPoseMap"}
    assert "ImageQuantize" not in {n["class_type"] for n in g.values()}
    img2img = [g[n]["inputs"] for n in nodes_of(g, "KSampler") if not isinstance(g[n]["inputs"]["seed"], list)]
    assert len(img2img) == 1 and 0 < img2img[0]["denoise"] < 1  # the stylizer: SD1.5 img2img

    dataset_dir, record = f"dsdata-{uuid.uuid4().hex[:8]}", f"rec-{uuid.uuid4().hex[:8]}"
    result = server.run(tiny_build_graph(server, dataset_dir, min_style=-1.0, min_content=-1.0, record=record))
    assert result.ok, result.describe_error()
    raw_run, sty_run = records(server, record)
    assert raw_run["noise"] == sty_run["noise"] and raw_run["seed"] == sty_run["seed"]
    assert raw_run["control_latent"] == sty_run["control_latent"]  # the identical control tensor
    assert raw_run["start_latent"] != sty_run["start_latent"]  # raw vs stylized first frame
    folder = os.path.join(server.output_dir, dataset_dir)
    report = check_dataset(folder)
    assert report.ok and report.pairs == 1, report.summary()
    pair = next(iter_pairs(folder))
    raw, sty = pair.load_raw(), pair.load_stylized()
    assert raw.shape == sty.shape == (FRAMES, H, W, 3)
    assert pair.load_control().shape[0] == FRAMES and len(pair.refs()) == K
    caption_sty = next(n["inputs"]["value"] for n in g.values() if n["class_type"] == "PrimitiveStringMultiline")
    assert pair.caption_sty == caption_sty and pair.caption_ns == strip_style(caption_sty).text
    assert set(pair.record["scores"]) == {"style", "content"}
    assert (raw != sty).any()  # different first frames under the same control and noise

    # a pair under the thresholds is not written, and why is logged; Canny control runs without depth/pose
    result = server.run(tiny_build_graph(server, dataset_dir, min_style=1.0, min_content=1.0, record=record,
                                         control="canny"))
    assert result.ok, result.describe_error()
    assert check_dataset(folder).pairs == 1
    assert "not written: rejected:" in server.log and "min_content 1.000" in server.log
    canny_raw, canny_sty = records(server, record)[2:]
    assert canny_raw["control_latent"] == canny_sty["control_latent"] != raw_run["control_latent"]


def test_ui_workflow_is_the_ui_form_of_its_api_twin(server):
    object_info = server.get_json("/object_info")
    ui = json.load(open(os.path.join(ROOT, "workflows", NAME)))
    assert ui == json.loads(json.dumps(api_to_ui(api(), object_info, ui["extra"].get("title"))))
