"""Queue an API-format workflow once per input file on a running ComfyUI, and keep a manifest.

    python scripts/batch.py WORKFLOW_API.json INPUT_DIR --map 6.image [--map 9.image] \
        [--set 10.seed=7] [--glob '*.png'] [--server 127.0.0.1:8188] [--out batch_output]

For each file in INPUT_DIR (sorted, filtered by --glob) the file is uploaded (POST /upload/image,
which stores any file in ComfyUI's input folder), every --map NODE.INPUT receives its name, --set
values are applied, and one prompt is queued and followed over the websocket. The outputs are
downloaded (GET /view) into OUT/<input stem>/ and every result, success or error, is recorded in
OUT/manifest.json (rewritten atomically after each item). On a re-run, items whose manifest entry
succeeded with the same workflow and input content, and whose files are still there, are skipped.
A prompt that ComfyUI refuses or that fails is recorded with ComfyUI's own node error; the batch
goes on. Exit code: 0 when every item succeeded, 1 otherwise.
"""
import argparse
import copy
import fnmatch
import hashlib
import json
import os
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dreamstyle.dataset_media import sha256_file  # noqa: E402
from scripts.comfy_client import ComfyClient  # noqa: E402

MANIFEST_VERSION = 1


def parse_target(text, what):
    node, _, inp = text.partition(".")
    if not node or not inp:
        raise SystemExit(f"{what} {text!r}: expected NODE_ID.INPUT_NAME, e.g. 6.image")
    return node, inp


def parse_set(text):
    target, eq, raw = text.partition("=")
    if not eq:
        raise SystemExit(f"--set {text!r}: expected NODE_ID.INPUT_NAME=VALUE, e.g. 10.seed=7")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parse_target(target, "--set"), value


def apply_inputs(workflow, targets, value):
    for node, inp in targets:
        workflow[node].setdefault("inputs", {})[inp] = value


def write_json_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_manifest(path):
    if not os.path.exists(path):
        return {"version": MANIFEST_VERSION, "items": {}}
    with open(path) as f:
        data = json.load(f)
    if data.get("version") != MANIFEST_VERSION:
        raise SystemExit(f"{path}: manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
    return data


def already_done(entry, key, out_dir):
    return (entry is not None and entry.get("ok") and entry.get("key") == key
            and all(os.path.exists(os.path.join(out_dir, f)) for f in entry.get("files", [])))


def download(client, kind, subfolder, filename, dest):
    query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
    tmp = dest + ".part"
    with urllib.request.urlopen(f"{client.base}/view?{query}", timeout=120) as r, open(tmp, "wb") as f:
        while block := r.read(1 << 20):
            f.write(block)
    os.replace(tmp, dest)


def run_batch(workflow_path, input_dir, maps, sets=(), glob="*", server="127.0.0.1:8188", out_dir="batch_output",
              log=print, timeout=3600.0):
    with open(workflow_path) as f:
        base_workflow = json.load(f)
    if "prompt" in base_workflow and isinstance(base_workflow["prompt"], dict):
        base_workflow = base_workflow["prompt"]
    if "nodes" in base_workflow and "links" in base_workflow:
        raise SystemExit(f"{workflow_path} is a UI-format workflow; export it with 'Save (API)' or use workflows/api/")
    if not maps:
        raise SystemExit("give at least one --map NODE_ID.INPUT_NAME that receives each input file")
    for (node, _inp), flag in [(m, "--map") for m in maps] + [(t, "--set") for t, _ in sets]:
        if node not in base_workflow:
            raise SystemExit(f"{flag} names no node {node!r} of the workflow (nodes: {', '.join(sorted(base_workflow))})")
    files = sorted(f for f in os.listdir(input_dir)
                   if os.path.isfile(os.path.join(input_dir, f)) and fnmatch.fnmatch(f, glob))
    if not files:
        raise SystemExit(f"no input files matching {glob!r} in {input_dir}")
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, "manifest.json")
    manifest = load_manifest(manifest_path)
    workflow_hash = hashlib.sha256(json.dumps([base_workflow, sorted(map(str, maps)), [list(map(str, s)) for s in sets]],
                                              sort_keys=True).encode()).hexdigest()
    client = ComfyClient(server, timeout=timeout)
    failures = 0
    for i, name in enumerate(files, 1):
        path = os.path.join(input_dir, name)
        key = hashlib.sha256((workflow_hash + sha256_file(path)).encode()).hexdigest()[:32]
        if already_done(manifest["items"].get(name), key, out_dir):
            log(f"[{i}/{len(files)}] {name}: done earlier, skipped")
            continue
        t0 = time.time()
        entry = {"key": key, "input": name, "ok": False, "files": [], "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            uploaded = client.upload_image(path)
            workflow = copy.deepcopy(base_workflow)
            remote_name = uploaded["name"] if not uploaded.get("subfolder") else f"{uploaded['subfolder']}/{uploaded['name']}"
            apply_inputs(workflow, maps, remote_name)
            for target, value in sets:
                apply_inputs(workflow, [target], value)

            def progress(event, _name=name):
                if event["type"] == "progress":
                    d = event["data"]
                    log(f"    {_name}: node {d.get('node')} {d['value']}/{d['max']}")

            result = client.run(workflow, on_event=progress)
            entry["prompt_id"] = result.prompt_id
            entry["status"] = result.status
            if result.ok:
                item_dir = os.path.join(out_dir, os.path.splitext(name)[0])
                os.makedirs(item_dir, exist_ok=True)
                for kind, sub, fname in result.files:
                    rel = os.path.join(os.path.splitext(name)[0], fname)
                    download(client, kind, sub, fname, os.path.join(out_dir, rel))
                    entry["files"].append(rel)
                entry["ok"] = True
            else:
                entry["error"] = result.describe_error()
                entry["comfy_error"] = result.error
                entry["node_errors"] = result.node_errors
        except (OSError, RuntimeError, TimeoutError) as e:
            entry["status"] = "client_error"
            entry["error"] = f"{type(e).__name__}: {e}"
        entry["seconds"] = round(time.time() - t0, 2)
        manifest["items"][name] = entry
        write_json_atomic(manifest_path, manifest)
        if entry["ok"]:
            log(f"[{i}/{len(files)}] {name}: ok, {len(entry['files'])} file(s) in {entry['seconds']}s")
        else:
            failures += 1
            log(f"[{i}/{len(files)}] {name}: FAILED: {entry['error']}")
    log(f"manifest: {manifest_path}")
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow", help="API-format workflow JSON")
    ap.add_argument("input_dir")
    ap.add_argument("--map", action="append", default=[], metavar="NODE.INPUT",
                    help="node input that receives each input file's name (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                    help="fixed value for a node input (JSON or plain string; repeatable)")
    ap.add_argument("--glob", default="*", help="which files of INPUT_DIR to use (default: all)")
    ap.add_argument("--server", default="127.0.0.1:8188")
    ap.add_argument("--out", default="batch_output")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per prompt")
    a = ap.parse_args(argv)
    maps = [parse_target(m, "--map") for m in a.map]
    sets = [parse_set(s) for s in a.set]
    return 1 if run_batch(a.workflow, a.input_dir, maps, sets, a.glob, a.server, a.out, timeout=a.timeout) else 0


if __name__ == "__main__":
    sys.exit(main())
