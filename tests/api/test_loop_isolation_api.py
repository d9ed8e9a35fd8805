"""One bad stored record never stops a claim, the reaper or the recurring enqueuer, over HTTP.

Bad records are written straight into the store (as an older version, or a bad disk, might have left them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tasques.api.keys import RECURRING, TASKS
from tasques.config import Config
from tasques.domain.duration import MAX_DURATION
from tasques.domain.limits import MAX_RETRY_WAIT
from tasques.domain.retry import RetryMode, RetryPolicy
from tasques.domain.task import NewTask, Task
from tasques.service.clock import ManualClock
from tasques.store.sqlite.store import SqliteStore
from tests.api.conftest import T0, Client, MakeClient, call, claim, create_task, get_task, list_all, parse_ts
from tests.contract.raw import corrupt, unparseable_duration


@pytest.fixture
async def side_store(client: Client, tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A second handle on the server's database file, to plant records behind the API's back."""
    store = SqliteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_an_unreadable_task_does_not_fail_claims(client: Client, side_store: SqliteStore) -> None:
    await create_task(client, "q", id="poison", priority=100)
    await create_task(client, "q", id="fine", priority=1)
    await corrupt(side_store, "tasks", ("q", "poison"), unparseable_duration)
    # Was a 500 for every claim naming the queue.
    claimed = await claim(client, ["q"], amount=1)
    assert [t["id"] for t in claimed] == ["fine"]
    assert await claim(client, ["q"], amount=5) == []


async def test_the_reaper_retries_every_timed_out_task_even_when_one_overflows(
    client: Client, side_store: SqliteStore, clock: ManualClock
) -> None:
    # Linear retries of 30 days (the maximum) after attempt 100,000: `at + retry_interval * n` is some 8,000
    # years on, past what a datetime holds, so the reaper failed every pass.
    policy = RetryPolicy(mode=RetryMode.LINEAR, retry_interval=MAX_RETRY_WAIT, retry_times=1_000_000)
    new = NewTask(queue="a", kind="k", id="huge", run_at=T0, retry_times=3, processing_timeout=timedelta(seconds=1))
    bad = Task.create(new.model_copy(update={"retry_policy": policy}), T0).claimed("w", T0, "c1")
    await side_store.insert_task(bad.model_copy(update={"attempted": 100_000}))
    await create_task(client, "z", id="plain", processing_timeout="1s")
    await claim(client, ["z"])

    now = clock.advance(timedelta(seconds=5))
    assert await client.app[TASKS].reap_timed_out(100) == 2
    plain = await get_task(client, "z", "plain")
    assert plain["state"] == "failed"
    huge = await get_task(client, "a", "huge")
    assert huge["state"] == "failed"
    assert parse_ts(huge["run_at"]) == now + MAX_DURATION  # the delay saturated


async def test_a_broken_recurring_task_is_marked_and_the_others_still_enqueue(
    client: Client, side_store: SqliteStore, clock: ManualClock
) -> None:
    for rid in ("a-broken", "b-fine"):
        body = {"id": rid, "schedule_expression": "@every 1m", "task_definition": {"queue": "rq", "kind": "k"}}
        await call(client, "POST", "/recurring_tasques", status=201, body=body)

    def bad_schedule(doc: dict[str, Any]) -> None:
        doc["schedule_expression"] = "whenever you like"

    await corrupt(side_store, "recurring", ("a-broken",), bad_schedule)
    now = clock.advance(timedelta(minutes=1))
    # Was a ScheduleError out of the whole pass, so no recurring task sorted after it ever fired.
    assert await client.app[RECURRING].enqueue_due() == 1
    assert [t["recurring_task_id"] for t in await list_all(client, {"queue": "rq"})] == ["b-fine"]
    broken = await call(client, "GET", "/recurring_tasques/a-broken", status=200)
    assert broken["last_error"].startswith("ScheduleError: ")
    assert parse_ts(broken["last_error_at"]) == now
    fine = await call(client, "GET", "/recurring_tasques/b-fine", status=200)
    assert "last_error" not in fine

    # The same error again is not rewritten each pass: its first time stays.
    clock.advance(timedelta(minutes=1))
    assert await client.app[RECURRING].enqueue_due() == 1
    again = await call(client, "GET", "/recurring_tasques/a-broken", status=200)
    assert (again["last_error"], again["last_error_at"]) == (broken["last_error"], broken["last_error_at"])


# Catch-up of recently missed slots


async def _every_second(client: Client) -> None:
    body = {"id": "tick", "schedule_expression": "@every 1s", "task_definition": {"queue": "rq", "kind": "k"}}
    await call(client, "POST", "/recurring_tasques", status=201, body=body)


async def _run_ats(client: Client) -> list[datetime]:
    return sorted(parse_ts(t["run_at"]) for t in await list_all(client, {"recurring_task_id": "tick"}))


async def test_slots_missed_by_a_late_pass_are_each_enqueued(client: Client, clock: ManualClock) -> None:
    await _every_second(client)
    clock.advance(timedelta(seconds=3))  # the leader is 3s late: slots 03:04:06, :07, :08 fell due
    assert await client.app[RECURRING].enqueue_due() == 3
    first = datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert await _run_ats(client) == [first, first + timedelta(seconds=1), first + timedelta(seconds=2)]
    assert await client.app[RECURRING].enqueue_due() == 0  # each once

    # After a gap longer than the catch-up window (5m by default), the missed slots collapse into one.
    clock.advance(timedelta(minutes=10))
    assert await client.app[RECURRING].enqueue_due() == 1
    assert (await _run_ats(client))[-1] == datetime(2024, 1, 2, 3, 14, 8, tzinfo=UTC)


async def test_catch_up_is_configurable_and_bounded(make_client: MakeClient, clock: ManualClock) -> None:
    client = await make_client({"housekeeping": {"recurring_catch_up": "1m", "recurring_catch_up_max": 5}})
    await _every_second(client)
    clock.advance(timedelta(seconds=30))  # 30 missed, all within the window: the newest 5
    assert await client.app[RECURRING].enqueue_due() == 5
    last = datetime(2024, 1, 2, 3, 4, 35, tzinfo=UTC)
    assert await _run_ats(client) == [last - timedelta(seconds=s) for s in (4, 3, 2, 1, 0)]


async def test_the_leader_catches_up_after_a_pause(make_client: MakeClient, clock: ManualClock) -> None:
    client = await make_client({"housekeeping": {"recurring_every": "10ms"}}, leader=True)
    await _every_second(client)
    clock.advance(timedelta(seconds=3))
    for _ in range(500):
        if len(await _run_ats(client)) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(await _run_ats(client)) == 3


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"recurring_catch_up": "-1s"}, "recurring_catch_up"),
        ({"recurring_catch_up": "25h"}, "recurring_catch_up"),
        ({"recurring_catch_up_max": 0}, "recurring_catch_up_max"),
        ({"recurring_catch_up_max": 10_001}, "recurring_catch_up_max"),
    ],
)
def test_catch_up_settings_are_validated(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Config.model_validate({"housekeeping": settings})
    ok = Config.model_validate({"housekeeping": {"recurring_catch_up": "0s", "recurring_catch_up_max": 1}})
    assert (ok.housekeeping.recurring_catch_up, ok.housekeeping.recurring_catch_up_max) == (timedelta(0), 1)
