"""Acceptance: a three-node Elasticsearch cluster loses, freezes or restarts nodes while two `tasques
serve` processes and SDK workers drain tasks a producer keeps enqueuing.

Each case (own queue) runs work for a while, applies its fault, brings the node(s) back, waits for green,
runs a while more, stops the producer and drains. Required in every case: every probe answer is 2xx or a
503 with a message, within the store deadline plus a margin, and never a connection error; every enqueued
task is done; no task ran under two claims at once; the drain ends far below the processing timeout (10
minutes: no claim may wait for it); the leader lock never stands expired longer than lease + renew.
The figures go to stdout (`-s`) and to `figures.json` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tasques.worker import Worker
from tests.cluster.load import Ledger, LockWatch, Prober, Producer
from tests.cluster.nodes import Cluster, Node
from tests.process import ServerProcess, delete_es_prefix, es_server_settings

pytestmark = [
    pytest.mark.elasticsearch,
    pytest.mark.slow,
    pytest.mark.timeout(420),
]  # the first case also starts the cluster

PREFIX = "cluster"
DEADLINE = 3.0  # store.elasticsearch.request_timeout of both servers
MARGIN = 1.5  # scheduling slack on a busy 2-core machine
LEASE, RENEW = 5.0, 1.0  # the leader defaults
WINDOW = 4.0  # seconds of throughput measured before the fault and after recovery
PAUSE = 20.0
DRAIN_WITHIN = 60.0  # after the producer stops: far below the 10-minute processing timeout
# How long the lock may stand expired, per case. While a node holding a copy of the lock's shard is frozen, a
# write to the lock can wait on it (the cluster keeps a hung node for ~30 s of failed follower checks), so no
# server can renew or take the lock: there the bound is lease + renew once the node answers again (measured:
# 2.98 s and 6.95 s in two runs). A dead node is dropped at once, and the plain bound holds.
LOCK_ALLOWANCE = {"sigstop_tasks_primary_20s": PAUSE + LEASE + RENEW}


@pytest.fixture(scope="module")
def servers(es_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    settings = {
        **es_server_settings(es_cluster.urls[0], PREFIX),
        "TASQUES_STORE_ELASTICSEARCH_ADDRESSES": f"[{','.join(es_cluster.urls)}]",
        "TASQUES_STORE_ELASTICSEARCH_REPLICAS": "1",
        "TASQUES_STORE_ELASTICSEARCH_REQUEST_TIMEOUT": f"{DEADLINE}s",
        "TASQUES_TASKS_PROCESSING_TIMEOUT": "10m",
        "TASQUES_TASKS_CLAIM_POLL_INTERVAL": "100ms",
        "TASQUES_DISPATCH_ENABLED": "false",
    }
    logs = tmp_path_factory.mktemp("servers")
    procs: list[ServerProcess] = []
    try:
        for i in range(2):
            procs.append(_start(settings, logs / f"server{i}.log"))
        es_cluster.wait_green()  # the indices exist with their replicas
        yield procs
    finally:
        for node in es_cluster.nodes:
            es_cluster.resume(node)
        for proc in procs:
            proc.stop()
        for node in es_cluster.nodes:
            if not node.alive:
                es_cluster.start(node, wait=False)
        es_cluster.wait_green()
        asyncio.run(delete_es_prefix(es_cluster.urls[0], PREFIX))


def _start(settings: dict[str, str], log: Path) -> ServerProcess:
    # A server whose store does not answer at start exits (an orchestrator restarts it); on a loaded machine
    # creating the indices of a fresh three-node cluster can outlast the 3 s deadline, so start it again.
    for _ in range(4):
        try:
            return ServerProcess(settings, log).start()
        except RuntimeError as e:
            if "StoreUnavailable" not in str(e):
                raise
    return ServerProcess(settings, log).start()


async def _kill_and_restart(cluster: Cluster, pick: Callable[[], Node]) -> tuple[float, str]:
    node = pick()
    cluster.kill(node)
    killed = time.monotonic()
    await asyncio.sleep(3)  # work flows on the two survivors
    await asyncio.to_thread(cluster.start, node)
    return killed, node.name


async def _freeze(cluster: Cluster) -> tuple[float, str]:
    node = cluster.primary_of(f"{PREFIX}-tasks")
    # The worst case: the frozen node also holds a copy of the lock's shard, so the lock's writes can wait on
    # it too (see LOCK_ALLOWANCE).
    await asyncio.to_thread(cluster.place_copy_on, f"{PREFIX}-locks", node)
    cluster.pause(node)
    try:
        await asyncio.sleep(PAUSE)
    finally:
        cluster.resume(node)
    resumed = time.monotonic()
    await asyncio.to_thread(cluster.wait_green)
    return resumed, node.name


async def _rolling_restart(cluster: Cluster) -> tuple[float, str]:
    for node in cluster.nodes:
        await asyncio.to_thread(cluster.stop, node)
        await asyncio.to_thread(cluster.start, node)
    return time.monotonic(), "n0,n1,n2"


FAULTS: dict[str, Callable[[Cluster], Awaitable[tuple[float, str]]]] = {
    "kill_tasks_primary": lambda c: _kill_and_restart(c, lambda: c.primary_of(f"{PREFIX}-tasks")),
    "kill_master": lambda c: _kill_and_restart(c, c.master),
    "kill_locks_primary": lambda c: _kill_and_restart(c, lambda: c.primary_of(f"{PREFIX}-locks")),
    "sigstop_tasks_primary_20s": _freeze,
    "rolling_restart": _rolling_restart,
}


async def _done(session: aiohttp.ClientSession, url: str, queue: str) -> dict[str, int]:
    try:
        async with session.get(f"{url}/queues") as resp:
            if resp.status != 200:
                return {}
            summaries: list[dict[str, Any]] = await resp.json()
    except aiohttp.ClientError:
        return {}
    return next((s["counts"] for s in summaries if s["queue"] == queue), {})


@pytest.mark.parametrize("case", list(FAULTS))
async def test_node_failure_while_draining(
    case: str, es_cluster: Cluster, servers: list[ServerProcess], tmp_path: Path
) -> None:
    queue = f"q-{case.replace('_', '-')}"
    urls = [s.url for s in servers]
    ledger = Ledger()
    producer = Producer(urls, queue, ledger)
    prober = Prober(urls, f"/tasques/{queue}/probe", limit=DEADLINE + MARGIN)
    lock = LockWatch(es_cluster.urls, f"{PREFIX}-locks")
    workers = [
        Worker(
            urls[i % 2],
            f"{case}-{i}",
            [queue],
            {"work": ledger.work},
            concurrency=10,
            claim_amount=10,
            block_for=1.0,
            backoff_initial=0.2,
            backoff_max=1.0,
            finish_retries=100,
            request_timeout=15.0,
        )
        for i in range(4)
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(f"{urls[0]}/tasques", json={"queue": f"{queue}-probe", "kind": "p", "id": "probe"}):
            pass
        prober.path = f"/tasques/{queue}-probe/probe"
        background = [
            asyncio.create_task(producer.run(session)),
            asyncio.create_task(prober.run(session)),
            asyncio.create_task(lock.run()),
            *(asyncio.create_task(w.run()) for w in workers),
        ]
        try:
            while len(ledger.runs) < 100:  # noqa: ASYNC110  (the handler's ledger, polled)
                await asyncio.sleep(0.05)
            window_start = time.monotonic()
            await asyncio.sleep(WINDOW)
            before = ledger.rate(window_start, time.monotonic())
            fault_at, fault_wall = time.monotonic(), time.time()
            ended, nodes = await FAULTS[case](es_cluster)
            recovered = time.monotonic()
            await asyncio.sleep(WINDOW)
            after = ledger.rate(recovered, time.monotonic())
            producer.stop()
            await background[0]
            stopped = time.monotonic()
            while (await _done(session, urls[1], queue)).get("done", 0) < len(producer.enqueued):
                assert time.monotonic() - stopped < DRAIN_WITHIN, (
                    f"{await _done(session, urls[1], queue)} of {len(producer.enqueued)} after {DRAIN_WITHIN}s"
                )
                await asyncio.sleep(0.2)
            drained = time.monotonic()
            counts = await _done(session, urls[0], queue)
        finally:
            producer.stop()
            prober.stop()
            lock.stop()
            for w in workers:
                w.stop(immediate=True)
            await asyncio.gather(*background, return_exceptions=True)

    answers = prober.answers
    degraded = [a for a in answers if a.status != 200 or a.latency > 1.0]
    degraded_s = (degraded[-1].at + degraded[-1].latency - degraded[0].at) if degraded else 0.0
    handover = lock.handover(fault_wall)
    longest_expired = lock.longest_expired(LEASE)
    figures = {
        "case": case,
        "nodes": nodes,
        "tasks": len(producer.enqueued),
        "fault_s": round(ended - fault_at, 1),
        "degraded_s": round(degraded_s, 1),
        "probes": len(answers),
        "probe_statuses": dict(Counter(a.status for a in answers)),
        "probe_latency_max_s": round(max(a.latency for a in answers), 2),
        "bulk_refusals": dict(Counter(a.status for a in producer.refused)),
        "run_twice": ledger.run_twice(),
        "throughput_before": round(before, 1),
        "throughput_after": round(after, 1),
        "drain_after_stop_s": round(drained - stopped, 1),
        "lock_longest_expired_s": round(longest_expired, 2),
        "leader_handover_s": None if handover is None else round(handover, 2),
        "handed_back": sum(s.log_tail(10**8).count("handed back: its claim") for s in servers),
        "worker_connection_errors": sum(w.stats.connection_errors for w in workers),
    }
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\nnode failure figures: {json.dumps(figures)}")

    bad_answers = [a for a in answers + producer.refused if a.status != 200 and not (a.status == 503 and a.message)]
    assert not bad_answers, bad_answers[:10]
    assert max(a.latency for a in answers) < DEADLINE + MARGIN
    assert counts.get("done") == len(producer.enqueued), counts
    assert sum(counts.values()) == counts["done"], counts
    assert ledger.ran() == producer.enqueued
    assert not ledger.overlapping(), ledger.overlapping()[:10]
    assert longest_expired <= LOCK_ALLOWANCE.get(case, LEASE + RENEW), figures
    assert before > 0
    assert after > 0
