"""scripts/batch.py against two real ComfyUI servers (own ports and base dirs: the session's and this module's),
with the test-only BatchProbe workflow: LoadImage -> BatchProbe (waits, or misbehaves when the uploaded name
says so) -> SaveImage."""
import collections
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKFLOW = os.path.join(HERE, "workflows", "batch_probe.json")
MAPS = [("1", "image"), ("2", "name")]
BAD = {"corrupt.png", "explode_me.png", "reject_me.png", "empty_me.png"}


class Servers:
    """The session's shared server (tests/conftest.py) and one of this module's own (its own port and base dir),
    which a test may kill."""

    def __init__(self, base, models):
        self.base, self.models = base, models
        self.shared, self.port = None, None

    def start_own(self):
        from scripts import host
        if self.port is None or not host._answers(self.port):
            self.port = host.start(self.base, models=self.models, test_nodes=True)

    @property
    def addresses(self):
        return [self.shared.url.removeprefix("http://"), f"127.0.0.1:{self.port}"]

    def own_pid(self):
        return int(open(os.path.join(self.base, "comfy.pid")).read())

    def prompts_by_name(self):
        """How many BatchProbe prompts each uploaded name was queued in, over both servers' whole /history."""
        from scripts.comfy_client import ComfyClient
        seen = collections.Counter()
        for address in self.addresses:
            for entry in ComfyClient(address).get_json("/history").values():
                probe = entry["prompt"][2].get("2", {})
                if probe.get("class_type") == "BatchProbe":
                    seen[probe["inputs"]["name"]] += 1
        return seen


@pytest.fixture(scope="module")
def servers(request, tiny_models):
    from scripts import host
    s = Servers(os.path.join(ROOT, "build", "test-host", f"batch-{os.getpid()}"), tiny_models)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            own = ex.submit(s.start_own)  # starts while the shared one does, when that one is not up yet
            s.shared = request.getfixturevalue("server")
            own.result()
        yield s
    finally:
        host.stop(s.base)
        shutil.rmtree(s.base, ignore_errors=True)


@pytest.fixture
def two(servers):
    servers.start_own()  # a test before may have killed it
    return servers


def image(seed, size=(24, 32)):
    return (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)


def make_inputs(folder, names, seed):
    for i, rel in enumerate(names):
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if rel == "corrupt.png":
            open(path, "w").write("this is not an image")
        else:
            Image.fromarray(image(seed * 1000 + i)).save(path)


def records(out):
    with open(os.path.join(out, "manifest.jsonl")) as f:
        return [json.loads(line) for line in f]


def upload_name(path):
    from dreamstyle.dataset_media import sha256_file
    return f"unistyle_batch/{sha256_file(path)[:16]}_{os.path.basename(path)}"


def opts(**kw):
    from scripts.batch import Options
    return Options(**kw)


def test_mixed_batch_on_two_servers_each_item_true_once_and_rerun_skips(two, tmp_path):
    from scripts.batch import run_batch
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    good = ["a.png", "sub1/a.png", "sub2/a.png", "clip.png", "clip.jpg"] + [f"deep/x/g{i}.png" for i in range(5)]
    make_inputs(inp, good + sorted(BAD), seed=1)
    run = lambda: run_batch(WORKFLOW, inp, MAPS, [(("2", "wait"), 0.2)], two.addresses, out,  # noqa: E731
                            opts=opts(max_attempts=2), log=lambda line: None)
    summary = run()

    assert sorted(summary.failed) == sorted(BAD)
    status = {k: v[0] for k, v in summary.results.items()}
    assert all(status[g] == "ok" for g in good) and len(status) == 14
    reasons = {k: summary.results[k][1] for k in BAD}
    assert reasons["corrupt.png"].startswith("[execution_error]") and "node 1 (LoadImage)" in reasons["corrupt.png"]
    assert "node 2 (BatchProbe)" in reasons["explode_me.png"] and "exploded" in reasons["explode_me.png"]
    assert reasons["reject_me.png"].startswith("[rejected]") and "asks to be rejected" in reasons["reject_me.png"]
    assert reasons["empty_me.png"] == "[missing_output] node 3 (SaveImage) produced no files"
    assert all(c["ok"] > 0 for c in summary.counts.values()), summary.counts  # both servers did work

    done = collections.Counter(r["item"] for r in records(out) if r["event"] == "done")
    assert done == {g: 1 for g in good}
    for i, rel in enumerate(good + sorted(BAD)):
        folder = os.path.join(out, "outputs", rel)
        if rel in BAD:
            assert not os.path.exists(folder)
            continue
        assert os.listdir(folder) == ["3_0.png"]  # one folder per relative path: same stems never collide
        got = np.asarray(Image.open(os.path.join(folder, "3_0.png")).convert("RGB")).astype(int)
        want = np.asarray(Image.open(os.path.join(inp, rel)).convert("RGB")).astype(int)
        assert np.abs(got - want).max() <= 1, rel  # each output is its own input's image

    before = two.prompts_by_name()
    summary = run()  # rerun: good items skipped (outputs verified), bad ones tried a second time
    assert {k for k, v in summary.results.items() if v[0] == "skipped"} == set(good)
    assert sorted(summary.failed) == sorted(BAD)
    after = two.prompts_by_name()
    assert all(after[upload_name(os.path.join(inp, g))] == before[upload_name(os.path.join(inp, g))] == 1
               for g in good)

    os.remove(os.path.join(out, "outputs", "sub1", "a.png", "3_0.png"))  # a lost output is recomputed
    summary = run()  # third run: bad items failed twice (--max-attempts 2) are not sent again
    assert summary.results["sub1/a.png"][0] == "ok"
    assert "failed 2 times" in summary.results["explode_me.png"][1]
    assert two.prompts_by_name() - after == collections.Counter({upload_name(os.path.join(inp, "sub1/a.png")): 1})


def test_cli_exit_status_dead_server_at_start_and_servers_file(two, tmp_path):
    from scripts.host import free_port
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    make_inputs(inp, ["a.png", "b.png", "explode_me.png"], seed=2)
    servers_file = tmp_path / "servers.txt"
    servers_file.write_text(f"# the dead one first\n127.0.0.1:{free_port()}\n{two.addresses[0]}\n")
    cli = [sys.executable, os.path.join(ROOT, "scripts", "batch.py"), WORKFLOW, inp, "--map", "1.image",
           "--map", "2.name", "--out", out, "--no-progress"]
    r = subprocess.run(cli + ["--servers-file", str(servers_file)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "does not answer; going on without it" in r.stdout
    assert "3 items: 2 ok, 0 done earlier, 1 failed" in r.stdout and "FAILED explode_me.png" in r.stdout
    r = subprocess.run(cli + ["--server", two.addresses[1], "--glob", "[ab].png"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "2 items: 0 ok, 2 done earlier, 0 failed" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cli + ["--server", f"127.0.0.1:{free_port()}", "--retries", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "no server answers" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cli + ["--map", "99.image"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no node '99'" in r.stderr


def test_killed_client_rerun_recomputes_nothing_and_sends_nothing_twice(two, tmp_path):
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    names = [f"v{i:02d}.png" for i in range(12)]
    make_inputs(inp, names, seed=3)
    cli = [sys.executable, os.path.join(ROOT, "scripts", "batch.py"), WORKFLOW, inp, "--map", "1.image",
           "--map", "2.name", "--set", "2.wait=0.6", "--out", out, "--no-progress"]
    for a in two.addresses:
        cli += ["--server", a]
    first = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(os.path.join(out, "manifest.jsonl")):
            events = collections.Counter(r["event"] for r in records(out))
            if events["done"] >= 3 and events["submitted"] > events["done"]:
                break
        time.sleep(0.05)
    first.kill()
    first.wait()
    killed_at = records(out)
    done_before = {r["item"] for r in killed_at if r["event"] == "done"}
    in_flight = {r["item"] for r in killed_at if r["event"] == "submitted"} - done_before
    assert done_before and in_flight and len(done_before) < 12

    r = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    done = collections.Counter(r["item"] for r in records(out) if r["event"] == "done")
    assert done == {n: 1 for n in names}  # nothing finished before the kill was computed again
    seen = two.prompts_by_name()
    assert all(seen[upload_name(os.path.join(inp, n))] == 1 for n in names)  # in-flight prompts re-attached


def test_batch_refuses_bad_arguments_clearly(tmp_path):
    from scripts.batch import main
    make_inputs(str(tmp_path), ["a.png"], seed=5)
    for argv, says in ((["--map", "6"], "NODE_ID.INPUT_NAME"), (["--map", "99.image"], "no node '99'"),
                       (["--map", "1.image", "--set", "2.wait"], "NODE_ID.INPUT_NAME=VALUE"), ([], "--map"),
                       (["--map", "1.image", "--outputs", "7"], "--outputs names no node '7'"),
                       (["--map", "1.image", "--set-file", "1.image"], "NODE_ID.INPUT_NAME=PATH"),
                       (["--map", "1.image", "--set-file", "1.image=/no/such.png"], "no file"),
                       (["--map", "1.image", "--set-file", "9.image=" + WORKFLOW], "--set-file names no node '9'"),
                       (["--map", "1.image", "--glob", "*.mp4"], "no input files matching")):
        with pytest.raises(SystemExit) as e:
            main([WORKFLOW, str(tmp_path), "--server", "127.0.0.1:9", "--out", str(tmp_path / "out")] + argv)
        assert says in str(e.value), (argv, str(e.value))


def test_readme_video_command_same_stem_videos_on_two_servers(two, tmp_path):
    """The README's command shape on the tiny DreamStyle style-image graph: clip.mp4 and clip.mkv (same stem)
    each get their own decoded output video; the style image is uploaded once to each server."""
    from scripts.batch import run_batch
    from scripts.demo import moving_shapes
    from scripts.media import read_video, write_video
    from scripts.tiny_workflow import tiny_workflow
    inp, out = tmp_path / "videos", str(tmp_path / "out")
    inp.mkdir()
    write_video(str(inp / "clip.mp4"), moving_shapes(7, 40, 56))
    write_video(str(inp / "clip.mkv"), moving_shapes(5, 40, 56, seed=1))
    style = tmp_path / "style.png"
    Image.fromarray(image(6, (32, 32))).save(style)
    api = json.load(open(os.path.join(ROOT, "workflows", "api", "dreamstyle_style_image.json")))
    wf_path = tmp_path / "tiny_style_image.json"
    wf_path.write_text(json.dumps(tiny_workflow(api, steps=1)))
    summary = run_batch(str(wf_path), str(inp), [("8", "file")], [(("15", "seed"), 7)], two.addresses, out,
                        set_files=[(("10", "image"), str(style))], log=lambda line: None)
    assert summary.failed == [], summary.lines()
    for name, frames in (("clip.mp4", 7), ("clip.mkv", 5)):
        files = os.listdir(os.path.join(out, "outputs", name))
        assert files == ["18_0.mp4"], files
        assert read_video(os.path.join(out, "outputs", name, "18_0.mp4")).shape == (frames, 40, 56, 3)


def test_killing_one_server_mid_batch_loses_nothing(two, tmp_path):  # last: it leaves one server dead
    from scripts.batch import run_batch
    inp, out = str(tmp_path / "in"), str(tmp_path / "out")
    names = [f"k{i:02d}.png" for i in range(12)]
    make_inputs(inp, names, seed=4)
    result = {}
    t = threading.Thread(target=lambda: result.update(summary=run_batch(
        WORKFLOW, inp, MAPS, [(("2", "wait"), 0.6)], two.addresses, out, log=lambda line: None)))
    t.start()
    victim = two.addresses[1]
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(os.path.join(out, "manifest.jsonl")):
            rs = [r for r in records(out) if r.get("server") == victim]
            if any(r["event"] == "done" for r in rs) and sum(r["event"] == "submitted" for r in rs) > sum(
                    r["event"] == "done" for r in rs):
                break
        time.sleep(0.05)
    os.killpg(two.own_pid(), signal.SIGKILL)
    t.join(120)
    summary = result["summary"]
    assert summary.failed == [] and len(summary.results) == 12
    assert summary.counts[victim]["moved"] >= 1  # what it held went elsewhere
    done = collections.Counter(r["item"] for r in records(out) if r["event"] == "done")
    assert done == {n: 1 for n in names}
    for n in names:
        assert os.listdir(os.path.join(out, "outputs", n)) == ["3_0.png"]
