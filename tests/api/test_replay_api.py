"""POST /tasques/replay: dead tasks back to queued, by ids or by a filter, bounded and safe to repeat."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tasques.api.keys import TASKS
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.service.clock import ManualClock
from tests.api.conftest import WORKER, Client, assert_error, call, claim, claim_one, create_task, get_task

HTTP = {"url": "http://127.0.0.1:9/hook", "method": "POST", "timeout": "5s"}


async def _dead(client: Client, task_id: str, queue: str = "q", kind: str = "k") -> Any:
    await create_task(client, queue, kind, id=task_id, retry_times=0)
    claimed = await claim_one(client, queue)
    assert claimed["id"] == task_id
    dead = await call(client, "PUT", f"/tasques/failed/{queue}/{task_id}", status=200, worker=WORKER,
                      body={"data": {"why": "boom"}})  # fmt: skip
    assert dead["state"] == "dead"
    return dead


async def _replay(client: Client, body: Any, status: int = 200) -> Any:
    return await call(client, "POST", "/tasques/replay", status=status, body=body)


async def test_replay_by_ids(client: Client, clock: ManualClock) -> None:
    await _dead(client, "a")
    await create_task(client, "q", id="queued")
    clock.advance(timedelta(minutes=1))
    got = await _replay(client, {"ids": [{"queue": "q", "id": "a"}, {"queue": "q", "id": "queued"},
                                         {"queue": "q", "id": "nope"}]})  # fmt: skip
    assert [(r["id"], r["status"]) for r in got["results"]] == [
        ("a", "replayed"), ("queued", "not_dead"), ("nope", "not_found"),
    ]  # fmt: skip
    assert got["more"] is False
    task = got["results"][0]["task"]
    assert (task["state"], task["attempted"], task["replayed"]) == ("queued", 0, 1)
    assert task["last_claimed"]["result"]["failure"] == {"why": "boom"}  # history kept
    assert await get_task(client, "q", "a") == task
    assert sorted(t["id"] for t in await claim(client, ["q"], amount=5)) == ["a", "queued"]
    # Repeating is harmless.
    again = await _replay(client, {"ids": [{"queue": "q", "id": "a"}]})
    assert [r["status"] for r in again["results"]] == ["not_dead"]


async def test_replay_by_filter_is_bounded_and_reaches_the_archive(client: Client, clock: ManualClock) -> None:
    await _dead(client, "old")
    clock.advance(timedelta(days=2))
    assert await client.app[TASKS].archive_finished(timedelta(days=1), 100) == 1
    await _dead(client, "new1")
    await _dead(client, "new2")
    await _dead(client, "other", kind="k2")
    first = await _replay(client, {"queue": "q", "kind": "k", "limit": 2})
    assert [(r["id"], r["status"]) for r in first["results"]] == [("new1", "replayed"), ("new2", "replayed")]
    assert first["more"] is True
    second = await _replay(client, {"queue": "q", "kind": "k", "limit": 2})
    assert [(r["id"], r["status"]) for r in second["results"]] == [("old", "replayed")]
    assert second["more"] is False
    old = await get_task(client, "q", "old")
    assert (old["state"], old["replayed"]) == ("queued", 1)
    assert (await get_task(client, "q", "other"))["state"] == "dead"
    assert (await _replay(client, {"queue": "q", "kind": "k"}))["results"] == []


async def test_replay_by_time_of_death(client: Client, clock: ManualClock) -> None:
    await _dead(client, "early")
    clock.advance(timedelta(hours=1))
    since = clock().isoformat()
    await _dead(client, "middle")
    clock.advance(timedelta(hours=1))
    until = clock().isoformat()
    await _dead(client, "late")
    got = await _replay(client, {"dead_since": since, "dead_until": until})
    assert [r["id"] for r in got["results"]] == ["middle"]
    got = await _replay(client, {"dead_until": since})
    assert [r["id"] for r in got["results"]] == ["early"]


async def test_a_replayed_http_task_is_dispatched_again(client: Client) -> None:
    await create_task(client, "hooks", id="h", http_request=HTTP, retry_times=0)
    tasks = client.app[TASKS]
    ref = QueueRef(DEFAULT_PROJECT, "hooks")
    [claimed] = await tasks.claim_http("dispatcher", ref, 1)
    await tasks.fail_finally("dispatcher", ref, "h", {"reason": "refused"}, claimed.claim_id)
    got = await _replay(client, {"ids": [{"queue": "hooks", "id": "h"}]})
    assert got["results"][0]["status"] == "replayed"
    assert ref in await tasks.queues.all()  # the dispatcher serves registered queues
    [again] = await tasks.claim_http("dispatcher", ref, 1)
    assert (again.id, again.attempted, again.replayed) == ("h", 1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ids"),
        ({"ids": [{"queue": "q", "id": "a"}], "queue": "q"}, "ids"),
        ({"ids": [{"queue": "q", "id": "a"}], "limit": 5}, "limit"),
        ({"ids": []}, "ids"),
        ({"ids": [{"queue": "q", "id": str(i)} for i in range(1001)]}, "ids"),
        ({"ids": [{"queue": "q", "id": "a", "extra": 1}]}, "ids.0.extra"),
        ({"ids": [{"queue": "bad/queue", "id": "a"}]}, "ids.0.queue"),
        ({"queue": "q", "limit": 1001}, "limit"),
        ({"queue": "q", "limit": 0}, "limit"),
        ({"queue": "q", "surprise": True}, "surprise"),
        ({"dead_since": "2024-01-02T00:00:00Z", "dead_until": "2024-01-01T00:00:00Z"}, "dead_until"),
        ({"dead_since": "yesterday"}, "dead_since"),
    ],
)
async def test_bad_replays_name_the_field(client: Client, body: Any, field: str) -> None:
    assert_error(await _replay(client, body, status=400), field)
