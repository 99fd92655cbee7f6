"""A small client for ComfyUI's HTTP + websocket API (aiohttp, which ComfyUI itself ships).

    client = ComfyClient("127.0.0.1:8188")
    result = client.run(api_workflow, on_event=print)   # POST /prompt, follow /ws, read /history
    result.ok, result.outputs, result.error, result.files

A prompt that ComfyUI refuses at validation comes back as a result with ok False and ComfyUI's own
`error` / `node_errors`; an execution error comes back with ComfyUI's execution_error message.
Neither raises: callers decide. Transport failures (server gone) do raise.

`ComfyServer` is the asyncio side for programs that drive several servers at once (scripts/batch.py): one
session per server, every idempotent request retried on transport errors, a server that still does not
answer raised as `ServerGone`, and `submit` never queues a prompt twice (it checks /queue and /history for
its prompt id before sending again).
"""
import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass, field

import aiohttp


@dataclass
class PromptResult:
    prompt_id: str | None
    ok: bool
    status: str
    outputs: dict = field(default_factory=dict)
    error: dict | None = None
    node_errors: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self):
        """Every output file as (type, subfolder, filename), in node order."""
        found = []
        for node_id in sorted(self.outputs, key=lambda k: (len(k), k)):
            for items in self.outputs[node_id].values():
                if isinstance(items, list):
                    for it in items:
                        if isinstance(it, dict) and "filename" in it:
                            found.append((it.get("type", "output"), it.get("subfolder", ""), it["filename"]))
        return found

    @classmethod
    def from_history(cls, prompt_id, entry, events=(), seconds=0.0):
        """The result recorded in /history for PROMPT_ID (an execution_error/interrupted message makes it not ok)."""
        status = entry.get("status", {})
        error = None
        for kind, msg in status.get("messages", []):
            if kind in ("execution_error", "execution_interrupted"):
                error = dict(msg, type=kind)
        return cls(prompt_id, status.get("status_str") == "success" and error is None,
                   status.get("status_str", "unknown"), entry.get("outputs", {}), error, events=list(events),
                   seconds=seconds)

    def describe_error(self):
        if self.ok:
            return ""
        parts = []
        e = self.error or {}
        if e.get("message") or e.get("details"):
            parts.append(f"{e.get('type', '')}: {e.get('message', '')} {e.get('details', '')}".strip())
        if e.get("exception_message"):
            parts.append(f"node {e.get('node_id')} ({e.get('node_type')}): {e.get('exception_type')}: "
                         f"{e['exception_message'].strip()}")
        elif e.get("node_id") is not None:
            parts.append(f"{e.get('type')} at node {e['node_id']} ({e.get('node_type')})")
        for node_id, ne in self.node_errors.items():
            for e in ne.get("errors", []):
                parts.append(f"node {node_id} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}")
        return "; ".join(p for p in parts if p) or self.status


class ComfyClient:
    def __init__(self, host="127.0.0.1:8188", timeout=600.0):
        self.host = host.removeprefix("http://").rstrip("/")
        self.timeout = timeout
        self.client_id = str(uuid.uuid4())

    @property
    def base(self):
        return f"http://{self.host}"

    # -- synchronous entry points -------------------------------------------------------------
    def run(self, workflow, on_event=None, timeout=None):
        return asyncio.run(self.run_async(workflow, on_event, timeout))

    def get_json(self, path):
        return asyncio.run(self._get_json(path))

    def upload_image(self, path, subfolder="", overwrite=True):
        return asyncio.run(self._upload(path, subfolder, overwrite))

    # -- async implementation -----------------------------------------------------------------
    async def _get_json(self, path):
        async with aiohttp.ClientSession() as s:
            async with s.get(self.base + path) as r:
                r.raise_for_status()
                return await r.json()

    async def _upload(self, path, subfolder, overwrite):
        data = aiohttp.FormData()
        data.add_field("image", open(path, "rb"), filename=os.path.basename(path))
        data.add_field("subfolder", subfolder)
        data.add_field("overwrite", "true" if overwrite else "false")
        async with aiohttp.ClientSession() as s:
            async with s.post(self.base + "/upload/image", data=data) as r:
                body = await r.text()
                if r.status != 200:
                    raise RuntimeError(f"upload of {path} refused: HTTP {r.status} {body[:300]}")
                return json.loads(body)

    async def run_async(self, workflow, on_event=None, timeout=None):
        """Queue one API-format workflow and follow it to the end."""
        timeout = timeout or self.timeout
        t0 = time.monotonic()
        events = []
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(f"ws://{self.host}/ws?clientId={self.client_id}")
            try:
                async with s.post(self.base + "/prompt", json={"prompt": workflow, "client_id": self.client_id}) as r:
                    body = await r.json(content_type=None)
                if r.status != 200 or "prompt_id" not in body:
                    return PromptResult(None, False, "refused", error=body.get("error"),
                                        node_errors=body.get("node_errors") or {}, seconds=time.monotonic() - t0)
                prompt_id = body["prompt_id"]
                await self._follow(ws, prompt_id, events, on_event, t0 + timeout)
            finally:
                await ws.close()
            entry = await self._history_entry(s, prompt_id, t0 + timeout)
        return PromptResult.from_history(prompt_id, entry, events, time.monotonic() - t0)

    async def _follow(self, ws, prompt_id, events, on_event, deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"prompt {prompt_id} did not finish in time")
            msg = await ws.receive(timeout=left)
            if msg.type == aiohttp.WSMsgType.BINARY:
                continue  # latent previews
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket closed while following prompt {prompt_id}: {msg.type}")
            m = json.loads(msg.data)
            data = m.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if m["type"] in ("progress", "executing", "executed", "execution_start", "execution_cached",
                             "execution_success", "execution_error", "execution_interrupted"):
                events.append(m)
                if on_event:
                    on_event(m)
            if data.get("prompt_id") == prompt_id and (
                    m["type"] in ("execution_success", "execution_error", "execution_interrupted")
                    or (m["type"] == "executing" and data.get("node") is None)):
                return

    async def _history_entry(self, s, prompt_id, deadline):
        while True:
            async with s.get(f"{self.base}/history/{prompt_id}") as r:
                h = await r.json()
            if prompt_id in h and h[prompt_id].get("status", {}).get("completed") is not None:
                return h[prompt_id]
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} has no history entry")
            await asyncio.sleep(0.2)


class ServerGone(Exception):
    """The server did not answer, after every retry (not an OSError: retry loops must let it through)."""


class UploadRefused(RuntimeError):
    """The server answered, and refused the upload (too large for its --max-upload-size, bad name, ...)."""


class LocalFileError(Exception):
    """Reading an input or writing a download failed on this machine (not the server's fault)."""


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _local(what, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise LocalFileError(f"{what}: {e}") from e


@dataclass
class Limits:
    """How long to wait and how often to retry a request before a server counts as gone."""
    connect_timeout: float = 5.0     # seconds to open a connection
    request_timeout: float = 60.0    # seconds without a byte from the server
    retries: int = 3                 # further tries of a failed request, with doubling backoff
    backoff: float = 0.5             # seconds before the first retry
    max_upload_mb: float = 1024.0    # larger inputs are refused before any upload


class ComfyServer:
    """One ComfyUI server, for asyncio programs: `async with ComfyServer("127.0.0.1:8188") as s: ...`."""

    def __init__(self, address, limits=None):
        self.host = address.removeprefix("http://").rstrip("/")
        self.name = self.host
        self.limits = limits or Limits()
        self.gone = None  # the reason, once it stopped answering
        self._session = None

    @property
    def base(self):
        return f"http://{self.host}"

    async def __aenter__(self):
        lim = self.limits
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=None, connect=lim.connect_timeout, sock_connect=lim.connect_timeout, sock_read=lim.request_timeout))
        return self

    async def __aexit__(self, *exc):
        if self._session is not None:
            await self._session.close()

    async def _retrying(self, what, attempt):
        """Run `await attempt()` until it does not raise a transport error; ServerGone after the last retry."""
        last = None
        for i in range(self.limits.retries + 1):
            if self.gone:
                raise ServerGone(self.gone)
            try:
                return await attempt()
            except TRANSPORT_ERRORS as e:
                last = e
            if i < self.limits.retries:
                await asyncio.sleep(self.limits.backoff * 2 ** i)
        self.gone = f"{self.name} stopped answering ({what}: {type(last).__name__}: {last or 'timeout'})"
        raise ServerGone(self.gone)

    async def get_json(self, path):
        async def attempt():
            async with self._session.get(self.base + path) as r:
                r.raise_for_status()
                return await r.json(content_type=None)
        return await self._retrying(f"GET {path}", attempt)

    async def answers(self):
        """True when GET /queue answers now (one quick try; does not mark the server gone)."""
        try:
            async with self._session.get(self.base + "/queue",
                                         timeout=aiohttp.ClientTimeout(total=self.limits.connect_timeout)) as r:
                return r.status == 200
        except TRANSPORT_ERRORS:
            return False

    async def queue_length(self):
        q = await self.get_json("/queue")
        return len(q.get("queue_running", [])) + len(q.get("queue_pending", []))

    async def history(self, prompt_id):
        """The finished prompt's /history entry, or None while it is queued or running (or unknown)."""
        h = await self.get_json(f"/history/{prompt_id}")
        entry = h.get(prompt_id)
        return entry if entry and entry.get("status", {}).get("completed") is not None else None

    async def knows(self, prompt_id):
        """Whether PROMPT_ID is queued, running or in the history of this server."""
        q = await self.get_json("/queue")
        if any(item[1] == prompt_id for item in q.get("queue_running", []) + q.get("queue_pending", [])):
            return True
        return prompt_id in await self.get_json(f"/history/{prompt_id}")

    async def upload(self, path, name, subfolder=""):
        """Upload PATH as input/SUBFOLDER/NAME (overwriting: give content-addressed names); returns the name
        a loader node takes ("SUBFOLDER/NAME")."""
        size = _local(f"cannot read {path}", os.path.getsize, path)
        if size > self.limits.max_upload_mb * 2 ** 20:
            raise UploadRefused(f"{path} is {size / 2 ** 20:.1f} MB, more than the upload limit "
                                f"({self.limits.max_upload_mb:g} MB, --max-upload-mb)")

        async def attempt():
            with _local(f"cannot read {path}", open, path, "rb") as f:
                data = aiohttp.FormData()
                data.add_field("image", f, filename=name)
                data.add_field("subfolder", subfolder)
                data.add_field("overwrite", "true")
                async with self._session.post(self.base + "/upload/image", data=data) as r:
                    body = await r.text()
            if r.status == 413:
                raise UploadRefused(f"{self.name} refused the upload of {path} ({size / 2 ** 20:.1f} MB): larger "
                                    f"than its --max-upload-size")
            if r.status != 200:
                raise UploadRefused(f"{self.name} refused the upload of {path}: HTTP {r.status} {body[:300]}")
            return json.loads(body)
        got = await self._retrying(f"upload {name}", attempt)
        return f"{got['subfolder']}/{got['name']}" if got.get("subfolder") else got["name"]

    async def submit(self, workflow, prompt_id, client_id):
        """POST /prompt under a prompt id chosen by the caller. Returns None when queued, else ComfyUI's refusal
        ({"error": ..., "node_errors": ...}). After a transport error the prompt is looked for on the server
        before it is sent again, so it is never queued twice."""
        sent = []

        async def attempt():
            if sent and await self.knows(prompt_id):
                return None
            sent.append(1)
            try:
                async with self._session.post(self.base + "/prompt", json={
                        "prompt": workflow, "prompt_id": prompt_id, "client_id": client_id}) as r:
                    body = await r.json(content_type=None)
            except TRANSPORT_ERRORS:
                if await self.answers() and await self.knows(prompt_id):
                    return None
                raise
            if r.status == 200 and body.get("prompt_id") == prompt_id:
                return None
            return {"error": body.get("error") or {"type": f"HTTP {r.status}", "message": str(body)[:300]},
                    "node_errors": body.get("node_errors") or {}}
        return await self._retrying("POST /prompt", attempt)

    async def cancel(self, prompt_id):
        """Best effort: drop PROMPT_ID from the queue, or interrupt it if it runs."""
        try:
            async with self._session.post(self.base + "/queue", json={"delete": [prompt_id]}):
                pass
            async with self._session.post(self.base + "/interrupt", json={"prompt_id": prompt_id}):
                pass
        except TRANSPORT_ERRORS:
            pass

    async def download(self, kind, subfolder, filename, dest):
        """GET /view into DEST (written whole or not at all)."""
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        tmp = dest + ".part"

        async def attempt():
            async with self._session.get(self.base + "/view", params=params) as r:
                if r.status != 200:
                    return f"GET /view {filename}: HTTP {r.status}"
                with _local(f"cannot write {tmp}", open, tmp, "wb") as f:
                    async for block in r.content.iter_chunked(1 << 20):
                        _local(f"cannot write {tmp}", f.write, block)
            _local(f"cannot write {dest}", os.replace, tmp, dest)
            return None
        return await self._retrying(f"download {filename}", attempt)
