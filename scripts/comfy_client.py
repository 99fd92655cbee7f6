"""A small client for ComfyUI's HTTP + websocket API (aiohttp, which ComfyUI itself ships).

    client = ComfyClient("127.0.0.1:8188")
    result = client.run(api_workflow, on_event=print)   # POST /prompt, follow /ws, read /history
    result.ok, result.outputs, result.error, result.files

A prompt that ComfyUI refuses at validation comes back as a result with ok False and ComfyUI's own
`error` / `node_errors`; an execution error comes back with ComfyUI's execution_error message.
Neither raises: callers decide. Transport failures (server gone) do raise.
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

    def describe_error(self):
        if self.ok:
            return ""
        parts = []
        if self.error:
            parts.append(f"{self.error.get('type', '')}: {self.error.get('message', '')} {self.error.get('details', '')}".strip())
            if self.error.get("exception_message"):
                parts.append(f"node {self.error.get('node_id')} ({self.error.get('node_type')}): "
                             f"{self.error.get('exception_type')}: {self.error['exception_message'].strip()}")
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
        status = entry.get("status", {})
        ok = status.get("status_str") == "success"
        error = None
        for kind, msg in status.get("messages", []):
            if kind in ("execution_error", "execution_interrupted"):
                error = dict(msg, type=kind)
        return PromptResult(prompt_id, ok, status.get("status_str", "unknown"), entry.get("outputs", {}), error,
                            events=events, seconds=time.monotonic() - t0)

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
