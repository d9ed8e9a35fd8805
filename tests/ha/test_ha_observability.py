"""Metrics and APM with two real `tasques serve` processes on one Elasticsearch: each server exports its own
counters, leadership and process metrics, both export the same cluster-wide gauges, and each traces as its own
service node."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.ha.conftest import StartServer
from tests.process import ServerProcess
from tests.system.apm_intake import running_intake

QUEUE = "ha-observed"
TASKS = 12


async def scrape(
    http: aiohttp.ClientSession, server: ServerProcess
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with http.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_each_server_exports_its_own_counters_and_the_same_cluster_wide_gauges(start_server: StartServer) -> None:
    async with running_intake() as intake, aiohttp.ClientSession() as http:
        settings = {
            "TASQUES_METRICS_GAUGE_CACHE": "200ms",
            "TASQUES_APM_ENABLED": "true",
            "TASQUES_APM_SERVER_URL": intake.url,
            "TASQUES_APM_TRANSACTION_SAMPLE_RATE": "1.0",
            "ELASTIC_APM_API_REQUEST_TIME": "100ms",
        }
        a, b = await asyncio.gather(
            asyncio.to_thread(start_server, "a", **settings), asyncio.to_thread(start_server, "b", **settings)
        )
        for i in range(TASKS):
            async with http.post(f"{a.url}/tasques", json={"queue": QUEUE, "kind": "k", "id": f"t{i}"}) as resp:
                assert resp.status == 201, await resp.text()
        claimed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(claimed) < TASKS and time.monotonic() < deadline:  # b sees a's tasks within a refresh
            body = {"queues": [QUEUE], "amount": TASKS, "block_for": "1s"}
            async with http.post(f"{b.url}/tasques/claims", json=body, headers={"X-TASQUES-WORKER-ID": "w"}) as r:
                claimed += await r.json()
        assert len(claimed) == TASKS
        done = {"tasks": [{"queue": QUEUE, "id": t["id"]} for t in claimed]}
        async with http.post(f"{b.url}/tasques/done", json=done, headers={"X-TASQUES-WORKER-ID": "w"}) as resp:
            assert resp.status == 200

        # Counters: each server counts what it did.
        sa, sb = await scrape(http, a), await scrape(http, b)
        assert value(sa, "tasques_tasks_created_total", queue=QUEUE, source="api") == TASKS
        assert value(sb, "tasques_tasks_created_total", queue=QUEUE, source="api") == 0
        assert value(sa, "tasques_tasks_claimed_total", queue=QUEUE) == 0
        assert value(sb, "tasques_tasks_claimed_total", queue=QUEUE) == TASKS
        assert value(sb, "tasques_tasks_finished_total", queue=QUEUE, outcome="done") == TASKS
        assert value(sa, "tasques_leader") + value(sb, "tasques_leader") == 1
        assert value(sa, "process_start_time_seconds") > 0
        assert value(sb, "process_start_time_seconds") > 0
        assert value(sa, "tasques_build_info", version=_version(sa), backend="elasticsearch") == 1

        # Gauges: read from the store, the same on both servers once the done writes are searchable.
        deadline = time.monotonic() + 30
        while True:
            sa, sb = await scrape(http, a), await scrape(http, b)
            both = [value(s, "tasques_tasks", queue=QUEUE, state="done") for s in (sa, sb)]
            if both == [TASKS, TASKS] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert both == [TASKS, TASKS]
        assert [value(s, "tasques_tasks", queue=QUEUE, state="queued") for s in (sa, sb)] == [0, 0]

        # Traces: each server is its own service node, and each request shows on the server that served it.
        def nodes_by_transaction() -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            for e in intake.events:
                if e.kind == "transaction":
                    node = e.metadata["service"].get("node", {}).get("configured_name", "")
                    seen.setdefault(e.body["name"], set()).add(node)
            return seen

        seen = await intake.wait_for(
            lambda: (s := nodes_by_transaction()).get("POST /tasques") and s.get("POST /tasques/done") and s
        )
        assert len(seen["POST /tasques"]) == 1
        assert len(seen["POST /tasques/done"]) == 1
        assert seen["POST /tasques"] != seen["POST /tasques/done"], seen


def _version(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    [labels] = [dict(k[1]) for k in samples if k[0] == "tasques_build_info"]
    return labels["version"]
