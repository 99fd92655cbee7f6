"""Long nodes report progress the way a user sees it: `progress` messages on the server's websocket, for
that node, counting up to their total. The example workflows run with the tiny fixtures."""
import glob
import json
import os
import shutil
import uuid

import numpy as np
import pytest
from PIL import Image

from scripts.demo import moving_shapes
from scripts.media import write_video
from scripts.tiny_workflow import tiny_workflow

ADAPTER = "progress_test_adapter.safetensors"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# workflow -> the long nodes in it that must show a progress bar (ComfyUI's KSampler shows its own)
LONG_NODES = {
    "dreamstyle_style_image": {"DreamStyleConditioning", "KSampler"},
    "dreamstyle_long_video": {"DreamStyleLongVideo"},
    "hicast_train_adapter": {"HiCASTTrainAdapter"},
    "stylemotif_text_style_motion": {"StyleMotifStylize"},
    "stylemotif_train": {"StyleMotifTrain"},
}
# the paired-data workflow, as its own e2e test builds it tiny (thresholds 0: the pair is written)
PAIR_NODES = {"HiCASTDepthMap", "HiCASTPoseMap", "DreamStylePairFilter", "DreamStyleSavePair"}


@pytest.fixture(scope="module")
def inputs(server, stylemotif_samples):
    write_video(os.path.join(server.input_dir, "progress_clip.mp4"), moving_shapes(13, 40, 56))
    rng = np.random.default_rng(0)
    for name, size in (("progress_style.png", 32), ("progress_content.png", 64)):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(os.path.join(server.input_dir, name))
    return {"dreamstyle_input.mp4": "progress_clip.mp4", "dreamstyle_style.png": "progress_style.png",
            "hicast_style.png": "progress_style.png", "hicast_content.png": "progress_content.png"}


def assert_progress(events, wf, kinds, where):
    progress = progress_by_node(events)
    for nid, node in wf.items():
        if node["class_type"] in kinds:
            steps = progress.get(nid)
            assert steps, f"{where}: no progress message from node {nid} ({node['class_type']})"
            assert steps[-1][0] == steps[-1][1] >= 1, (node["class_type"], steps)  # ends at its total
    return progress


def progress_by_node(events):
    found = {}
    for m in events:
        if m["type"] == "progress":
            found.setdefault(str(m["data"]["node"]), []).append((m["data"]["value"], m["data"]["max"]))
    return found


@pytest.mark.parametrize("name", sorted(LONG_NODES))
def test_long_nodes_report_progress_on_the_websocket(server, inputs, name):
    with open(os.path.join(ROOT, "workflows", "api", f"{name}.json")) as f:
        wf = tiny_workflow(json.load(f), steps=2, inputs=inputs)
    for node in wf.values():
        if node["class_type"] == "DreamStyleLongVideo":
            node["inputs"].update(chunk_frames=5, overlap=1)  # 13 frames -> several chunks
        if node["class_type"] == "HiCASTTrainAdapter":
            node["inputs"]["output_name"] = ADAPTER
    folder = os.path.join(server.base, "models", "hicast_adapters")
    written = [os.path.join(folder, ADAPTER.replace(".safetensors", end))
               for end in (".safetensors", ".hicast_resume", "_style_encoder.safetensors")]
    written += glob.glob(os.path.join(server.base, "models", "stylemotif", "stylemotif_quick*"))  # never left behind
    try:
        result = server.run(wf)
    finally:
        for path in written + glob.glob(os.path.join(server.base, "models", "stylemotif", "stylemotif_quick*")):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path) if os.path.exists(path) else None
    assert result.ok, result.describe_error()
    progress = assert_progress(result.events, wf, LONG_NODES[name], name)
    for nid, node in wf.items():
        if node["class_type"] == "DreamStyleLongVideo":  # its chunk bar (one step per chunk) completes; the
            assert (3, 3) in progress[nid], progress[nid]  # samplers inside it report under the same node in between


def test_pair_making_nodes_report_progress_on_the_websocket(server):
    from tests.e2e.test_dreamstyle_data_workflow import tiny_build_graph
    dataset_dir = f"progress-pairs-{uuid.uuid4().hex[:8]}"
    wf = tiny_build_graph(server, dataset_dir, min_style=-1.0, min_content=-1.0, record=dataset_dir)
    try:
        result = server.run(wf)
    finally:
        shutil.rmtree(os.path.join(server.output_dir, dataset_dir), ignore_errors=True)
    assert result.ok, result.describe_error()
    assert_progress(result.events, wf, PAIR_NODES, "dreamstyle_build_pairs")
