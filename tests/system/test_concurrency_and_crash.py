"""Real `tasques serve` processes on SQLite: concurrent claimers, and a kill -9 while claims are held."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.process import ServerProcess

pytestmark = pytest.mark.slow

WORKER_HEADER = "X-TASQUES-WORKER-ID"


async def _create_many(session: aiohttp.ClientSession, url: str, queue: str, n: int) -> list[str]:
    async def one(i: int) -> str:
        async with session.post(f"{url}/tasques", json={"queue": queue, "kind": "noop", "id": f"t{i}"}) as r:
            assert r.status == 201, await r.text()
            body: dict[str, Any] = await r.json()
            return str(body["id"])

    ids: list[str] = []
    for start in range(0, n, 100):
        ids += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))
    return ids


async def _work(
    session: aiohttp.ClientSession, url: str, worker: str, queue: str, claimed: list[str], stop_when_idle: bool
) -> None:
    headers = {WORKER_HEADER: worker}
    while True:
        async with session.post(
            f"{url}/tasques/claims", json={"queues": [queue], "amount": 10, "block_for": "200ms"}, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
            tasks: list[dict[str, Any]] = await r.json()
        if not tasks and stop_when_idle:
            return
        for t in tasks:
            assert t["state"] == "claimed"
            assert t["last_claimed"]["worker_id"] == worker
            claimed.append(t["id"])
            async with session.put(
                f"{url}/tasques/done/{queue}/{t['id']}", json={"data": {"by": worker}}, headers=headers
            ) as r:
                assert r.status == 200, await r.text()


async def _states(session: aiohttp.ClientSession, url: str, queue: str) -> dict[str, int]:
    async with session.get(f"{url}/queues") as r:
        summaries: list[dict[str, Any]] = await r.json()
    return next(s["counts"] for s in summaries if s["queue"] == queue)


async def test_eight_concurrent_claimers_claim_each_task_exactly_once(tmp_path: Path) -> None:
    n = 2000
    with ServerProcess({"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}, tmp_path / "server.log") as server:
        async with aiohttp.ClientSession() as session:
            ids = await _create_many(session, server.url, "work", n)
            claimed: list[str] = []
            await asyncio.gather(
                *(_work(session, server.url, f"w{i}", "work", claimed, stop_when_idle=True) for i in range(8))
            )
            counts = await _states(session, server.url, "work")
    dupes = {i: c for i, c in Counter(claimed).items() if c > 1}
    assert not dupes, f"claimed more than once: {list(dupes)[:10]}"
    assert sorted(claimed) == sorted(ids)
    assert counts == {"queued": 0, "claimed": 0, "failed": 0, "done": n, "dead": 0}


async def test_kill_9_with_claims_held_loses_nothing(tmp_path: Path) -> None:
    settings = {
        "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db"),
        "TASQUES_HOUSEKEEPING_REAP_EVERY": "100ms",
        "TASQUES_LEADER_RENEW_EVERY": "100ms",
        "TASQUES_LEADER_LEASE": "500ms",
        "TASQUES_TASKS_BACKOFF_INITIAL": "100ms",
    }
    log = tmp_path / "server.log"
    server = ServerProcess(settings, log).start()
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(50):
                body = {"queue": "crash", "kind": "noop", "id": f"c{i}", "processing_timeout": "1s"}
                async with session.post(f"{server.url}/tasques", json=body) as r:
                    assert r.status == 201
            headers = {WORKER_HEADER: "doomed"}
            async with session.post(
                f"{server.url}/tasques/claims", json={"queues": ["crash"], "amount": 20}, headers=headers
            ) as r:
                held = {t["id"] for t in await r.json()}
            assert len(held) == 20
    finally:
        server.kill()  # SIGKILL while the 20 claims are held

    restarted = ServerProcess(settings, log, port=server.port).start()
    try:
        async with aiohttp.ClientSession() as session:
            done: list[str] = []
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                await _work(session, restarted.url, "survivor", "crash", done, stop_when_idle=True)
                if (await _states(session, restarted.url, "crash"))["done"] == 50:
                    break
            counts = await _states(session, restarted.url, "crash")
            attempts = {}
            for task_id in held:
                async with session.get(f"{restarted.url}/tasques/crash/{task_id}") as r:
                    task = await r.json()
                    attempts[task_id] = (task["state"], task["attempted"])
    finally:
        restarted.stop()
    assert counts == {"queued": 0, "claimed": 0, "failed": 0, "done": 50, "dead": 0}
    # The held tasks timed out after the crash, were retried, and finished on their second attempt.
    assert set(attempts.values()) == {("done", 2)}
    assert sorted(done) == sorted({f"c{i}" for i in range(50)})
