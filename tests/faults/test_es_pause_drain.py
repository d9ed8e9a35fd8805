"""Acceptance: a dedicated Elasticsearch node is stopped (SIGSTOP) for 20 s while SDK workers drain 1,000
tasks through two `tasques serve` processes, then continued (SIGCONT).

During the pause every probe answers 503 "store unavailable: ..." with Retry-After within the store
deadline. Afterwards every task is done, each ran exactly once (no claim can time out: the processing
timeout is 10 minutes), and the drain ends long before any processing timeout could have freed a
stranded claim. The figures are printed (`-s`) for the record.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tasques.worker import Producer, ServerUnavailable, Task, TaskContext, Worker
from tasques.worker.client import JsonDict
from tests.faults.conftest import DedicatedNode
from tests.process import ServerProcess, es_server_settings

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow, pytest.mark.timeout(150)]

TASKS = 1_000
PAUSE = 20.0
DEADLINE = 3.0  # store.elasticsearch.request_timeout of both servers
MARGIN = 1.5
QUEUE = "drain"


@pytest.fixture
def servers(dedicated_es: DedicatedNode, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    settings = {
        **es_server_settings(dedicated_es.url, "faults"),
        "TASQUES_STORE_ELASTICSEARCH_REQUEST_TIMEOUT": f"{DEADLINE}s",
        "TASQUES_TASKS_PROCESSING_TIMEOUT": "10m",
        "TASQUES_TASKS_CLAIM_POLL_INTERVAL": "100ms",
        "TASQUES_DISPATCH_ENABLED": "false",
    }
    procs = [ServerProcess(settings, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        dedicated_es.resume()  # never leave the node stopped, whatever failed
        for proc in procs:
            proc.stop()


async def _probe(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str | None, float]:
    started = time.monotonic()
    async with session.get(f"{url}/tasques/{QUEUE}/t0") as resp:
        body = await resp.json()
        return resp.status, str(body.get("message", "")), resp.headers.get("Retry-After"), time.monotonic() - started


async def _done_count(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/queues") as resp:
        if resp.status != 200:
            return -1
        for summary in await resp.json():
            if summary["queue"] == QUEUE:
                return int(summary["counts"]["done"])
    return 0


async def _create(url: str, tasks: list[JsonDict]) -> None:
    """Bulk-create as a producer does: a 503 is retried (the node was started for this test and is still cold,
    and on a loaded machine a first bulk has outlasted the 3 s deadline); ids make the retry idempotent."""
    deadline = time.monotonic() + 60
    async with Producer(url) as producer:
        while True:
            try:
                created = await producer.create_many(tasks)
            except ServerUnavailable as e:
                if "HTTP 503" not in str(e):
                    raise  # only the store's deadline is waited out
                assert time.monotonic() < deadline, "the bulk create kept answering 503 for 60 s"
                await asyncio.sleep(1)
                continue
            # 409: written by an attempt that timed out
            statuses = {201 if isinstance(t, Task) else t.status for t in created}
            assert statuses <= {201, 409}, statuses
            return


async def test_sigstop_for_20s_while_draining(dedicated_es: DedicatedNode, servers: list[ServerProcess]) -> None:
    runs: collections.Counter[str] = collections.Counter()

    async def work(ctx: TaskContext) -> JsonDict:
        runs[ctx.task.id] += 1
        await asyncio.sleep(0.05)
        return {"ok": True}

    await _create(servers[0].url, [{"queue": QUEUE, "kind": "work", "id": f"t{i}"} for i in range(TASKS)])
    async with aiohttp.ClientSession() as session:
        workers = [
            Worker(
                servers[i % 2].url,
                f"sdk-{i}",
                [QUEUE],
                {"work": work},
                concurrency=5,
                claim_amount=5,
                block_for=1.0,
                backoff_initial=0.2,
                backoff_max=1.0,
                finish_retries=60,
                request_timeout=10.0,
            )
            for i in range(4)
        ]
        started = time.monotonic()
        running = [asyncio.create_task(w.run()) for w in workers]
        try:
            while sum(runs.values()) < TASKS // 4:  # noqa: ASYNC110  (the handler's counter, polled)
                await asyncio.sleep(0.05)
            done_before = await _done_count(session, servers[1].url)

            dedicated_es.pause()
            paused_at = time.monotonic()
            probes: list[tuple[int, str, str | None, float]] = []
            while time.monotonic() - paused_at < PAUSE - DEADLINE - MARGIN:
                for server in servers:
                    probes.append(await _probe(session, server.url))
            await asyncio.sleep(max(0.0, PAUSE - (time.monotonic() - paused_at)))
            dedicated_es.resume()
            resumed_at = time.monotonic()

            while (done := await _done_count(session, servers[0].url)) < TASKS:
                assert time.monotonic() - resumed_at < 60, f"only {done} of {TASKS} done 60s after the pause"
                await asyncio.sleep(0.2)
            drained_at = time.monotonic()
        finally:
            dedicated_es.resume()
            for w in workers:
                w.stop(immediate=True)
            await asyncio.gather(*running, return_exceptions=True)

        async with session.get(f"{servers[0].url}/tasques", params={"queue": QUEUE, "limit": "1000"}) as resp:
            listed: list[dict[str, Any]] = (await resp.json())["tasks"]

    latencies = [p[3] for p in probes]
    handed_back = sum(s.log_tail(10**7).count("handed back: its claim") for s in servers)
    print(
        f"\nfault drain: {TASKS} tasks, {done_before} done before the pause, paused {resumed_at - paused_at:.1f}s; "
        f"{len(probes)} probes during the pause: statuses {collections.Counter(p[0] for p in probes)}, "
        f"latency max {max(latencies):.2f}s mean {sum(latencies) / len(latencies):.2f}s (deadline {DEADLINE}s); "
        f"drain {drained_at - started:.1f}s in all, {drained_at - resumed_at:.1f}s after the pause; "
        f"re-runs {sum(n - 1 for n in runs.values())}; tasks handed back by the resolver {handed_back}; "
        f"worker connection errors {sum(w.stats.connection_errors for w in workers)}"
    )
    assert 0 < done_before < TASKS, "the pause must fall mid-drain"
    assert probes
    assert all(p[0] == 503 for p in probes), collections.Counter(p[0] for p in probes)
    assert all(p[1].startswith("store unavailable: ") and p[2] for p in probes)
    assert max(latencies) < DEADLINE + MARGIN
    assert len(listed) == TASKS
    assert all(t["state"] == "done" for t in listed)
    # No claim timed out (10 minutes), so no task may have run twice or been attempted twice.
    assert set(runs) == {t["id"] for t in listed}
    assert all(n == 1 for n in runs.values()), {k: n for k, n in runs.items() if n > 1}
    assert all(t["attempted"] == 1 for t in listed), [t["id"] for t in listed if t["attempted"] != 1]
