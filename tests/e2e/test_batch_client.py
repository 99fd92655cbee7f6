"""scripts/batch.py against the real server: one prompt per input, manifest, resume, bad items."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def make_inputs(folder):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(os.path.join(folder, name))
    with open(os.path.join(folder, "c_broken.png"), "w") as f:
        f.write("this is not an image")


def test_batch_runs_each_input_records_errors_and_resumes(server, tmp_path):
    from scripts.batch import run_batch
    inputs, out = str(tmp_path / "in"), str(tmp_path / "out")
    make_inputs(inputs)
    wf = os.path.join(HERE, "workflows", "wan_i2v_smoke.json")
    lines = []
    failures = run_batch(wf, inputs, maps=[("6", "image")], sets=[(("10", "steps"), 1)],
                         server=server.url, out_dir=out, log=lines.append)
    assert failures == 1
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    items = manifest["items"]
    assert set(items) == {"a.png", "b.png", "c_broken.png"}
    for good in ("a.png", "b.png"):
        assert items[good]["ok"] and len(items[good]["files"]) == 9 + 1  # 9 PNG frames + 1 WEBP
        for rel in items[good]["files"]:
            assert os.path.getsize(os.path.join(out, rel)) > 0
    bad = items["c_broken.png"]
    assert not bad["ok"] and bad["comfy_error"]["node_type"] == "LoadImage"
    assert "LoadImage" in bad["error"]
    assert any("progress" not in l and "ok" in l for l in lines)

    # re-run: the two good items are skipped, the broken one is tried again and still fails
    lines.clear()
    failures = run_batch(wf, inputs, maps=[("6", "image")], sets=[(("10", "steps"), 1)],
                         server=server.url, out_dir=out, log=lines.append)
    assert failures == 1
    assert sum("skipped" in l for l in lines) == 2

    # a different --set changes the workflow: nothing is skipped
    lines.clear()
    run_batch(wf, inputs, maps=[("6", "image")], sets=[(("10", "steps"), 2)], glob="a.png",
              server=server.url, out_dir=out, log=lines.append)
    assert not any("skipped" in l for l in lines)


def test_batch_reports_validation_errors_per_item_and_server_survives(server, tmp_path):
    inputs, out = str(tmp_path / "in"), str(tmp_path / "out")
    make_inputs(inputs)
    wf = json.load(open(os.path.join(HERE, "workflows", "wan_i2v_smoke.json")))
    wf["10"]["inputs"]["sampler_name"] = "no_such_sampler"
    wf_path = str(tmp_path / "bad.json")
    json.dump(wf, open(wf_path, "w"))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "batch.py"), wf_path, inputs, "--map", "6.image",
                        "--glob", "a.png", "--server", server.url, "--out", out], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    item = json.load(open(os.path.join(out, "manifest.json")))["items"]["a.png"]
    assert item["status"] == "refused" and "10" in item["node_errors"]
    assert "sampler_name" in item["error"]
    assert server.get_json("/queue")["queue_running"] == []


def test_batch_refuses_bad_arguments_clearly(tmp_path):
    from scripts.batch import main
    wf = os.path.join(HERE, "workflows", "wan_i2v_smoke.json")
    make_inputs(str(tmp_path))
    for argv, says in ((["--map", "6"], "NODE_ID.INPUT_NAME"), (["--map", "99.image"], "no node '99'"),
                       (["--map", "6.image", "--set", "10.seed"], "NODE_ID.INPUT_NAME=VALUE"), ([], "--map")):
        try:
            main([wf, str(tmp_path), "--server", "127.0.0.1:9", "--out", str(tmp_path / "out")] + argv)
        except SystemExit as e:
            assert says in str(e), (argv, str(e))
        else:
            raise AssertionError(f"{argv} was accepted")
