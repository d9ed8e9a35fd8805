"""The worker's completion buffer and claim refill, against a real `tasques serve` on SQLite: no mocks.

Batch sizes are read from the client's counter of answered batch requests (`Worker.batch_sizes`), never
inferred from timings. Handlers wait on events the test sets, so which tasks finish together is decided by
the test, not by the clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from tasques.worker import TaskContext, Worker
from tasques.worker.client import JsonDict
from tests.faults.proxy import StallingProxy
from tests.process import ServerProcess
from tests.worker.helpers import all_in_state, counts, create, eventually, get_task, list_tasks, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def done_batches(worker: Worker) -> Counter[tuple[str, int]]:
    return Counter({key: n for key, n in worker.batch_sizes.items() if key[0] == "done"})


async def finished(worker: Worker, n: int) -> None:
    """Until the worker has seen `n` done answers (its batch counter is counted before them)."""

    async def check() -> bool:
        return worker.stats.done == n

    await eventually(check, what=f"{n} done")


async def quick(ctx: TaskContext) -> JsonDict:
    return {"id": ctx.task.id}


class Gate:
    """A handler that holds each task until the test opens its gate (or all gates, from `open_all` on)."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.started: set[str] = set()
        self.all_open = False

    def gate(self, task_id: str) -> asyncio.Event:
        if task_id not in self.gates:
            self.gates[task_id] = asyncio.Event()
            if self.all_open:
                self.gates[task_id].set()
        return self.gates[task_id]

    async def __call__(self, ctx: TaskContext) -> JsonDict:
        self.started.add(ctx.task.id)
        await self.gate(ctx.task.id).wait()
        return {"id": ctx.task.id}

    def open_all(self) -> None:
        self.all_open = True
        for gate in self.gates.values():
            gate.set()


# -- flushing --------------------------------------------------------------------------------------------


async def test_a_full_buffer_is_sent_at_once(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    q = "batch-size"
    hold = Gate()
    await create(session, server.url, q, "hold", id="held")
    for i in range(8):
        await create(session, server.url, q, "quick", id=f"q{i}")
    # A held task keeps the worker busy (so no idle flush) and the age is far longer than the test may run.
    worker = Worker(
        server.url, "sized", [q], {"hold": hold, "quick": quick}, block_for=0.5, batch_size=4, batch_age=600
    )
    async with running(worker):
        await finished(worker, 8)
        assert done_batches(worker) == {("done", 4): 2}
        hold.open_all()
        await finished(worker, 9)
    # The held task was the only one left running: sent as soon as it finished (idle), a batch of one.
    assert done_batches(worker) == {("done", 4): 2, ("done", 1): 1}
    assert (worker.stats.claimed, worker.stats.done) == (9, 9)


async def test_a_buffer_that_does_not_fill_is_sent_after_batch_age(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "batch-age"
    hold = Gate()
    await create(session, server.url, q, "hold", id="held")
    for i in range(5):
        await create(session, server.url, q, "quick", id=f"q{i}")
    worker = Worker(
        server.url, "aged", [q], {"hold": hold, "quick": quick}, block_for=0.5, batch_size=100, batch_age=0.2
    )
    async with running(worker):
        # Neither full nor idle (the held task runs on): only the age can send the five.
        await finished(worker, 5)
        assert hold.started == {"held"}
        assert done_batches(worker) == {("done", 5): 1}
        hold.open_all()
        await finished(worker, 6)
    assert done_batches(worker) == {("done", 5): 1, ("done", 1): 1}


async def test_stop_sends_everything_buffered_before_run_returns(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "batch-stop"
    hold = Gate()
    await create(session, server.url, q, "hold", id="held")
    for i in range(10):
        await create(session, server.url, q, "quick", id=f"q{i}")
    worker = Worker(
        server.url,
        "stopping",
        [q],
        {"hold": hold, "quick": quick},
        concurrency=20,
        claim_amount=20,  # one claim of all eleven, so the ten never are all the running jobs (an idle flush)
        block_for=0.5,
        batch_age=600,
    )
    run = asyncio.create_task(worker.run())

    async def buffered() -> bool:
        return worker._batcher.buffered == 10

    await eventually(buffered, what="ten done calls in the buffer")
    assert (await counts(session, server.url, q)).get("done", 0) == 0
    worker.stop()
    hold.open_all()  # the held handler finishes within the grace period
    await asyncio.wait_for(run, 20)  # far sooner than the 600 s age

    tasks = await list_tasks(session, server.url, q)
    assert {(t["id"], t["state"], t["attempted"]) for t in tasks} == {
        ("held", "done", 1),
        *((f"q{i}", "done", 1) for i in range(10)),
    }
    assert sum(size * n for (_, size), n in done_batches(worker).items()) == 11
    assert worker.stats.done == 11


# -- errors ----------------------------------------------------------------------------------------------


async def test_an_items_own_error_reaches_only_its_job(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    q, worker_id = "batch-mixed", "mixed"
    hold = Gate()

    async def explode(ctx: TaskContext) -> JsonDict:
        await hold.gate(ctx.task.id).wait()
        raise RuntimeError("this one fails")

    for task_id in ("a", "b", "stolen"):
        await create(session, server.url, q, "hold", id=task_id)
    await create(session, server.url, q, "explode", id="boom", retry_times=0)
    worker = Worker(
        server.url, worker_id, [q], {"hold": hold, "explode": explode}, concurrency=4, block_for=0.5, batch_age=600
    )
    async with running(worker):
        await eventually(lambda: _claimed(session, server.url, q, 4), what="all four claimed")
        # "stolen" changes hands meanwhile: handed back and claimed again under the same worker id.
        first = (await get_task(session, server.url, q, "stolen"))["last_claimed"]["claim_id"]
        headers = {"X-TASQUES-WORKER-ID": worker_id, "X-TASQUES-CLAIM-ID": first}
        async with session.delete(f"{server.url}/tasques/claims/{q}/stolen", headers=headers) as r:
            assert r.status == 200, await r.text()
        async with session.post(
            f"{server.url}/tasques/claims", json={"queues": [q]}, headers={"X-TASQUES-WORKER-ID": worker_id}
        ) as r:
            [newer] = await r.json()
        hold.open_all()  # all four finish together: one done batch of three, one failed batch of one

        async def settled() -> bool:
            s = worker.stats
            return (s.done, s.failed, s.claims_lost) == (2, 1, 1)

        await eventually(settled, what="two done, one failed, one claim lost")
    assert worker.batch_sizes == {("done", 3): 1, ("failed", 1): 1}
    assert {t["id"]: t["state"] for t in await list_tasks(session, server.url, q)} == {
        "a": "done",
        "b": "done",
        "boom": "dead",
        "stolen": "claimed",
    }
    assert (await get_task(session, server.url, q, "stolen"))["last_claimed"] == newer["last_claimed"]


async def _claimed(session: aiohttp.ClientSession, url: str, queue: str, n: int) -> bool:
    return (await counts(session, url, queue)).get("claimed", 0) == n


async def test_a_batch_stalled_by_an_outage_is_retried_and_nothing_is_lost(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q, n = "batch-outage", 20
    hold = Gate()
    for i in range(n):
        await create(session, server.url, q, "hold", id=f"t{i}")
    parts = urlsplit(server.url)
    proxy = await StallingProxy(parts.hostname or "127.0.0.1", parts.port or 80).start()
    worker = Worker(
        proxy.url,
        "outage",
        [q],
        {"hold": hold},
        concurrency=n,
        claim_amount=n,
        block_for=0.2,
        request_timeout=1.0,
        backoff_initial=0.05,
        backoff_max=0.2,
        finish_retries=20,
    )
    try:
        async with running(worker):
            await eventually(lambda: _claimed(session, server.url, q, n), what=f"{n} claimed")
            # The done batch is held mid-flight (as by a hung network); it reaches the server only on resume.
            proxy.pause_on(b"/tasques/done")
            hold.open_all()

            async def every_job_timed_out() -> bool:
                return worker.stats.connection_errors >= n

            await eventually(every_job_timed_out, what="the held batch to time out")
            assert (await counts(session, server.url, q)).get("done", 0) == 0
            proxy.resume()
            await all_in_state(session, server.url, q, "done", n)
    finally:
        await proxy.close()
    tasks = await list_tasks(session, server.url, q)
    assert sorted((t["id"], t["state"], t["attempted"]) for t in tasks) == sorted(
        (f"t{i}", "done", 1) for i in range(n)
    )
    assert worker.stats.claims_lost == 0  # a retry finding its first try applied is not a lost claim


@asynccontextmanager
async def without_batch_endpoints(upstream: str) -> AsyncIterator[str]:
    """A real HTTP relay to `upstream` that answers the batch endpoints 404, as a server without them does."""
    hidden = {"/tasques/done", "/tasques/failed", "/tasques/reports", "/tasques/unclaims"}
    client = aiohttp.ClientSession()

    async def relay(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path in hidden:
            return web.json_response({"message": "not found"}, status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with client.request(
            request.method, upstream + request.path_qs, headers=headers, data=await request.read()
        ) as r:
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await client.close()


async def test_a_server_without_batch_endpoints_gets_single_calls(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "batch-legacy"

    async def reporting(ctx: TaskContext) -> JsonDict:
        await ctx.report({"half": True})
        if ctx.task.id == "bad":
            raise ValueError("fails")
        return {"id": ctx.task.id}

    for i in range(6):
        await create(session, server.url, q, "reporting", id=f"t{i}")
    await create(session, server.url, q, "reporting", id="bad", retry_times=0)
    async with without_batch_endpoints(server.url) as url:
        worker = Worker(url, "legacy", [q], {"reporting": reporting}, block_for=0.5)
        async with running(worker):
            await all_in_state(session, server.url, q, "done", 6)
            await all_in_state(session, server.url, q, "dead", 1)
    assert worker.batch_sizes == {}  # not one batch answered: all went as single calls
    assert (worker.stats.done, worker.stats.failed) == (6, 1)
    for task in await list_tasks(session, server.url, q):
        assert task["last_claimed"]["last_report"]["data"] == {"half": True}


# -- claim refill ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refill_wait", "opened", "refill"),
    [
        (600.0, 5, 5),  # waits for refill_at (half of 10) free slots, then claims them in one go
        (0.05, 1, 1),  # or claims what is free once refill_wait has passed
    ],
)
async def test_claims_wait_for_free_slots_to_gather(
    server: ServerProcess, session: aiohttp.ClientSession, refill_wait: float, opened: int, refill: int
) -> None:
    q = f"refill-{opened}"
    hold = Gate()
    claims: Counter[str] = Counter()

    async def counted(ctx: TaskContext) -> JsonDict:
        assert ctx.task.last_claimed is not None
        claims[ctx.task.last_claimed.claimed_at.isoformat()] += 1
        return await hold(ctx)

    for i in range(20):
        await create(session, server.url, q, "hold", id=f"t{i:02}")
    worker = Worker(
        server.url,
        f"refill-{opened}",
        [q],
        {"hold": counted},
        concurrency=10,
        claim_amount=10,
        block_for=0.5,
        refill_wait=refill_wait,
    )

    def started(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(hold.started) == n

        return check

    async with running(worker):
        await eventually(started(10), what="the first claim's tasks to start")
        for i, task_id in enumerate(sorted(hold.started)[:opened]):
            hold.gate(task_id).set()
            await finished(worker, i + 1)
        await eventually(started(10 + refill), what="the refill's tasks to start")
        assert sorted(claims.values()) == sorted([10, refill])
        hold.open_all()
        await all_in_state(session, server.url, q, "done", 20)
    assert worker.stats.done == 20
