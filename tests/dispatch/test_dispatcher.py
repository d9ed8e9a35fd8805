"""The dispatcher against real HTTP servers on 127.0.0.1, on every store."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tasques.api.keys import TASKS
from tasques.domain.http_target import HttpRequest
from tasques.domain.task import NewTask, Task
from tasques.service.clock import ManualClock
from tasques.store.base import Store
from tests.api.conftest import Client, call, parse_ts
from tests.dispatch.conftest import T0, Target, dispatcher, eventually, passes


async def _create(server: Client, target: Target, id: str, queue: str = "q", **fields: Any) -> Any:
    request = {"url": f"{target.url}/hook/{id}", "body": {"id": id}, **fields.pop("request", {})}
    body = {"queue": queue, "kind": "hook", "id": id, "http_request": request, **fields}
    return await call(server, "POST", "/tasques", status=201, body=body)


async def _state(server: Client, id: str, queue: str = "q") -> Any:
    return await call(server, "GET", f"/tasques/{queue}/{id}", status=200)


async def _reaches(server: Client, id: str, state: str, queue: str = "q") -> Any:
    async def check() -> Any:
        task = await _state(server, id, queue)
        return task if task["state"] == state else None

    return await eventually(check)


async def test_a_2xx_answer_marks_the_task_done(server: Client, target: Target) -> None:
    await _create(server, target, "t1", request={"method": "PUT", "headers": {"X-Trace": "abc"}})
    task = await _reaches(server, "t1", "done")
    [got] = target.received
    assert (got.method, got.path, got.headers["X-Trace"]) == ("PUT", "/hook/t1", "abc")
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == {"id": "t1"}
    success = task["last_claimed"]["result"]["success"]
    assert (success["status_code"], success["body"]) == (200, "ok")
    assert task["last_claimed"]["worker_id"] == dispatcher(server).worker_id


async def test_text_and_base64_bodies_are_sent_as_given(server: Client, target: Target) -> None:
    await _create(server, target, "text", request={"body": "héllo", "body_encoding": "text"})
    await _create(server, target, "raw", request={"body": "AAEC/w==", "body_encoding": "base64"})
    await _reaches(server, "text", "done")
    await _reaches(server, "raw", "done")
    bodies = {r.path: r.body for r in target.received}
    assert bodies == {"/hook/text": "héllo".encode(), "/hook/raw": b"\x00\x01\x02\xff"}


async def test_failures_retry_on_the_policy_schedule_with_an_injected_clock(
    server: Client, target: Target, clock: ManualClock
) -> None:
    async def fail_twice(n: int, _: web.Request) -> web.Response:
        return web.Response(status=503, text="busy") if n <= 2 else web.Response(text="fine")

    target.answer = fail_twice
    policy = {"mode": "doubling", "min_backoff": "10s", "max_backoff": "1m", "max_doublings": 3}
    await _create(server, target, "t", retry_policy=policy)
    failed = await _reaches(server, "t", "failed")
    assert parse_ts(failed["run_at"]) == T0 + timedelta(seconds=10)
    assert failed["last_claimed"]["result"]["failure"]["status_code"] == 503
    await passes(server, 3)
    assert len(target.received) == 1  # not before its run_at
    clock.advance(timedelta(seconds=10))
    await eventually(lambda: _count_at_least(target, 2))
    failed = await _reaches(server, "t", "failed")
    assert parse_ts(failed["run_at"]) == T0 + timedelta(seconds=30)
    clock.advance(timedelta(seconds=20))
    done = await _reaches(server, "t", "done")
    assert done["attempted"] == 3
    assert len(target.received) == 3


async def _count_at_least(target: Target, n: int) -> bool:
    return len(target.received) >= n


async def test_connection_errors_and_timeouts_are_failed_attempts(server: Client, target: Target) -> None:
    async def slow(_: int, __: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    target.answer = slow
    await _create(server, target, "slow", retry_times=0, request={"timeout": "100ms"})
    dead = await _reaches(server, "slow", "dead")
    assert "timed out" in dead["last_claimed"]["result"]["failure"]["error"]
    body = {
        "queue": "q",
        "kind": "k",
        "id": "refused",
        "retry_times": 0,
        "http_request": {"url": "http://127.0.0.1:1/"},
    }
    await call(server, "POST", "/tasques", status=201, body=body)
    dead = await _reaches(server, "refused", "dead")
    assert "error" in dead["last_claimed"]["result"]["failure"]


async def test_pause_resume_and_cancel(server: Client, target: Target) -> None:
    await call(server, "PUT", "/queues/q/pause", status=200)
    await _create(server, target, "a")
    await _create(server, target, "b")
    await passes(server, 3)
    assert target.received == []
    await call(server, "PUT", "/tasques/cancel/q/b", status=200)
    await call(server, "PUT", "/queues/q/resume", status=200)
    await _reaches(server, "a", "done")
    await passes(server, 3)
    assert [r.path for r in target.received] == ["/hook/a"]
    assert (await _state(server, "b"))["state"] == "cancelled"


async def test_cancel_while_in_flight_keeps_it_cancelled(server: Client, target: Target) -> None:
    release = asyncio.Event()

    async def held(_: int, __: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="ok")

    target.answer = held
    await _create(server, target, "t")
    await eventually(lambda: _count_at_least(target, 1))
    await call(server, "PUT", "/tasques/cancel/q/t", status=200)
    release.set()
    await eventually(lambda: _no_flight(target))
    await passes(server, 3)
    assert (await _state(server, "t"))["state"] == "cancelled"


async def _no_flight(target: Target) -> bool:
    return target.in_flight == 0


async def test_run_now_dispatches_a_later_task(server: Client, target: Target, clock: ManualClock) -> None:
    await _create(server, target, "later", run_at=(clock.now + timedelta(days=1)).isoformat())
    await passes(server, 3)
    assert target.received == []
    await call(server, "PUT", "/tasques/run-now/q/later", status=200)
    await _reaches(server, "later", "done")


async def test_concurrency_limit_per_queue(server: Client, target: Target) -> None:
    async def slowish(_: int, __: web.Request) -> web.Response:
        await asyncio.sleep(0.15)
        return web.Response(text="ok")

    target.answer = slowish
    await call(server, "PUT", "/queues/q/settings", status=200, body={"max_concurrent_dispatches": 2})
    for i in range(6):
        await _create(server, target, f"t{i}")
    for i in range(6):
        await _reaches(server, f"t{i}", "done")
    assert target.max_in_flight == 2


async def test_observed_rate_stays_under_the_limit(server: Client, target: Target) -> None:
    await call(server, "PUT", "/queues/q/settings", status=200, body={"max_dispatches_per_second": 10})
    n = 12
    body = {"tasks": [{"queue": "q", "kind": "k", "http_request": {"url": f"{target.url}/r"}} for _ in range(n)]}
    await call(server, "POST", "/tasques/bulk", status=200, body=body)
    await eventually(lambda: _count_at_least(target, n), within=20)
    times = sorted(r.at for r in target.received)
    # A token bucket with a burst of one: any k consecutive requests span at least (k - 1) / rate seconds.
    for i in range(n):
        for j in range(i + 1, n):
            assert times[j] - times[i] >= (j - i) / 10 - 0.01, (i, j, times)


async def test_the_timeline_records_every_attempt_and_is_pruned_after_retention(
    server: Client, target: Target, clock: ManualClock
) -> None:
    async def fail_first(n: int, _: web.Request) -> web.Response:
        if n == 1:
            return web.Response(status=500, text="E" * 10_000, headers={"Retry-After": "3", "X-Other": "no"})
        return web.Response(text="fine")

    target.answer = fail_first
    await _create(server, target, "t", retry_policy={"mode": "linear", "retry_interval": "1s"})
    await _reaches(server, "t", "failed")
    clock.advance(timedelta(seconds=1))
    await _reaches(server, "t", "done")
    timeline = await call(server, "GET", "/tasques/timeline/q/t", status=200)
    first, second = timeline["attempts"]
    assert (first["attempt"], first["success"], first["status_code"]) == (1, False, 500)
    assert first["response_headers"]["retry-after"] == "3"
    assert "x-other" not in first["response_headers"]
    assert first["response_body"] == "E" * 4096
    assert parse_ts(first["started_at"]) == T0
    assert first["duration_ms"] >= 0
    assert (second["attempt"], second["success"], second["response_body"]) == (2, True, "fine")
    assert second["worker_id"] == dispatcher(server).worker_id
    await call(server, "GET", "/tasques/timeline/q/nope", status=404)

    tasks = server.app[TASKS]
    clock.advance(timedelta(hours=71))
    assert await tasks.prune_timeline(timedelta(hours=72), 100) == 0
    clock.advance(timedelta(hours=2))
    assert await tasks.prune_timeline(timedelta(hours=72), 100) == 2
    assert (await call(server, "GET", "/tasques/timeline/q/t", status=200))["attempts"] == []


async def test_repeat_runs_again_after_success_each_run_with_its_own_timeline(
    server: Client, target: Target, clock: ManualClock
) -> None:
    await _create(server, target, "r", repeat={"interval": "10s", "times": 2})
    for run in (1, 2):
        queued = await eventually(functools.partial(_repeated, server, run))
        assert parse_ts(queued["run_at"]) == clock.now + timedelta(seconds=10)
        clock.advance(timedelta(seconds=10))
    done = await _reaches(server, "r", "done")
    assert done["repeated"] == 3
    timeline = await call(server, "GET", "/tasques/timeline/q/r", status=200)
    assert [(a["run"], a["attempt"], a["status_code"]) for a in timeline["attempts"]] == [
        (0, 1, 200),
        (1, 1, 200),
        (2, 1, 200),
    ]
    assert len(target.received) == 3


async def _repeated(server: Client, n: int) -> Any:
    task = await _state(server, "r")
    return task if task["state"] == "queued" and task.get("repeated") == n else None


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_no_cookie_is_carried_from_one_task_to_another(server: Client, target: Target) -> None:
    async def set_cookie(n: int, _: web.Request) -> web.Response:
        response = web.Response(text="ok")
        if n == 1:
            response.set_cookie("session", "of-task-1", path="/")
        return response

    target.answer = set_cookie
    target.url = target.url.replace("127.0.0.1", "localhost")  # a cookie jar keeps no cookies of IP hosts
    await _create(server, target, "t1")
    await _reaches(server, "t1", "done")
    await _create(server, target, "t2")
    await _reaches(server, "t2", "done")
    _, second = target.received
    assert "Cookie" not in second.headers, second.headers


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_the_recorded_body_is_the_first_4_kb_exactly_of_a_slow_stream(server: Client, target: Target) -> None:
    async def trickle(_: int, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        for i in range(30):  # 30 chunks of 200 bytes, each on its own
            await response.write(bytes([ord("a") + i % 26]) * 200)
            await asyncio.sleep(0.005)
        await response.write_eof()
        return response

    target.answer = trickle
    await _create(server, target, "t", retry_times=0)
    dead = await _reaches(server, "t", "dead")
    body = dead["last_claimed"]["result"]["failure"]["body"]
    expected = b"".join(bytes([ord("a") + i % 26]) * 200 for i in range(30))[:4096].decode()
    assert body == expected
    [attempt] = (await call(server, "GET", "/tasques/timeline/q/t", status=200))["attempts"]
    assert attempt["response_body"] == expected


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_a_stored_header_with_cr_lf_ends_dead_not_stuck_claimed(server: Client, target: Target) -> None:
    # Stored by an older version, before headers were checked at creation.
    tasks = server.app[TASKS]
    request = HttpRequest(url=f"{target.url}/hook", headers={"X-A": "a\r\nInjected: 1"})
    await tasks.insert(NewTask(id="crlf", queue="q", kind="k", run_at=T0, retry_times=3,
                               processing_timeout=timedelta(hours=1), http_request=request), T0)  # fmt: skip
    dead = await _reaches(server, "crlf", "dead")
    error = dead["last_claimed"]["result"]["failure"]["error"]
    assert error.startswith("the request cannot be sent: http_request.headers: header 'X-A'"), error
    [attempt] = (await call(server, "GET", "/tasques/timeline/q/crlf", status=200))["attempts"]
    assert attempt["error"] == error
    assert target.received == []


@pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True)
async def test_a_queue_whose_pass_fails_does_not_stop_the_others(
    server: Client, target: Target, tmp_path: Path
) -> None:
    await call(server, "PUT", "/queues/a-broken/pause", status=200)
    await _create(server, target, "bad", queue="a-broken")
    # A record no version of Tasques can read: claiming from that queue raises, every pass.
    with sqlite3.connect(tmp_path / "t.db") as conn:  # the tasques_store fixture's file
        conn.execute("UPDATE tasks SET body = '{}' WHERE queue = 'a-broken'")
    await call(server, "PUT", "/queues/a-broken/resume", status=200)
    await passes(server, 2)
    await _create(server, target, "good", queue="b-fine")
    await _reaches(server, "good", "done", queue="b-fine")
    assert [r.path for r in target.received] == ["/hook/good"]


async def test_idle_queues_cost_one_probe_per_tick_and_no_claims(
    server: Client, target: Target, tasques_store: Store
) -> None:
    for i in range(20):
        await call(server, "PUT", f"/queues/idle{i}/settings", status=200, body={"max_concurrent_dispatches": 2})
    tasks = server.app[TASKS]
    await passes(server, 2)
    claims, probes = tasks.shared_claims.store_calls, tasks.ticker.probes
    await eventually(lambda: _probed(server, probes + 3))
    assert tasks.shared_claims.store_calls == claims  # twenty idle queues: probes only, no claims
    # A task written behind this server's back (as by another server), so no signal: the probe finds it.
    request = HttpRequest(url=f"{target.url}/hook/behind")
    new = NewTask(id="behind", queue="idle7", kind="k", run_at=T0, retry_times=3,
                  processing_timeout=timedelta(hours=1), http_request=request)  # fmt: skip
    await tasques_store.insert_task(Task.create(new, T0))
    await _reaches(server, "behind", "done", queue="idle7")
    assert [r.path for r in target.received] == ["/hook/behind"]


async def _probed(server: Client, n: int) -> bool:
    return server.app[TASKS].ticker.probes >= n
