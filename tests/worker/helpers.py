"""Shared by the worker SDK tests: small HTTP helpers to set up and check tasks, and a background worker run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tasques.worker import Worker
from tasques.worker.client import JsonDict

FAST_SERVER = {
    "TASQUES_HOUSEKEEPING_REAP_EVERY": "100ms",
    "TASQUES_TASKS_BACKOFF_INITIAL": "100ms",
    "TASQUES_TASKS_CLAIM_POLL_INTERVAL": "50ms",
}


async def create(session: aiohttp.ClientSession, url: str, queue: str, kind: str, **fields: Any) -> JsonDict:
    async with session.post(f"{url}/tasques", json={"queue": queue, "kind": kind, **fields}) as r:
        assert r.status == 201, await r.text()
        body: JsonDict = await r.json()
        return body


async def get_task(session: aiohttp.ClientSession, url: str, queue: str, task_id: str) -> JsonDict:
    async with session.get(f"{url}/tasques/{queue}/{task_id}") as r:
        assert r.status == 200, await r.text()
        body: JsonDict = await r.json()
        return body


async def list_tasks(session: aiohttp.ClientSession, url: str, queue: str) -> list[JsonDict]:
    async with session.get(f"{url}/tasques", params={"queue": queue, "limit": "1000"}) as r:
        assert r.status == 200, await r.text()
        tasks: list[JsonDict] = (await r.json())["tasks"]
        return tasks


async def counts(session: aiohttp.ClientSession, url: str, queue: str) -> dict[str, int]:
    async with session.get(f"{url}/queues") as r:
        summaries: list[JsonDict] = await r.json()
    return next((s["counts"] for s in summaries if s["queue"] == queue), {})


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition") -> None:
    """Poll `check` until it holds (bounded): for waiting on real processes, not for asserting timing."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def all_in_state(session: aiohttp.ClientSession, url: str, queue: str, state: str, n: int) -> None:
    async def check() -> bool:
        return (await counts(session, url, queue)).get(state, 0) == n

    await eventually(check, what=f"{n} {state} tasks in {queue}")


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run `worker` in the background; stop it (gracefully) and wait for it on the way out."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
