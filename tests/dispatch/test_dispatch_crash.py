"""A real `tasques serve` killed with SIGKILL mid-dispatch: the request is retried and nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.dispatch.conftest import Target, eventually
from tests.process import ServerProcess, delete_es_prefix, es_server_settings

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings of a store that outlives a server process, on each store kind."""
    if request.param == "sqlite":
        yield {"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}
        return
    url, prefix = request.getfixturevalue("elasticsearch_url"), request.getfixturevalue("es_index_prefix")
    yield es_server_settings(url, prefix)
    asyncio.run(delete_es_prefix(url, prefix))


async def test_kill_9_mid_dispatch_retries_and_loses_nothing(
    tmp_path: Path, target: Target, store_settings: dict[str, str]
) -> None:
    first_request = asyncio.Event()
    release = asyncio.Event()

    async def hang_first(n: int, _: web.Request) -> web.Response:
        if n == 1:
            first_request.set()
            await release.wait()  # the server is killed while it waits for this answer
        return web.Response(text="ok")

    target.answer = hang_first
    settings = {
        **store_settings,
        "TASQUES_HOUSEKEEPING_REAP_EVERY": "100ms",
        "TASQUES_LEADER_RENEW_EVERY": "100ms",
        "TASQUES_LEADER_LEASE": "500ms",
        "TASQUES_DISPATCH_POLL_INTERVAL": "50ms",
        "TASQUES_DISPATCH_ALLOWED_NETWORKS": "[127.0.0.0/8]",  # the target is on loopback
    }
    log = tmp_path / "server.log"
    server = ServerProcess(settings, log).start()
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(5):
                request = {"url": f"{target.url}/hook/{i}", "body": {"i": i}, "timeout": "30s"}
                body = {
                    "queue": "crash",
                    "kind": "hook",
                    "id": f"c{i}",
                    "http_request": request,
                    "processing_timeout": "1s",
                    "retry_policy": {"mode": "linear", "retry_interval": "100ms"},
                }
                async with session.post(f"{server.url}/tasques", json=body) as r:
                    assert r.status == 201, await r.text()
            await asyncio.wait_for(first_request.wait(), 10)
    finally:
        server.kill()

    restarted = ServerProcess(settings, log, port=server.port).start()
    try:
        async with aiohttp.ClientSession() as session:

            async def all_done() -> dict[str, Any] | None:
                tasks = {}
                for i in range(5):
                    async with session.get(f"{restarted.url}/tasques/crash/c{i}") as r:
                        tasks[f"c{i}"] = await r.json()
                return tasks if all(t["state"] == "done" for t in tasks.values()) else None

            tasks = await eventually(all_done, within=30)
    finally:
        restarted.stop()
        release.set()
    hung = target.received[0].path.rsplit("/", 1)[1]
    # The task whose request was cut off by the crash timed out, was retried, and succeeded: on attempt 2, or
    # later when a loaded machine makes the restarted server's answer outlast the 1 s processing timeout too.
    assert tasks[f"c{hung}"]["attempted"] >= 2
    assert {p for p in (r.path for r in target.received)} == {f"/hook/{i}" for i in range(5)}
