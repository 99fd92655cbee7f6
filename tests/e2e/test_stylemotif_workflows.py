"""The StyleMotif example workflows (API twins of workflows/stylemotif_*.json) run through a real
ComfyUI server; bad motion input fails with a clear message and the server keeps serving."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from scripts.tiny_workflow import tiny_workflow
from stylemotif.bvh import load_bvh

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ("stylemotif_text_style_motion.json", "stylemotif_style_transfer.json", "stylemotif_text_style_blend.json",
         "stylemotif_train.json")


def load(name, tiny=True):
    """The API workflow; tiny: with the tiny fixtures (model file, CLIP-L loader) and 10 sampling steps."""
    with open(os.path.join(ROOT, "workflows", "api", name)) as f:
        api = json.load(f)
    return tiny_workflow(api, steps=10) if tiny else api


def out_path(server, f):
    return os.path.join(server.output_dir, f[1], f[2])


@pytest.mark.parametrize("name, frames, formats", [("stylemotif_text_style_motion.json", 40, {".npy", ".bvh", ".png", ".webp"}),
                                                   ("stylemotif_style_transfer.json", 40, {".npy", ".bvh", ".png", ".webp"}),
                                                   ("stylemotif_text_style_blend.json", 40, {".bvh", ".png", ".webp"})])
def test_workflow_writes_motion_and_preview(server, stylemotif_samples, name, frames, formats):
    result = server.run(load(name))
    assert result.ok, result.describe_error()
    prefix = name[:-5]
    files = [f for f in result.files if f[2].startswith(prefix)]
    assert {os.path.splitext(f[2])[1] for f in files} == formats
    for f in files:
        path = out_path(server, f)
        if path.endswith(".npy"):
            x = np.load(path)
            assert x.shape == (frames, 263) and np.isfinite(x).all()
        elif path.endswith(".bvh"):
            joints, fps = load_bvh(path)
            assert joints.shape == (frames, 22, 3) and fps == pytest.approx(20)
    pngs = [out_path(server, f) for f in files if f[2].endswith(".png")]
    assert len(pngs) == frames  # one preview image per frame
    img = np.asarray(Image.open(pngs[0]))
    assert img.shape == (256, 256, 3) and img.std() > 1  # a skeleton on a background, not a blank


def test_train_workflow_trains_saves_and_stylizes(server):
    models = os.path.join(os.path.dirname(server.output_dir), "models", "stylemotif")
    try:
        result = server.run(load("stylemotif_train.json"))
        assert result.ok, result.describe_error()
        assert os.path.exists(os.path.join(models, "stylemotif_quick.safetensors"))
        npy = [out_path(server, f) for f in result.files if f[2].startswith("stylemotif_train") and f[2].endswith(".npy")]
        assert len(npy) == 1 and np.load(npy[0]).shape == (40, 263)
        assert not glob.glob(os.path.join(models, "stylemotif_quick.partial"))  # resume states go once the model is saved
    finally:
        for p in glob.glob(os.path.join(models, "stylemotif_quick*")):
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def test_bad_motion_input_is_reported_and_server_keeps_serving(server, stylemotif_samples):
    arr = np.zeros((12, 263), np.float32)
    arr[3, 5] = np.nan
    np.save(os.path.join(server.input_dir, "stylemotif_nan.npy"), arr)
    np.save(os.path.join(server.input_dir, "stylemotif_wide.npy"), np.zeros((12, 250), np.float32))
    with open(os.path.join(server.input_dir, "stylemotif_unknown.bvh"), "w") as f:
        f.write(open(os.path.join(os.path.dirname(server.output_dir), "models", "stylemotif", "samples", "walk_old.bvh"))
                .read().replace("JOINT left_knee", "JOINT LeftLeg"))

    def graph(file):
        return {"1": {"class_type": "StyleMotifLoadMotion", "inputs": {"file": file}},
                "2": {"class_type": "StyleMotifSaveMotion", "inputs": {"motion": ["1", 0], "filename_prefix": "stylemotif_bad",
                                                                       "format": "npy"}}}
    for file, message in (("stylemotif_nan.npy", "NaN"), ("stylemotif_wide.npy", "[frames, 263]"),
                          ("stylemotif_unknown.bvh", "unknown BVH joints ['LeftLeg']"), ("../models/stylemotif/samples/walk_old.bvh", "file"),
                          (os.path.join(server.input_dir, "stylemotif_wide.npy"), "file")):
        result = server.run(graph(file))
        assert not result.ok
        assert message in result.describe_error(), result.describe_error()
    result = server.run(load("stylemotif_text_style_blend.json"))
    assert result.ok, result.describe_error()


def test_ui_workflows_match_their_api_twins():
    for name in NAMES:
        with open(os.path.join(ROOT, "workflows", name)) as f:
            ui = json.load(f)
        api = load(name, tiny=False)
        graph_nodes = [n for n in ui["nodes"] if n["type"] != "MarkdownNote"]  # the frontend-only note
        assert {str(n["id"]): n["type"] for n in graph_nodes} == {k: v["class_type"] for k, v in api.items()}
        nodes = {n["id"]: n for n in ui["nodes"]}
        for link_id, src, src_slot, dst, dst_slot, _ in ui["links"]:  # the frontend's link: target slot is an index
            target = nodes[dst]["inputs"][dst_slot]
            assert target["link"] == link_id and link_id in nodes[src]["outputs"][src_slot]["links"]
            assert api[str(dst)]["inputs"][target["name"]] == [str(src), src_slot]
