"""The abuse tier: the real server, one prompt per catalogue row (tests/abuse/catalogue.py).

Each row must be refused with an error that names its input (or succeed, for careless-but-valid media),
the server must keep serving, nothing in the planted outside folder or in the fixture models may change,
and no planted pickle may run (its marker file never appears).
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.abuse.catalogue import (ANY, HOSTILE_PATHS, INF, NAN, NEEDS_OPTIONAL_MODEL, NOT_FINITE, OK, PATH_INPUTS, ROWS,
                                   SCENARIOS, SEQUENCES, SOURCES, TARGETS)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITABLE_KINDS = ("loras", "hicast_adapters", "stylemotif")  # trainers write here: a folder of links per kind


def evil_pickle(marker):
    """A protocol-0 pickle whose loading runs code that creates `marker` (written by hand: no pickle module)."""
    return b"cbuiltins\nexec\n(V" + f"open({marker!r}, 'w').close()".encode() + b"\ntR."


def evil_npy(marker):
    """An .npy holding an object array: np.load(allow_pickle=True) would unpickle evil_pickle(marker)."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + evil_pickle(marker)


class Host:
    """One server for the module, on its own base, models (links to the fixtures) and outside folder."""

    def __init__(self, base, tiny_models):
        from scripts import host
        self.base, self.outside, self.models = base, base + "-outside", base + "-models"
        self.markers = os.path.join(self.outside, "markers")
        for d in (base, self.outside, self.models):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(self.markers)
        self.tiny_models = tiny_models
        os.makedirs(self.models)
        for kind in os.listdir(tiny_models):
            if kind in WRITABLE_KINDS:
                os.makedirs(os.path.join(self.models, kind))
                for name in os.listdir(os.path.join(tiny_models, kind)):
                    os.symlink(os.path.join(tiny_models, kind, name), os.path.join(self.models, kind, name))
            else:
                os.symlink(os.path.join(tiny_models, kind), os.path.join(self.models, kind))
        self.plant()
        self.port = host.start(base, models=self.models, test_nodes=True)
        from scripts.comfy_client import ComfyClient
        self.client = ComfyClient(f"127.0.0.1:{self.port}", timeout=300)
        self.info = self.client.get_json("/object_info")

    def plant(self):
        """Files a hostile prompt would want to read, overwrite or unpickle."""
        rng = np.random.default_rng(0)
        out = self.outside
        np.save(os.path.join(out, "secret.npy"), rng.random((40, 263)).astype(np.float32))
        shutil.copy(os.path.join(self.tiny_models, "stylemotif", "samples", "walk_old.bvh"), os.path.join(out, "secret.bvh"))
        shutil.copy(os.path.join(self.tiny_models, "loras", "tiny_dreamstyle_token_lora.safetensors"),
                    os.path.join(out, "victim.safetensors"))
        from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
        build_synthetic_benchmark(os.path.join(out, "pairs"), scenes=1, styles=["ink"], frames=5, height=16, width=16,
                                  refs=1, heldout=0.0)
        inp = os.path.join(self.base, "input")
        os.makedirs(inp, exist_ok=True)
        for name, seed in (("abuse.png", 1), ("abuse2.png", 2)):
            Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                os.path.join(inp, name))
        shutil.copy(os.path.join(self.tiny_models, "stylemotif", "samples", "walk_old.bvh"), os.path.join(inp, "abuse_walk.bvh"))
        with open(os.path.join(inp, "abuse_evil.npy"), "wb") as f:
            f.write(evil_npy(os.path.join(self.markers, "npy")))
        for kind in ("loras", "hicast_adapters", "stylemotif"):
            with open(os.path.join(self.models, kind, "abuse_evil.pt"), "wb") as f:
                f.write(evil_pickle(os.path.join(self.markers, kind)))
        # resume files where the trainers look for them
        stages = ("vae", "denoiser", "stylization", "alignment")
        resume = [*[f"models/hicast_adapters/{n}{ext}" for n in ("abuse_resume", "abuse_resume_t")
                    for ext in (".safetensors.ckpt", ".hicast_resume")],
                  *[f"models/stylemotif/abuse_resume_ckpt/{stage}.pt" for stage in stages],
                  *[f"models/stylemotif/abuse_resume.partial/{stage}.resume" for stage in stages],
                  "output/dreamstyle_training/abuse_resume/checkpoints/step_0000001/lora.safetensors",
                  "output/dreamstyle_training/abuse_resume/checkpoints/step_0000001/state.safetensors"]
        for path in resume:
            full = os.path.join(self.base, path) if path.startswith("output") else os.path.join(self.models, path[7:])
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(evil_pickle(os.path.join(self.markers, path.replace("/", "_"))))
        with open(os.path.join(self.base, "output/dreamstyle_training/abuse_resume/checkpoints/latest.json"), "w") as f:
            json.dump({"step": 1, "dir": "step_0000001"}, f)
        np.save(os.path.join(inp, "abuse_empty.npy"), np.zeros((0, 263), np.float32))
        self.plant_oversized()
        for name, seed in (("abuse_pairs", 0), ("abuse_pairs2", 1)):
            build_synthetic_benchmark(os.path.join(self.base, "output", name), scenes=1, styles=["ink"], frames=5,
                                      height=16, width=16, refs=1, heldout=0.0, seed=seed)

    def plant_oversized(self):
        """Copies of fixtures whose metadata claims shapes far beyond their tensors (a few GB if built), and
        copies with a NaN in one weight."""
        from safetensors import safe_open
        from safetensors.torch import save_file
        huge = [("hicast_adapters", "tiny_sd15_edge_adapter", "abuse_huge_adapter", "hicast_config", {"hidden": [2048, 2048]}),
                ("stylemotif", "tiny_stylemotif", "abuse_huge_stylemotif", "stylemotif_config", {"ff_dim": 131072}),
                ("loras", "tiny_dreamstyle_token_lora", "abuse_huge_lora", "rank", 65536)]
        for kind, src, dst, key, value in huge:
            with safe_open(os.path.join(self.tiny_models, kind, src + ".safetensors"), "pt") as f:
                meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
            name = min(k for k, t in tensors.items() if t.is_floating_point())
            damaged = {**tensors, name: tensors[name].clone()}
            damaged[name].view(-1)[0] = float("nan")
            unsigned = {k: v for k, v in meta.items() if k != "sha256"}  # a checksum would catch it first
            save_file(damaged, os.path.join(self.models, kind, dst.replace("huge", "nan") + ".safetensors"),
                      metadata=unsigned)
            meta[key] = json.dumps({**json.loads(meta[key]), **value}) if isinstance(value, dict) else str(value)
            save_file(tensors, os.path.join(self.models, kind, dst + ".safetensors"), metadata=meta)

    def snapshot(self):
        """What must never change: the outside folder (contents), the fixture models and the base's top level."""
        state = {}
        for root, _, files in os.walk(self.outside):
            for f in files:
                p = os.path.join(root, f)
                with open(p, "rb") as fh:
                    state[p] = (os.stat(p).st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
        for root, _, files in os.walk(self.tiny_models):
            for f in files:
                st = os.stat(os.path.join(root, f))
                state[os.path.join(root, f)] = (st.st_mtime_ns, st.st_size)
        for top in (self.base, os.path.dirname(self.base)):
            state[top] = sorted(os.listdir(top))
        state["/tmp/abuse_new_set"] = os.path.exists("/tmp/abuse_new_set")
        return state

    def values(self):
        up = os.path.relpath(self.outside, os.path.join(self.base, "output"))
        upm = os.path.relpath(self.outside, os.path.join(self.models, "loras"))
        return {"abs": self.outside, "up": up, "upm": upm}

    def graph(self, target, overrides=None):
        """A prompt running `target` on the tiny fixtures, with the inputs in `overrides` set."""
        prompt = {}

        def link(value):
            if isinstance(value, str) and value.startswith("@"):
                name, _, index = value[1:].partition(":")
                add(name, *SOURCES[name])
                return [name, int(index or 0)]
            return value

        def add(node_id, class_type, inputs):
            if node_id in prompt:
                return
            prompt[node_id] = {"class_type": class_type, "inputs": {}}  # placed first: no cycles
            spec = self.info[class_type]["input"]
            for section in ("required", "optional"):
                for name, entry in spec.get(section, {}).items():
                    if name in inputs:
                        prompt[node_id]["inputs"][name] = link(inputs[name])
                    elif section == "required":
                        prompt[node_id]["inputs"][name] = widget_default(entry)

        class_type, inputs = SCENARIOS[target] if target in SCENARIOS else (target, TARGETS[target])
        inputs = dict(inputs)
        for name, value in (overrides or {}).items():
            inputs[name] = value.format(**self.values()) if isinstance(value, str) and "@" not in value else value
        add("t", class_type, inputs)
        if not self.info[class_type].get("output_node"):
            prompt["sink"] = {"class_type": "PreviewAny", "inputs": {"source": ["t", 0]}}
        return prompt


def widget_default(entry):
    kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
    if isinstance(kind, list):
        return opts.get("default", kind[0])
    if kind == "COMBO":
        return opts.get("default", opts.get("options", [None])[0])
    if "default" in opts:
        return opts["default"]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


@pytest.fixture(scope="module")
def host(tiny_models):
    from scripts import host as host_script
    base = os.path.join(ROOT, "build", "test-host", f"abuse-{os.getpid()}")
    h = Host(base, tiny_models)
    try:
        yield h
    finally:
        host_script.stop(base)
        for d in (base, h.outside, h.models):
            shutil.rmtree(d, ignore_errors=True)


def float_rows(info):
    rows = []
    for node in sorted(TARGETS):
        for section in ("required", "optional"):
            for name, entry in info[node]["input"].get(section, {}).items():
                if entry[0] == "FLOAT":
                    rows += [(node, name, v, NOT_FINITE) for v in (NAN, INF, -INF)]
    return rows


def run_row(host, node, name, value, expected):
    before, markers = host.snapshot(), set(os.listdir(host.markers))
    result = host.client.run(host.graph(node, {name: value}))
    text, problems = result.describe_error(), []
    value = value.format(**host.values()) if isinstance(value, str) else value
    if expected is OK and not result.ok:
        problems.append(f"refused: {text}")
    elif expected not in (OK, ANY):
        named = name in text or (isinstance(value, str) and not value.startswith("@") and value in text)
        if result.ok:
            problems.append("accepted")
        elif not named:
            problems.append(f"the error names neither {name!r} nor its file: {text}")
        elif not re.search(expected, text) or "Traceback" in text:
            problems.append(f"unexpected error: {text}")
    if host.client.get_json("/queue") is None:
        problems.append("the server stopped answering")
    if host.snapshot() != before:
        problems.append("changed something outside ComfyUI's folders")
    ran = set(os.listdir(host.markers)) - markers
    if ran:
        problems.append(f"a planted pickle ran: {sorted(ran)}")
    assert not problems, f"{node}.{name} = {value!r}: " + "; ".join(problems)


def test_the_bait_is_live(host, tmp_path):
    """The planted pickles do run code when unpickled: the marker checks below are not vacuous."""
    marker = tmp_path / "m"
    p = tmp_path / "evil.npy"
    p.write_bytes(evil_npy(str(marker)))
    code = "import numpy, sys\ntry: numpy.load(sys.argv[1], allow_pickle=True)\nexcept Exception: pass"
    subprocess.run([sys.executable, "-c", code, str(p)], check=True)
    assert marker.exists()


def test_every_node_and_every_path_input_is_in_the_catalogue(host):
    """A new node, or a STRING input that may name a file or folder, needs its rows (combos are checked for
    every node by nodes/input_checks.py and get rows where they name model files)."""
    ours = sorted(k for k, v in host.info.items() if v.get("python_module") == "custom_nodes.UniStyle")
    assert sorted(TARGETS) == ours
    for node in ours:
        for section in ("required", "optional"):
            for name, entry in host.info[node]["input"].get(section, {}).items():
                if entry[0] == "STRING" and re.search(r"dir|file|name|prefix|path|folder|lora|output|_id", name):
                    assert (node, name) in PATH_INPUTS, f"{node}.{name} may name a file: add it to PATH_INPUTS"
    for kind in set(PATH_INPUTS.values()):
        assert HOSTILE_PATHS[kind]


def test_every_node_runs_on_the_tiny_fixtures(host):
    """The catalogue's base graphs are valid: a refusal below is caused by the row, not by the graph."""
    failed = {}
    for node in sorted(set(TARGETS) - NEEDS_OPTIONAL_MODEL):
        result = host.client.run(host.graph(node))
        if not result.ok:
            failed[node] = result.describe_error()
    assert not failed, json.dumps(failed, indent=1)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}.{r[1]}={r[2]!r}" for r in ROWS])
def test_row(host, row):
    run_row(host, *row)


@pytest.mark.parametrize("case,steps", SEQUENCES, ids=[c for c, _ in SEQUENCES])
def test_sequence(host, case, steps):
    for target, overrides, expected in steps:
        before, markers = host.snapshot(), set(os.listdir(host.markers))
        on_event = None
        if isinstance(expected, tuple):
            def on_event(m, after=expected[1]):
                if m.get("type") == "progress" and m["data"]["value"] >= after:
                    urllib.request.urlopen(urllib.request.Request(host.client.base + "/interrupt", method="POST"))
        result = host.client.run(host.graph(target, overrides), on_event=on_event)
        if isinstance(expected, tuple):
            assert not result.ok and result.status != "refused", f"{case}: {result.describe_error()}"
            continue
        text = result.describe_error()
        if expected is OK:
            assert result.ok, f"{case}: {text}"
        else:
            assert not result.ok, f"{case}: accepted {overrides}"
            assert re.search(expected, text), f"{case}: unexpected error: {text}"
        assert host.snapshot() == before and set(os.listdir(host.markers)) == markers


def test_nan_and_inf_in_every_float_input(host):
    rows = float_rows(host.info)
    assert len(rows) > 60
    failures = []
    for row in rows:
        try:
            run_row(host, *row)
        except AssertionError as e:
            failures.append(str(e).splitlines()[0][:300])
    assert not failures, "\n".join(failures)
