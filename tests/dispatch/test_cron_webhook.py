"""The cron-webhook journey: a recurring HTTP task posts JSON to the dummy webhook every second, with at most
3 retries; the webhook's 7th and 11th requests fail and are retried, and each execution has its own timeline."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tasques.api.keys import RECURRING
from tasques.dispatch.dummy_webhook import WebhookState, build_webhook_app, fails
from tasques.service.clock import ManualClock
from tests.api.conftest import Client, call
from tests.dispatch.conftest import eventually
from tests.process import free_port


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, WebhookState]]:
    state = WebhookState(min_delay_ms=0, max_delay_ms=5)
    runner = web.AppRunner(build_webhook_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", state
    await runner.cleanup()


def test_the_dummy_webhook_fails_every_7th_and_11th_request() -> None:
    assert [n for n in range(1, 30) if fails(n)] == [7, 11, 14, 21, 22, 28]


async def _executions(server: Client) -> list[Any]:
    page = await call(server, "GET", "/tasques", status=200, params={"recurring_task_id": "cron-hook"})
    return sorted(page["tasks"], key=lambda t: t["run_at"])


async def test_cron_webhook_journey(server: Client, webhook: tuple[str, WebhookState], clock: ManualClock) -> None:
    url, state = webhook
    definition = {
        "queue": "cron",
        "kind": "webhook",
        "http_request": {"url": f"{url}/hook", "body": {"hello": "world"}},
        "retry_policy": {"retry_times": 3, "mode": "linear", "retry_interval": "1s"},
    }
    body = {"id": "cron-hook", "schedule_expression": "@every 1s", "task_definition": definition}
    await call(server, "POST", "/recurring_tasques", status=201, body=body)
    recurring = server.app[RECURRING]

    for execution in range(1, 11):
        clock.advance(timedelta(seconds=1))
        assert await recurring.enqueue_due() == 1

        async def finished(n: int = execution) -> bool:
            tasks = await _executions(server)
            if any(t["state"] == "failed" for t in tasks):
                clock.advance(timedelta(seconds=1))  # its retry is due a second later
                return False
            return len(tasks) == n and all(t["state"] == "done" for t in tasks)

        await eventually(finished)
        await asyncio.sleep(0)

    assert (state.count, state.failed) == (12, [7, 11])
    executions = await _executions(server)
    assert len(executions) == 10
    timelines = []
    for task in executions:
        timeline = await call(server, "GET", f"/tasques/timeline/cron/{task['id']}", status=200)
        timelines.append(
            [(a["attempt"], a["status_code"], json.loads(a["response_body"])) for a in timeline["attempts"]]
        )
    # Requests are numbered by the webhook: execution 7 is requests 7 (500) and 8; execution 10 is 11 (500) and 12.
    expected: list[list[tuple[int, int, dict[str, Any]]]] = [[(1, 200, {"request": n})] for n in range(1, 7)]
    expected.append([(1, 500, {"request": 7, "error": "scheduled failure"}), (2, 200, {"request": 8})])
    expected += [[(1, 200, {"request": 9})], [(1, 200, {"request": 10})]]
    expected.append([(1, 500, {"request": 11, "error": "scheduled failure"}), (2, 200, {"request": 12})])
    assert timelines == expected
    assert [t["attempted"] for t in executions] == [1, 1, 1, 1, 1, 1, 2, 1, 1, 2]


async def test_the_dummy_webhook_command(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "tasques.cli", "dummy-webhook", "--port", str(port), "--max-delay-ms", "1"]
    with (tmp_path / "hook.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=log, stderr=log)
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/stats") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up)
            statuses = []
            for i in range(8):
                async with session.post(f"http://127.0.0.1:{port}/x", json={"i": i}) as r:
                    statuses.append(r.status)
            async with session.get(f"http://127.0.0.1:{port}/stats") as r:
                assert await r.json() == {"count": 8, "failed": [7]}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert statuses == [200] * 6 + [500, 200]
    assert '{"i": 3}' in (tmp_path / "hook.log").read_text()
