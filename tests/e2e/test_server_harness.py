"""The real ComfyUI server with this pack: it starts, lists our nodes, runs a tiny Wan I2V graph,
reports progress over the websocket, and answers malformed prompts with its own validation errors."""
import copy
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def smoke_workflow(server):
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(
        os.path.join(server.input_dir, "smoke_start.png"))
    with open(os.path.join(HERE, "workflows", "wan_i2v_smoke.json")) as f:
        return json.load(f)


def test_pack_imports_without_errors_and_lists_every_node(server, pack_node_ids):
    info = server.get_json("/object_info")
    pack_lines = [line for line in server.log.splitlines() if "UniStyle" in line]
    assert any("custom_nodes/UniStyle" in line for line in pack_lines)  # the import-times line
    assert not any("IMPORT FAILED" in line or "Cannot import" in line for line in pack_lines)
    for node_id in pack_node_ids + ["TinyUMT5Loader", "TinyCLIPVisionEncode"]:
        assert node_id in info, node_id
    ours = sorted(k for k, v in info.items() if v.get("python_module") == "custom_nodes.UniStyle")
    assert ours == pack_node_ids
    for node_id in ours:
        assert node_id.startswith(("DreamStyle", "HiCAST", "StyleMotif")), node_id
        assert info[node_id]["category"].startswith("UniStyle/"), node_id
        for section in ("required", "optional"):
            for name, spec in info[node_id]["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_tiny_wan_i2v_graph_runs_and_writes_outputs(server):
    events = []
    result = server.run(smoke_workflow(server), on_event=events.append)
    assert result.ok, result.describe_error()
    pngs = [f for f in result.files if f[2].endswith(".png")]
    assert len(pngs) == 9  # 9 frames in, 9 decoded frames out
    for kind, sub, name in pngs:
        path = os.path.join(server.output_dir, sub, name)
        with Image.open(path) as im:
            assert im.size == (64, 48)
    assert any(e["type"] == "progress" and e["data"]["max"] == 2 for e in events)  # KSampler's 2 steps
    assert any(e["type"] == "executed" for e in events)


def test_malformed_prompts_get_validation_errors_and_server_keeps_serving(server):
    good = smoke_workflow(server)

    unknown = copy.deepcopy(good)
    unknown["10"]["class_type"] = "NoSuchNode"
    r = server.run(unknown)
    assert not r.ok and r.status == "refused"
    assert "NoSuchNode" in json.dumps(r.error)

    missing = copy.deepcopy(good)
    del missing["10"]["inputs"]["seed"]
    r = server.run(missing)
    assert not r.ok and r.status == "refused"
    assert "seed" in r.describe_error() and "10" in r.node_errors

    wrong_type = copy.deepcopy(good)
    wrong_type["10"]["inputs"]["model"] = ["2", 0]  # a VAE into KSampler's MODEL input
    r = server.run(wrong_type)
    assert not r.ok and r.status == "refused"
    assert "10" in r.node_errors

    assert server.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    assert server.run(good).ok
