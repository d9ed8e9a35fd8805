"""Contract: one bad record never fails a claim, a reaper search or a listing the loops rely on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task, TaskState
from tasques.store.base import Store
from tests.contract import T0, claim_as, make_recurring, make_task, ts
from tests.contract.raw import corrupt, unparseable_duration


async def test_claim_writes_a_task_the_change_gave_up_on(store: Store) -> None:
    await store.insert_tasks([make_task("q", "bad", priority=5), make_task("q", "good", priority=1)])

    def change(task: Task) -> Task:
        if task.id == "bad":
            return task.given_up("cannot", ts(1))
        return task.claimed("w", ts(1), "c1")

    out = await store.claim_tasks(["q"], ts(1), 10, change)
    assert {(t.id, t.state) for t in out} == {("bad", TaskState.DEAD), ("good", TaskState.CLAIMED)}
    dead = await store.get_task("q", "bad")
    assert dead.state is TaskState.DEAD
    assert dead.last_claimed is not None
    assert dead.last_claimed.result is not None
    assert dead.last_claimed.result.failure == {"reason": "cannot"}
    # Dead is final: never offered to a claim again.
    await store.insert_task(make_task("q", "next"))
    assert [t.id for t in await store.claim_tasks(["q"], ts(2), 10, claim_as("w", ts(2)))] == ["next"]


async def test_an_unreadable_task_never_takes_a_claims_place(store: Store) -> None:
    await store.insert_tasks(
        [make_task("q", f"bad{i}", priority=9) for i in range(3)] + [make_task("q", "good", priority=1)]
    )
    for i in range(3):
        await corrupt(store, "tasks", ("q", f"bad{i}"), unparseable_duration)
    claimed = await store.claim_tasks(["q"], ts(1), 1, claim_as("w", ts(1)))
    assert [t.id for t in claimed] == ["good"]
    assert await store.claim_tasks(["q"], ts(1), 5, claim_as("w", ts(1))) == []


async def test_the_reaper_search_skips_an_unreadable_task(store: Store) -> None:
    timeout = timedelta(seconds=10)
    await store.insert_tasks(
        [
            make_task("q", "bad", processing_timeout=timeout).claimed("w", ts(0), "c1"),
            make_task("q", "good", processing_timeout=timeout).claimed("w", ts(1), "c1"),
        ]
    )
    await corrupt(store, "tasks", ("q", "bad"), unparseable_duration)
    assert [t.id for t in await store.timed_out_tasks(ts(100), 10)] == ["good"]
    # The limit counts readable tasks only, so a batch is never filled by unreadable ones.
    assert [t.id for t in await store.timed_out_tasks(ts(100), 1)] == ["good"]


async def test_listings_the_loops_use_skip_unreadable_records(store: Store) -> None:
    for rid in ("a", "b", "c"):
        await store.insert_recurring(make_recurring(rid))
    await store.insert_queue_settings(QueueSettings.default("q1", T0))
    await store.insert_queue_settings(QueueSettings.default("q2", T0))

    def bad_definition(doc: dict[str, Any]) -> None:
        doc["task_definition"] = {"queue": 5}

    def bad_policy(doc: dict[str, Any]) -> None:
        doc["retry_policy"] = {"mode": "sideways"}

    await corrupt(store, "recurring", ("b",), bad_definition)
    await corrupt(store, "queues", ("q1",), bad_policy)
    assert [r.id for r in await store.list_recurring()] == ["a", "c"]
    assert [q.queue for q in await store.list_queue_settings()] == ["q2"]


async def test_recurring_last_error_round_trips(store: Store) -> None:
    inserted = await store.insert_recurring(make_recurring("r"))
    failed = await store.update_recurring(inserted.failed_to_enqueue("ValueError: " + "x" * 5000, ts(3)))
    got = await store.get_recurring("r")
    assert got == failed
    assert got.last_error is not None
    assert got.last_error.startswith("ValueError: x")
    assert len(got.last_error) == 1000
    assert got.last_error_at == ts(3)
    cleared = await store.update_recurring(got.enqueued_fine())
    assert (cleared.last_error, cleared.last_error_at) == (None, None)
    assert await store.list_recurring() == [cleared]
