"""Run one API-format workflow once per input file, over one or several ComfyUI servers; resumable.

    python scripts/batch.py WORKFLOW_API.json INPUT_DIR --map 6.image [--map 9.name] [--set 10.seed=7] \
        [--set-file 10.image=style.png] [--glob '*.png'] \
        [--server 127.0.0.1:8188 [--server 10.0.0.2:8188 ...] | --servers-file FILE] [--out batch_output] \
        [--inflight 2] [--max-attempts 3] [--outputs 9,12] \
        [--retries 3] [--connect-timeout 5] [--request-timeout 60] [--prompt-timeout 3600] [--max-upload-mb 1024]

Items: every file under INPUT_DIR, subfolders included (hidden files and the --out folder left out), whose
name (or relative path, when the pattern holds a '/') matches --glob. An item is named by its relative path.

Per item: the file is uploaded to the server that will run it (input/unistyle_batch/<content hash>_<name>),
every --map NODE.INPUT receives that name, --set values apply, every --set-file NODE.INPUT=PATH receives
PATH's name once uploaded to that server (a style image all items share), and the prompt is queued under a
prompt id recorded in the manifest before it is sent. The item is ok only when the prompt finished without an
execution error, every output node of the workflow (or each --outputs node) produced files, and every file
downloaded non-empty and readable (images open, videos and audio decode). Anything else is failed with its
reason: ComfyUI's node_errors, the execution_error's node and message, the missing output, the unreadable
file, the server gone. Outputs: OUT/outputs/<relative path of the input>/<node>_<k><ext>, replaced as a whole
when the item is recomputed, never shared between inputs.

Servers: each gets at most --inflight prompts of this batch at a time; a free slot goes to the server with the
shortest /queue. A server that stops answering (after --retries) is dropped, its items go back to the queue
for the others (an item is moved at most --retries times), and it is probed again now and then.

Resume: OUT/manifest.jsonl (JSON lines, atomic appends). Rerunning the same command skips items done under
the same workflow and input content whose files are still there unchanged, retries failed items until they
have failed --max-attempts times, and re-attaches to prompts still queued or finished on a live server
(found by prompt id in /queue and /history) instead of sending them again. One batch at a time per --out
(OUT/.lock, released by the OS when the process ends, crash included).

Exit status: 0 when every item is ok, 1 when any is not, 2 on bad arguments, 130 when interrupted.
"""
import argparse
import asyncio
import copy
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dreamstyle.dataset_media import fsync_path, sha256_file  # noqa: E402
from scripts.batch_manifest import Manifest, client_id_of, fold  # noqa: E402
from scripts.batch_outputs import item_dir, output_name, stays_inside, unreadable  # noqa: E402
from scripts.comfy_client import (ComfyServer, Limits, LocalFileError, PromptResult, ServerGone,  # noqa: E402
                                  UploadRefused)

UPLOAD_SUBFOLDER = "unistyle_batch"


@dataclass
class Options:
    inflight: int = 2             # prompts of this batch per server at a time
    max_attempts: int = 3         # an item that failed this often is not tried again
    prompt_timeout: float = 3600  # seconds from queueing to the end of the prompt
    poll: float = 0.1             # seconds between /history polls of a prompt
    reprobe: float = 10.0         # seconds between probes of a server that went away
    outputs: tuple = ()           # node ids that must produce files (default: every output node)
    limits: Limits = field(default_factory=Limits)


@dataclass
class Item:
    rel: str
    path: str
    key: str = ""
    sha: str = ""
    moves: int = 0                # servers lost while it was theirs, this run
    attach: dict | None = None    # a prompt of a previous run to follow instead of submitting


class ItemFailed(Exception):
    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind


class PromptLost(Exception):
    """The server answers but knows nothing of the prompt (restarted, or its queue was cleared)."""


# -- arguments -------------------------------------------------------------------------------------------
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


def parse_set_file(text):
    """NODE.INPUT=PATH -> ((node, input), path), PATH an existing file."""
    target, eq, path = text.partition("=")
    if not eq or not path:
        raise SystemExit(f"--set-file {text!r}: expected NODE_ID.INPUT_NAME=PATH, e.g. 10.image=style.png")
    if not os.path.isfile(path):
        raise SystemExit(f"--set-file {text!r}: no file {path!r}")
    return parse_target(target, "--set-file"), path


def read_servers(addresses, servers_file):
    found = list(addresses)
    if servers_file:
        with open(servers_file) as f:
            found += [ln.split("#")[0].strip() for ln in f if ln.split("#")[0].strip()]
    found = list(dict.fromkeys(a.removeprefix("http://").rstrip("/") for a in found))  # order kept, repeats once
    return found or ["127.0.0.1:8188"]


def load_workflow(workflow_path, maps, sets, set_files=()):
    with open(workflow_path) as f:
        wf = json.load(f)
    if isinstance(wf.get("prompt"), dict):
        wf = wf["prompt"]
    if "nodes" in wf and "links" in wf:
        raise SystemExit(f"{workflow_path} is a UI-format workflow; export it with 'Save (API)' or use workflows/api/")
    if not maps:
        raise SystemExit("give at least one --map NODE_ID.INPUT_NAME that receives each input file")
    for (node, _inp), flag in ([(m, "--map") for m in maps] + [(t, "--set") for t, _ in sets]
                               + [(t, "--set-file") for t, _ in set_files]):
        if node not in wf:
            raise SystemExit(f"{flag} names no node {node!r} of the workflow (nodes: {', '.join(sorted(wf))})")
    for target, value in sets:
        wf[target[0]].setdefault("inputs", {})[target[1]] = value
    return wf


def list_inputs(input_dir, glob, out_dir):
    """Every regular file under INPUT_DIR as Item(rel, path), sorted; hidden entries and OUT_DIR left out."""
    root, out = os.path.abspath(input_dir), os.path.abspath(out_dir)
    if not os.path.isdir(root):
        raise SystemExit(f"{input_dir} is not a folder")
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.join(dirpath, d) != out)
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if name.startswith(".") or not os.path.isfile(path):
                continue
            if fnmatch.fnmatch(rel if "/" in glob else name, glob):
                items.append(Item(rel, path))
    items.sort(key=lambda it: it.rel)
    if not items:
        raise SystemExit(f"no input files matching {glob!r} under {input_dir}")
    return items


# -- the batch ---------------------------------------------------------------------------------------------
class Batch:
    def __init__(self, workflow, maps, out_dir, servers, opts, log, progress, set_files, manifest):
        self.workflow, self.maps, self.out_dir, self.opts, self.log = workflow, maps, out_dir, opts, log
        self.manifest = manifest
        self.set_files = set_files  # [((node, input), path, sha256)]
        self.shared_uploads = {}    # server name -> {(node, input): uploaded name}
        self.all_servers = servers
        self.servers = list(servers)  # the usable ones (open() drops a server missing nodes)
        self.counts = {s.name: {"ok": 0, "failed": 0, "moved": 0} for s in servers}
        self.inflight = {s.name: set() for s in servers}
        self.results = {}  # item -> ("ok" | "skipped" | "failed", detail)
        self.expected = None
        self.progress = progress
        self.staging = os.path.join(out_dir, ".staging")

    # progress and records
    def _finish(self, item, status, detail, server=None):
        self.results[item.rel] = (status, detail)
        if server is not None and status in ("ok", "failed"):
            self.counts[server.name][status] += 1
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(" ".join(
                f"{s.name}:{self.counts[s.name]['ok']}ok/{self.counts[s.name]['failed']}failed/"
                f"{len(self.inflight[s.name])}busy" + ("/GONE" if s.gone else "") for s in self.servers))
        if status == "failed":
            self.log(f"{item.rel}: FAILED: {detail}")

    def _fail(self, item, server, kind, reason, prompt_id=None):
        self.manifest.append("failed", item=item.rel, key=item.key, server=server.name if server else None,
                             prompt_id=prompt_id, kind=kind, reason=reason)
        self._finish(item, "failed", f"[{kind}] {reason}", server)

    # one item on one server
    async def _process(self, item, server):
        prompt_id, t0 = None, time.monotonic()
        try:
            if item.attach and item.attach["server"] == server.name:
                prompt_id = item.attach["prompt_id"]
                item.attach = None
            else:
                item.attach = None
                remote = await server.upload(item.path, f"{item.sha[:16]}_{os.path.basename(item.path)}",
                                             UPLOAD_SUBFOLDER)
                wf = copy.deepcopy(self.workflow)
                for (node, inp), shared in (await self._shared_uploads(server)).items():
                    wf[node].setdefault("inputs", {})[inp] = shared
                for node, inp in self.maps:
                    wf[node].setdefault("inputs", {})[inp] = remote
                prompt_id = str(uuid.uuid4())
                self.manifest.append("submitted", item=item.rel, key=item.key, server=server.name,
                                     prompt_id=prompt_id, client_id=self.client_id)
                refusal = await server.submit(wf, prompt_id, self.client_id)
                if refusal is not None:
                    raise ItemFailed("rejected", PromptResult(prompt_id, False, "refused", error=refusal["error"],
                                                              node_errors=refusal["node_errors"]).describe_error())
            entry = await self._wait(server, prompt_id)
            result = PromptResult.from_history(prompt_id, entry)
            if not result.ok:
                raise ItemFailed("execution_error", result.describe_error())
            files = await self._collect(server, item, result)
            self.manifest.append("done", item=item.rel, key=item.key, server=server.name, prompt_id=prompt_id,
                                 files=files, seconds=round(time.monotonic() - t0, 3))
            self._finish(item, "ok", files, server)
        except ItemFailed as e:
            self._fail(item, server, e.kind, str(e), prompt_id)
        except UploadRefused as e:
            self._fail(item, server, "upload", str(e), prompt_id)
        except (LocalFileError, OSError) as e:  # network errors arrive as ServerGone: this is this machine's disk
            self._fail(item, server, "local_io", f"{type(e).__name__}: {e}", prompt_id)
        except (ServerGone, PromptLost) as e:
            reason = str(e) if isinstance(e, PromptLost) else server.gone
            item.moves += 1
            self.counts[server.name]["moved"] += 1
            self.manifest.append("requeued", item=item.rel, key=item.key, server=server.name, prompt_id=prompt_id,
                                 reason=reason)
            if item.moves > self.opts.limits.retries:
                self._fail(item, server, "server_gone", f"{reason} (its servers went away {item.moves} times)")
            else:
                self.log(f"{item.rel}: {reason}; queued again")
                return "requeue"
        except Exception as e:  # a malformed answer must cost one item, not the batch
            self._fail(item, server, "client_error", f"{type(e).__name__}: {e}", prompt_id)
        return None

    async def _shared_uploads(self, server):
        """The --set-file files, uploaded once to SERVER (content-addressed names: repeats are harmless)."""
        if server.name not in self.shared_uploads:
            self.shared_uploads[server.name] = {
                target: await server.upload(path, f"{sha[:16]}_{os.path.basename(path)}", UPLOAD_SUBFOLDER)
                for target, path, sha in self.set_files}
        return self.shared_uploads[server.name]

    async def _wait(self, server, prompt_id):
        """Poll /history until the prompt ends; PromptLost when the server no longer knows it."""
        deadline = time.monotonic() + self.opts.prompt_timeout
        next_check = time.monotonic() + 5.0
        while True:
            entry = await server.history(prompt_id)
            if entry is not None:
                return entry
            now = time.monotonic()
            if now > deadline:
                await server.cancel(prompt_id)
                raise ItemFailed("timeout", f"prompt {prompt_id} did not finish within {self.opts.prompt_timeout:g}s "
                                            f"(--prompt-timeout); cancelled")
            if now > next_check:
                next_check = now + 5.0
                if not await server.knows(prompt_id):
                    raise PromptLost(f"{server.name} no longer knows prompt {prompt_id}")
            await asyncio.sleep(self.opts.poll)

    async def _collect(self, server, item, result):
        """Download every expected output node's files into staging, check them, then move the folder in place."""
        wanted = self.opts.outputs or self.expected
        if not wanted:
            raise ItemFailed("missing_output", "no output node known: the servers' /object_info marks none of the "
                                               "workflow's nodes as an output (name them with --outputs)")
        missing = [n for n in wanted if not _files_of(result.outputs.get(n, {}))]
        if missing:
            raise ItemFailed("missing_output", "; ".join(
                f"node {n} ({self.workflow[n].get('class_type')}) produced no files" for n in missing))
        stage = os.path.join(self.staging, result.prompt_id)
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        files = []
        try:
            for node in wanted:
                for k, (kind, sub, fname) in enumerate(_files_of(result.outputs[node])):
                    name = output_name(node, k, fname)
                    dest = os.path.join(stage, name)
                    err = await server.download(kind, sub, fname, dest)
                    if err is None:
                        err = await asyncio.to_thread(unreadable, dest)
                    if err is not None:
                        raise ItemFailed("unreadable_output", f"node {node} file {fname}: {err}")
                    files.append({"path": name, "node": node, "bytes": os.path.getsize(dest),
                                  "sha256": await asyncio.to_thread(sha256_file, dest)})
            final = item_dir(self.out_dir, item.rel)
            if not stays_inside(self.out_dir, final):
                raise ItemFailed("local_io", f"{final} leads outside {self.out_dir}/outputs (a symlink); refused")
            os.makedirs(os.path.dirname(final), exist_ok=True)
            old = None
            if os.path.lexists(final):
                old = f"{stage}.old"
                os.replace(final, old)
            os.replace(stage, final)
            fsync_path(os.path.dirname(final))
            if old:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return files

    # the scheduler
    async def _pick(self):
        """The live server with a free slot and the shortest /queue (ties: fewer of ours, then listed first)."""
        free = [s for s in self.servers if not s.gone and len(self.inflight[s.name]) < self.opts.inflight]
        if len(free) <= 1:
            return free[0] if free else None
        lengths = await asyncio.gather(*(s.queue_length() for s in free), return_exceptions=True)
        ranked = [(n, len(self.inflight[s.name]), i, s) for i, (s, n) in enumerate(zip(free, lengths))
                  if not isinstance(n, BaseException)]
        return min(ranked)[3] if ranked else None

    async def _reprobe(self):
        for s in self.servers:
            if s.gone and await s.answers():
                self.log(f"{s.name} answers again; using it")
                s.gone = None
                self.shared_uploads.pop(s.name, None)  # it may have restarted with a fresh input folder

    async def run(self, todo):
        pending = deque(todo)
        tasks = {}
        for item in list(pending):  # prompts of an earlier run: follow them where they are
            s = next((s for s in self.servers if item.attach and s.name == item.attach["server"] and not s.gone), None)
            if s is not None:
                pending.remove(item)
                self.inflight[s.name].add(item.rel)
                tasks[asyncio.create_task(self._process(item, s))] = (item, s)
        last_probe = time.monotonic()
        while pending or tasks:
            while pending:
                s = await self._pick()
                if s is None:
                    break
                item = pending.popleft()
                self.inflight[s.name].add(item.rel)
                tasks[asyncio.create_task(self._process(item, s))] = (item, s)
            if time.monotonic() - last_probe > self.opts.reprobe and any(s.gone for s in self.servers):
                last_probe = time.monotonic()
                await self._reprobe()
            if not tasks:
                await asyncio.sleep(0.5)  # nothing running and nothing could be placed: let servers recover
                if all(s.gone for s in self.servers):
                    await self._reprobe()
                    if all(s.gone for s in self.servers):
                        for item in pending:
                            self._fail(item, None, "server_gone", "no server answers: "
                                       + "; ".join(s.gone for s in self.servers))
                        return
                continue
            done, _ = await asyncio.wait(tasks, timeout=self.opts.reprobe, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                item, s = tasks.pop(t)
                self.inflight[s.name].discard(item.rel)
                if t.result() == "requeue":
                    pending.appendleft(item)

    async def execute(self, items, workflow_sha):
        """Skip what is done, follow or send the rest; every item ends in self.results."""
        records = self.manifest.read()
        states = fold(records, {it.rel: it.key for it in items})
        self.manifest.open()
        try:
            for s in self.servers:
                await s.__aenter__()
            todo = []
            for it in items:
                st = states[it.rel]
                if st.status == "done" and await asyncio.to_thread(still_there, self.out_dir, it, st.record):
                    self._finish(it, "skipped", st.record.get("files"))
                elif st.status == "failed" and st.failures >= self.opts.max_attempts:
                    self._finish(it, "failed", f"[{st.record.get('kind')}] {st.record.get('reason')} (failed "
                                               f"{st.failures} times, --max-attempts {self.opts.max_attempts})")
                else:
                    it.attach = st.record if st.status == "in_flight" else None
                    todo.append(it)
            if todo and not await self.open(records):
                for it in todo:
                    self._fail(it, None, "server_gone", "no server answers: "
                               + ", ".join(s.name for s in self.all_servers))
            elif todo:
                self.manifest.append("run", client_id=self.client_id, workflow_sha=workflow_sha,
                                     servers=[s.name for s in self.servers])
                await self.run(todo)
        finally:
            for s in self.all_servers:
                await s.__aexit__(None, None, None)
            self.manifest.close()
            shutil.rmtree(self.staging, ignore_errors=True)

    async def open(self, records):
        """Probe every server, drop those missing nodes others have, find the workflow's output nodes.
        Returns False when no server answers."""
        alive = await asyncio.gather(*(s.answers() for s in self.servers))
        for s, ok in zip(self.servers, alive):
            if not ok:
                s.gone = f"{s.name} does not answer"
                self.log(f"server {s.name} does not answer; going on without it (probed again every "
                         f"{self.opts.reprobe:g}s)")
        live = [s for s in self.servers if not s.gone]
        classes = sorted({n.get("class_type") for n in self.workflow.values()})

        async def node_info(server):
            info = {}
            for cls in classes:
                info.update(await server.get_json(f"/object_info/{cls}"))
            return info
        infos = dict(zip(live, await asyncio.gather(*(node_info(s) for s in live), return_exceptions=True)))
        infos = {s: i for s, i in infos.items() if not isinstance(i, BaseException)}
        union = {}
        for info in infos.values():
            union.update(info)
        for s in live:
            lacks = sorted(set(union) - set(infos.get(s, union)))
            if lacks:  # it would reject every prompt another server can run
                self.log(f"server {s.name} lacks node(s) {', '.join(lacks)} that another server has; not used")
                self.servers.remove(s)
        if not any(not s.gone for s in self.servers):
            return False
        if not self.opts.outputs:
            self.expected = [node for node in sorted(self.workflow, key=lambda k: (len(k), k))
                             if union.get(self.workflow[node].get("class_type"), {}).get("output_node")]
        self.client_id = client_id_of(records) or str(uuid.uuid4())
        return True


def _files_of(node_output):
    """(type, subfolder, filename) of every file in one node's /history outputs."""
    found = []
    for items in node_output.values():
        if isinstance(items, list):
            found += [(it.get("type", "output"), it.get("subfolder", ""), it["filename"])
                      for it in items if isinstance(it, dict) and "filename" in it]
    return found


def still_there(out_dir, item, record):
    """A done record's files are all in the item's folder, with the size and content they were checked with."""
    try:
        folder = item_dir(out_dir, item.rel)
        for f in record.get("files", []):
            path = os.path.join(folder, f["path"])
            if os.path.getsize(path) != f["bytes"] or sha256_file(path) != f["sha256"]:
                return False
        return bool(record.get("files"))
    except (OSError, KeyError, ValueError):
        return False


@dataclass
class Summary:
    results: dict
    counts: dict

    @property
    def failed(self):
        return sorted(k for k, (status, _) in self.results.items() if status == "failed")

    def lines(self):
        n = {s: sum(1 for st, _ in self.results.values() if st == s) for s in ("ok", "skipped", "failed")}
        out = [f"{len(self.results)} items: {n['ok']} ok, {n['skipped']} done earlier, {n['failed']} failed"]
        out += [f"  {name}: {c['ok']} ok, {c['failed']} failed, {c['moved']} moved elsewhere"
                for name, c in self.counts.items()]
        out += [f"  FAILED {k}: {self.results[k][1]}" for k in self.failed]
        return out


def lock_out_dir(out_dir):
    """Hold OUT/.lock for this process (released by the OS when it ends, crash included); a second batch on the
    same --out is refused, since both would send the same items."""
    fd = os.open(os.path.join(out_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.name == "nt":
            import msvcrt
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SystemExit(f"another batch is running on {out_dir} (its .lock is held); wait for it or use another --out")
    return fd


def run_batch(workflow_path, input_dir, maps, sets=(), servers=("127.0.0.1:8188",), out_dir="batch_output",
              glob="*", opts=None, log=print, progress=False, set_files=()):
    """Run the batch; returns a Summary (summary.failed lists the items that are not ok)."""
    opts = opts or Options()
    workflow = load_workflow(workflow_path, maps, sets, set_files)
    unknown = [n for n in opts.outputs if n not in workflow]
    if unknown:
        raise SystemExit(f"--outputs names no node {', '.join(map(repr, unknown))} of the workflow")
    set_files = [(target, path, sha256_file(path)) for target, path in set_files]
    items = list_inputs(input_dir, glob, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    lock = lock_out_dir(out_dir)
    bar = None
    try:
        workflow_sha = hashlib.sha256(json.dumps([workflow, sorted(maps), sorted(opts.outputs),
                                                  sorted([list(t), sha] for t, _path, sha in set_files)],
                                                 sort_keys=True).encode()).hexdigest()
        for it in items:
            it.sha = sha256_file(it.path)
            it.key = hashlib.sha256(f"{workflow_sha}:{it.sha}".encode()).hexdigest()[:32]
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(items), unit="item", dynamic_ncols=True)
            log = bar.write
        batch = Batch(workflow, maps, out_dir, [ComfyServer(a, opts.limits) for a in servers], opts, log, bar,
                      set_files, Manifest(os.path.join(out_dir, "manifest.jsonl")))
        asyncio.run(batch.execute(items, workflow_sha))
        return Summary(batch.results, batch.counts)
    finally:
        if bar is not None:
            bar.close()
        os.close(lock)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow", help="API-format workflow JSON")
    ap.add_argument("input_dir")
    ap.add_argument("--map", action="append", default=[], metavar="NODE.INPUT",
                    help="node input that receives each input file's uploaded name (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                    help="fixed value for a node input (JSON or plain string; repeatable)")
    ap.add_argument("--set-file", action="append", default=[], metavar="NODE.INPUT=PATH",
                    help="a file every prompt shares (a style image): uploaded once to each server, its name set "
                         "as NODE.INPUT (repeatable)")
    ap.add_argument("--glob", default="*", help="which files to use: matched against the name, or against the "
                                                "relative path when it holds a '/' (default: all)")
    ap.add_argument("--server", action="append", default=[], metavar="HOST:PORT",
                    help="a ComfyUI server (repeatable; default 127.0.0.1:8188)")
    ap.add_argument("--servers-file", help="file with one HOST:PORT per line (# comments)")
    ap.add_argument("--out", default="batch_output", help="the only folder written: outputs/ and manifest.jsonl")
    ap.add_argument("--inflight", type=int, default=2, help="prompts of this batch per server at a time")
    ap.add_argument("--max-attempts", type=int, default=3, help="failed items are tried again until this many")
    ap.add_argument("--outputs", default="", help="comma-separated node ids that must produce files "
                                                  "(default: every output node of the workflow)")
    ap.add_argument("--retries", type=int, default=3, help="retries of a failed request before a server counts "
                                                           "as gone; also how often an item may move")
    ap.add_argument("--connect-timeout", type=float, default=5.0)
    ap.add_argument("--request-timeout", type=float, default=60.0, help="seconds without an answer")
    ap.add_argument("--prompt-timeout", type=float, default=3600.0, help="seconds allowed per prompt")
    ap.add_argument("--max-upload-mb", type=float, default=1024.0, help="larger inputs fail without an upload")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    maps = [parse_target(m, "--map") for m in a.map]
    sets = [parse_set(s) for s in a.set]
    set_files = [parse_set_file(s) for s in a.set_file]
    if a.inflight < 1 or a.max_attempts < 1 or a.retries < 0:
        raise SystemExit("--inflight and --max-attempts must be at least 1, --retries at least 0")
    outputs = tuple(n.strip() for n in a.outputs.split(",") if n.strip())
    opts = Options(inflight=a.inflight, max_attempts=a.max_attempts, prompt_timeout=a.prompt_timeout,
                   outputs=outputs, limits=Limits(connect_timeout=a.connect_timeout, request_timeout=a.request_timeout,
                                                  retries=a.retries, max_upload_mb=a.max_upload_mb))
    servers = read_servers(a.server, a.servers_file)
    try:
        summary = run_batch(a.workflow, a.input_dir, maps, sets, servers, a.out, a.glob, opts,
                            progress=not a.no_progress, set_files=set_files)
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume (manifest: {os.path.join(a.out, 'manifest.jsonl')})",
              file=sys.stderr)
        return 130
    for line in summary.lines():
        print(line)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as e:
        if isinstance(e.code, str):  # our own argument errors: the message, and the usage-error status
            print(e.code, file=sys.stderr)
            sys.exit(2)
        raise
