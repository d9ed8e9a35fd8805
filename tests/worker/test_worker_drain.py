"""The worker SDK and drain, against a real `tasques serve`: a drained worker stops claiming, finishes the tasks
it runs, reports them, and exits (the CLI with 0). The worker's version and host reach `GET /workers`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from tasques import __version__
from tasques.worker import TaskContext, Worker
from tasques.worker.client import JsonDict
from tests.process import ServerProcess
from tests.worker.helpers import create, eventually, get_task
from tests.worker.test_worker import WorkerProcess, started

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def _drain(session: aiohttp.ClientSession, url: str, worker_id: str) -> JsonDict:
    async with session.put(f"{url}/workers/{worker_id}/drain") as r:
        assert r.status == 200, await r.text()
        body: JsonDict = await r.json()
        return body


async def _worker(session: aiohttp.ClientSession, url: str, worker_id: str) -> JsonDict:
    async with session.get(f"{url}/workers") as r:
        assert r.status == 200, await r.text()
        return next(w for w in (await r.json())["workers"] if w["id"] == worker_id)


async def test_a_drained_worker_finishes_its_tasks_and_returns(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "drain-in-process"
    release = asyncio.Event()
    ran: list[str] = []

    async def hold(ctx: TaskContext) -> JsonDict:
        ran.append(ctx.task.id)
        await release.wait()
        return {"finished": ctx.task.id}

    for i in range(2):
        await create(session, server.url, q, "hold", id=f"t{i}")
    # Three slots, two tasks: a claim is long-polling for the third when the drain comes.
    worker = Worker(server.url, "drainee", [q], {"hold": hold}, concurrency=3, claim_amount=3, block_for=20)
    run = asyncio.create_task(worker.run())
    try:

        async def both_running() -> bool:
            return len(ran) == 2

        await eventually(both_running, within=10, what="both tasks to run")
        seen = await _worker(session, server.url, "drainee")
        assert (seen["version"], seen["host"]) == (__version__, socket.gethostname())
        assert seen["claims_held"] == 2
        await _drain(session, server.url, "drainee")
        await create(session, server.url, q, "hold", id="after")
        await asyncio.sleep(0.5)
        assert not run.done()  # still finishing its tasks
        release.set()
        await asyncio.wait_for(run, 20)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 30)
    assert worker.drained
    assert sorted(ran) == ["t0", "t1"]
    for i in range(2):
        task = await get_task(session, server.url, q, f"t{i}")
        assert task["state"] == "done"
        assert task["last_claimed"]["result"]["success"] == {"finished": f"t{i}"}
    after = await get_task(session, server.url, q, "after")
    assert after["state"] == "queued"
    assert (worker.stats.claimed, worker.stats.done, worker.stats.unclaimed) == (2, 2, 0)


async def test_the_worker_cli_exits_0_after_a_drain(
    server: ServerProcess, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    q = "drain-cli"
    await create(session, server.url, q, "quick", id="busy", args={"seconds": 1.5})
    worker = WorkerProcess(
        [
            *("--server", server.url, "--queue", q, "--handlers", "tests.worker.handlers_example"),
            *("--worker-id", "cli-drainee", "--concurrency", "2", "--shutdown-grace", "0.1s"),
        ],
        tmp_path / "worker.log",
    )
    try:

        async def busy_started() -> bool:
            return await started(session, server.url, q, "busy")

        await eventually(busy_started, what="the handler to start")
        await _drain(session, server.url, "cli-drainee")
        # Finished past its shutdown grace: a drain waits for the running tasks.
        assert await worker.wait(within=20) == 0, worker.log()[-4000:]
    finally:
        worker.kill()
    busy = await get_task(session, server.url, q, "busy")
    assert busy["state"] == "done"
