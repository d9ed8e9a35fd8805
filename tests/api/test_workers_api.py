"""The worker registry over HTTP: sightings and their headers, GET /workers and its states, drain and resume."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from tasques.api.http import WORKER_DRAINING_HEADER, WORKER_HOST_HEADER, WORKER_ID_HEADER, WORKER_VERSION_HEADER
from tasques.api.keys import WORKERS
from tasques.service.clock import ManualClock
from tests.api.conftest import WORKER, Client, assert_error, call, claim, create_task

_INFO = {WORKER_VERSION_HEADER: "1.2.3", WORKER_HOST_HEADER: "box-1"}


async def _claim(client: Client, body: dict[str, Any], worker: str = WORKER) -> tuple[list[Any], str | None]:
    """A claim's tasks and its drain header."""
    headers = {WORKER_ID_HEADER: worker, **_INFO}
    async with client.post("/tasques/claims", json={"block_for": "0s", **body}, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json(), resp.headers.get(WORKER_DRAINING_HEADER)


async def _workers(client: Client) -> dict[str, Any]:
    body = await call(client, "GET", "/workers", status=200)
    return {w["id"]: w for w in body["workers"]}


async def test_sightings_and_their_headers_are_listed_with_states(client: Client, clock: ManualClock) -> None:
    await create_task(client, "q", id="t1")
    tasks, draining = await _claim(client, {"queues": ["q", "r"]})
    assert len(tasks) == 1
    assert draining is None
    await call(client, "PUT", "/tasques/reports/q/t1", status=403, worker="reporter", body={"data": {"x": 1}})
    got = await _workers(client)
    me = got[WORKER]
    assert me["queues"] == ["q", "r"]
    assert (me["version"], me["host"], me["state"], me["claims_held"], me["draining"]) == (
        "1.2.3",
        "box-1",
        "active",
        1,
        False,
    )
    assert me["first_seen_at"] == me["last_seen_at"]
    # A report of another worker (refused: not its task) is a sighting too, without queues.
    assert got["reporter"]["queues"] == []
    assert got["reporter"]["claims_held"] == 0
    clock.advance(timedelta(minutes=6))
    await claim(client, ["q"], worker="reporter")
    got = await _workers(client)
    assert (got[WORKER]["state"], got["reporter"]["state"]) == ("gone", "active")
    # Silent for longer than workers.forget_after: the leader's job forgets it.
    clock.advance(timedelta(days=8))
    await claim(client, ["q"], worker="reporter")
    assert await client.app[WORKERS].forget(100) == 1
    assert set(await _workers(client)) == {"reporter"}


async def test_a_drained_worker_claims_nothing_and_finishes_what_it_holds(client: Client) -> None:
    for i in range(3):
        await create_task(client, "q", id=f"t{i}")
    held, _ = await _claim(client, {"queues": ["q"], "amount": 2})
    assert len(held) == 2
    drained = await call(client, "PUT", f"/workers/{WORKER}/drain", status=200)
    assert (drained["id"], drained["draining"], drained["state"], drained["claims_held"]) == (
        WORKER,
        True,
        "draining",
        2,
    )
    tasks, draining = await _claim(client, {"queues": ["q"]})
    assert (tasks, draining) == ([], "true")
    # A drained worker's in-flight claim: still its own to report on and finish, and every answer says drain.
    headers = {WORKER_ID_HEADER: WORKER}
    async with client.put(f"/tasques/reports/q/{held[0]['id']}", json={"data": {}}, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers.get(WORKER_DRAINING_HEADER) == "true"
    async with client.put(f"/tasques/done/q/{held[0]['id']}", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers.get(WORKER_DRAINING_HEADER) == "true"
    body = {"tasks": [{"queue": "q", "id": held[1]["id"]}]}
    async with client.post("/tasques/failed", json=body, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers.get(WORKER_DRAINING_HEADER) == "true"
        assert (await resp.json())["results"][0]["status"] == 200
    # Other workers go on claiming.
    other, draining = await _claim(client, {"queues": ["q"]}, worker="other")
    assert len(other) == 1
    assert draining is None
    resumed = await call(client, "PUT", f"/workers/{WORKER}/resume", status=200)
    assert (resumed["draining"], resumed["state"]) == (False, "active")
    await create_task(client, "q", id="t9")
    tasks, draining = await _claim(client, {"queues": ["q"]})
    assert len(tasks) == 1
    assert draining is None


async def test_a_blocked_claim_returns_at_once_when_its_worker_is_drained(client: Client) -> None:
    await claim(client, ["q"])  # seen, so it can be drained
    started = asyncio.get_running_loop().time()
    pending = asyncio.create_task(_claim(client, {"queues": ["q"], "block_for": "30s"}))
    await asyncio.sleep(0.3)
    assert not pending.done()
    await call(client, "PUT", f"/workers/{WORKER}/drain", status=200)
    tasks, draining = await asyncio.wait_for(pending, 5)
    assert (tasks, draining) == ([], "true")
    assert asyncio.get_running_loop().time() - started < 5


async def test_draining_an_unknown_worker_is_404_and_bad_ids_400(client: Client) -> None:
    assert_error(await call(client, "PUT", "/workers/nobody/drain", status=404))
    assert_error(await call(client, "PUT", "/workers/nobody/resume", status=404))
    assert_error(await call(client, "PUT", f"/workers/{'x' * 257}/drain", status=400), "id")
    assert_error(await call(client, "PUT", "/workers/%20padded/drain", status=400), "id")
    # Any id the header allows, URL-encoded.
    await claim(client, ["q"], worker="w/ith spaces")
    body = await call(client, "PUT", "/workers/w%2Fith%20spaces/drain", status=200)
    assert body["id"] == "w/ith spaces"


async def test_bad_worker_headers_are_400_naming_the_header(client: Client) -> None:
    for header, value in ((WORKER_VERSION_HEADER, "v" * 201), (WORKER_HOST_HEADER, "a\tb")):
        headers = {WORKER_ID_HEADER: WORKER, header: value}
        assert_error(
            await call(client, "POST", "/tasques/claims", status=400, body={"queues": ["q"]}, headers=headers), header
        )
        assert_error(await call(client, "PUT", "/tasques/done/q/x", status=400, headers=headers), header)


async def test_queue_weights_are_checked(client: Client) -> None:
    for body, field in (
        ({"queues": [], "queue_weights": {"a": 0}}, "queue_weights.a"),
        ({"queues": [], "queue_weights": {"a": 1001}}, "queue_weights.a"),
        ({"queues": [], "queue_weights": {}}, "queue_weights"),
        ({"queues": [], "queue_weights": {"bad/name": 1}}, "queue_weights.bad/name.[key]"),
        ({"queues": [], "queue_weights": {f"q{i}": 1 for i in range(101)}}, "queue_weights"),
        ({"queues": [f"p{i}" for i in range(60)], "queue_weights": {f"q{i}": 1 for i in range(60)}}, "queue_weights"),
        ({}, "queues"),
    ):
        assert_error(await call(client, "POST", "/tasques/claims", status=400, worker=WORKER, body=body), field)


async def test_weighted_claims_over_http(client: Client) -> None:
    for i in range(8):
        await create_task(client, "a", id=f"a{i}")
        await create_task(client, "b", id=f"b{i}")
    tasks, _ = await _claim(client, {"queues": [], "queue_weights": {"a": 3, "b": 1}, "amount": 4})
    assert sorted(t["queue"] for t in tasks) == ["a", "a", "a", "b"]
    # queues and queue_weights together: the plain queues weigh 1.
    tasks, _ = await _claim(client, {"queues": ["b"], "queue_weights": {"a": 1}, "amount": 4})
    assert sorted(t["queue"] for t in tasks) == ["a", "a", "b", "b"]
