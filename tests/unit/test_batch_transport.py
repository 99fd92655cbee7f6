"""scripts/comfy_client.ComfyServer against stand-in servers: a lost answer to /prompt never queues the prompt
twice, and a server that accepts connections but never answers counts as gone after the configured retries."""
import asyncio
import socket
import time

import pytest
from aiohttp import web

from scripts.comfy_client import ComfyServer, Limits, ServerGone

FAST = Limits(connect_timeout=0.5, request_timeout=0.5, retries=2, backoff=0.05)


class FlakyComfy:
    """Answers /queue and /history like ComfyUI; drops the connection on the first POST /prompt, either after
    queueing the prompt (the answer is lost) or before (the request is lost)."""

    def __init__(self, queue_then_drop):
        self.queue_then_drop = queue_then_drop
        self.posts, self.queued = 0, []

    async def prompt(self, request):
        body = await request.json()
        self.posts += 1
        if self.posts == 1:
            if self.queue_then_drop:
                self.queued.append(body["prompt_id"])
            request.transport.abort()
            return web.Response()
        self.queued.append(body["prompt_id"])
        return web.json_response({"prompt_id": body["prompt_id"], "number": 1, "node_errors": {}})

    async def queue(self, request):
        return web.json_response({"queue_running": [], "queue_pending": [[1, p, {}, {}, []] for p in self.queued]})

    async def history(self, request):
        return web.json_response({})


async def submit_through(fake):
    app = web.Application()
    app.router.add_post("/prompt", fake.prompt)
    app.router.add_get("/queue", fake.queue)
    app.router.add_get("/history/{pid}", fake.history)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with ComfyServer(f"127.0.0.1:{port}", FAST) as s:
            return await s.submit({"1": {}}, "pid-1", "client-1")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("queue_then_drop", [True, False])
def test_a_lost_prompt_answer_never_queues_the_prompt_twice(queue_then_drop):
    fake = FlakyComfy(queue_then_drop)
    assert asyncio.run(submit_through(fake)) is None
    assert fake.queued == ["pid-1"]  # exactly once, whichever half of the exchange was lost
    assert fake.posts == (1 if queue_then_drop else 2)


def test_a_server_that_accepts_but_never_answers_is_gone_after_the_retries():
    with socket.socket() as hung:  # listens (the kernel accepts connections) but never reads: a frozen server
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)

        async def poll():
            async with ComfyServer(f"127.0.0.1:{hung.getsockname()[1]}", FAST) as s:
                t0 = time.monotonic()
                with pytest.raises(ServerGone) as e:
                    await s.history("pid-1")
                return s, time.monotonic() - t0, str(e.value)
        server, seconds, message = asyncio.run(poll())
    assert "stopped answering" in message and server.gone == message
    assert seconds < 3 * (FAST.request_timeout + 0.5)  # three tries, not a hang


class StubServer:
    def __init__(self, name, queued, gone=None):
        self.name, self.queued, self.gone = name, queued, gone

    async def queue_length(self):
        if self.queued is None:  # as ComfyServer does after its retries
            self.gone = f"{self.name} stopped answering"
            raise ServerGone(self.gone)
        return self.queued


def test_a_free_slot_goes_to_the_live_server_with_the_shortest_queue_and_never_past_the_bound():
    from scripts.batch import Batch, Options
    servers = [StubServer("a", 5), StubServer("b", 1), StubServer("c", 0, gone="c stopped answering"),
               StubServer("d", None)]
    batch = Batch({}, [], "unused", servers, Options(inflight=2), print, None, [], None)
    pick = lambda: asyncio.run(batch._pick())  # noqa: E731
    assert pick().name == "b"            # c is gone, d fails to answer /queue (and is gone now), a is busier
    batch.inflight["b"] = {"x", "y"}     # b holds its 2 prompts: the bound
    assert pick().name == "a"
    batch.inflight["a"] = {"z", "w"}
    assert pick() is None                # every live server is full: wait
    servers[0].queued = 0
    batch.inflight = {"a": {"z"}, "b": {"x"}, "c": set(), "d": set()}
    servers[1].queued = 0
    assert pick().name == "a"            # equal queues and equal shares: the first listed



def test_an_input_over_the_upload_limit_or_unreadable_fails_before_any_request(tmp_path):
    from scripts.comfy_client import LocalFileError, UploadRefused
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 3 * 2 ** 20)

    async def upload(path):
        async with ComfyServer("127.0.0.1:9", Limits(max_upload_mb=2, retries=0)) as s:  # nothing listens there
            await s.upload(str(path), "x.mp4")
    with pytest.raises(UploadRefused, match=r"3.0 MB, more than the upload limit \(2 MB, --max-upload-mb\)"):
        asyncio.run(upload(big))
    with pytest.raises(LocalFileError, match="cannot read"):
        asyncio.run(upload(tmp_path / "gone.mp4"))
