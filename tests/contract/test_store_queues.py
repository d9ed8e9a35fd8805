"""Contract: queue settings records, HTTP-target claims, cancelled tasks — on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.http_target import HttpRequest, TaskTarget
from tasques.domain.queue import QueueSettings
from tasques.domain.retry import RetryMode, RetryPolicy
from tasques.domain.task import NewTask, Task, TaskState
from tasques.store.base import Store
from tests.contract import T0, claim_as, make_task, ts


def _http_task(queue: str = "q", id: str = "h", *, run_at_s: float = 0) -> Task:
    new = NewTask(
        queue=queue,
        kind="http",
        id=id,
        run_at=ts(run_at_s),
        retry_times=3,
        processing_timeout=timedelta(minutes=1),
        http_request=HttpRequest(url="http://127.0.0.1:1/x", body={"a": [1, 2]}),
        retry_policy=RetryPolicy(mode=RetryMode.LINEAR, retry_interval=timedelta(seconds=5)),
    )
    return Task.create(new, T0)


async def test_queue_settings_insert_get_update_list(store: Store) -> None:
    policy = RetryPolicy(retry_times=3, min_backoff=timedelta(seconds=2), max_doublings=4)
    inserted = await store.insert_queue_settings(QueueSettings.default("b", T0).changed(T0, retry_policy=policy))
    assert await store.get_queue_settings("b") == inserted
    assert inserted.retry_policy == policy
    with pytest.raises(AlreadyExists):
        await store.insert_queue_settings(QueueSettings.default("b", T0))
    updated = await store.update_queue_settings(
        inserted.changed(ts(1), paused=True, max_dispatches_per_second=2.5, max_concurrent_dispatches=3)
    )
    assert updated.metadata.version != inserted.metadata.version
    assert (updated.paused, updated.max_dispatches_per_second, updated.max_concurrent_dispatches) == (True, 2.5, 3)
    assert await store.get_queue_settings("b") == updated
    with pytest.raises(VersionConflict):
        await store.update_queue_settings(inserted.changed(ts(2), paused=False))
    await store.insert_queue_settings(QueueSettings.default("a", T0))
    assert [s.queue for s in await store.list_queue_settings()] == ["a", "b"]
    assert (await store.list_queue_settings())[1] == updated


async def test_queue_settings_missing(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_queue_settings("nope")
    with pytest.raises(NotFound):
        await store.update_queue_settings(QueueSettings.default("nope", T0))
    assert await store.list_queue_settings() == []


async def test_claims_take_only_their_target(store: Store) -> None:
    await store.insert_tasks([make_task(id="p1"), _http_task(id="h1"), make_task(id="p2"), _http_task(id="h2")])
    pulled = await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)))
    assert sorted(t.id for t in pulled) == ["p1", "p2"]
    assert await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1))) == []
    dispatched = await store.claim_tasks(["q"], ts(1), 10, claim_as("d", ts(1)), TaskTarget.HTTP)
    assert sorted(t.id for t in dispatched) == ["h1", "h2"]
    assert all(t.target is TaskTarget.HTTP and t.http_request is not None for t in dispatched)
    assert await store.claim_tasks(["q"], ts(1), 10, claim_as("d", ts(1)), TaskTarget.HTTP) == []


async def test_http_task_round_trips(store: Store) -> None:
    task = _http_task()
    stored = await store.insert_task(task)
    got = await store.get_task("q", "h")
    assert got == stored
    assert got.http_request == task.http_request
    assert got.retry_policy == task.retry_policy


async def test_cancelled_tasks_are_finished_and_unclaimable(store: Store) -> None:
    stored = await store.insert_task(make_task(id="c", recurring_task_id="rec"))
    assert await store.count_outstanding("rec") == 1
    cancelled = await store.update_task(stored.cancelled(ts(1)))
    assert cancelled.state is TaskState.CANCELLED
    assert await store.claim_tasks(["q"], ts(2), 10, claim_as("w", ts(2))) == []
    assert await store.count_outstanding("rec") == 0
    [counts] = await store.queue_counts()
    assert counts.counts == {TaskState.CANCELLED: 1}
    assert await store.archive_finished(ts(5), 10) == 1
    assert (await store.get_task("q", "c")).state is TaskState.CANCELLED
