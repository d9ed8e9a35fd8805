"""Contract: batched read-modify-writes (`Store.modify_tasks`), the service's batch operations behind
`POST /tasques/{done,failed,reports,unclaims}`, and group commit of concurrent single calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tasques.domain.errors import AlreadyExists, ClaimMismatch, NotClaimed, NotFound, NotOwnedByWorker, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskState
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec, WorkerUpdate
from tasques.store.base import GeneratedKeys, Store, TaskChange
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite import SqliteStore
from tests.contract import T0, claim_as, finished, make_task, ts


class CountingStore:
    """The real store, counting the calls that write task changes."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.modify_calls: list[int] = []
        self.insert_calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def insert_tasks(
        self, tasks: Sequence[Task], *, generated: GeneratedKeys = frozenset(), quota: int | None = None
    ) -> list[Task | AlreadyExists]:
        self.insert_calls.append(len(tasks))
        return await self._inner.insert_tasks(tasks, generated=generated, quota=quota)

    async def modify_tasks(self, changes: Sequence[TaskChange]) -> list[Task | Exception]:
        self.modify_calls.append(len(changes))
        return await self._inner.modify_tasks(changes)


def _service(store: Store | CountingStore, clock: ManualClock) -> TaskService:
    signals = QueueSignals()
    queues = QueueService(store, clock, signals, cache_for=timedelta(0))
    return TaskService(store, TaskSettings(), clock, signals, queues)


@pytest.fixture
async def twin(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    """A second store instance on the same data: another server of the same cluster (or file)."""
    other: Store
    if isinstance(store, ElasticsearchStore):
        other = ElasticsearchStore.from_config(store._settings)
    else:
        assert isinstance(store, SqliteStore)
        other = SqliteStore(str(tmp_path / "tasques.db"))
    await other.open()
    try:
        yield other
    finally:
        await other.close()


def _claim_id(task: Task) -> str:
    assert task.last_claimed is not None
    assert task.last_claimed.claim_id is not None
    return task.last_claimed.claim_id


async def _claimed(service: TaskService, worker: str, n: int, queue: str = "q") -> list[Task]:
    for i in range(n):
        await service.create(TaskSpec(project=DEFAULT_PROJECT, queue=queue, kind="k", id=f"t{i}"))
    tasks = await service.claim(worker, DEFAULT_PROJECT, [queue], n, timedelta(0))
    assert len(tasks) == n
    return sorted(tasks, key=lambda t: t.id)


# The store primitive


async def test_modify_tasks_answers_each_slot_and_applies_the_rest(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    assert len(await store.claim_tasks(["q"], ts(1), 1, claim_as("w", ts(1)))) == 1
    await store.insert_task(make_task("q", "queued"))
    await store.insert_task(finished(make_task("q", "old"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1

    def done(task: Task) -> Task:
        return task.done("w", {"n": 1}, ts(2))

    results = await store.modify_tasks(
        [
            TaskChange("q", "a", done),
            TaskChange("q", "missing", done),
            TaskChange("q", "queued", done),  # the change refuses: not claimed
            TaskChange("q", "old", done),  # archived and done: the change refuses it too
        ]
    )
    assert isinstance(results[0], Task)
    assert results[0].state is TaskState.DONE
    assert results[0] == await store.get_task("q", "a")
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], NotClaimed)
    assert isinstance(results[3], NotClaimed)
    assert (await store.get_task("q", "queued")).state is TaskState.QUEUED


async def test_modify_tasks_on_an_archived_task_that_the_change_accepts_is_not_found(store: Store) -> None:
    await store.insert_task(finished(make_task("q", "old"), ts(1)))
    assert await store.archive_finished(ts(10), 10) == 1
    [result] = await store.modify_tasks([TaskChange("q", "old", lambda t: t)])
    assert isinstance(result, NotFound)
    assert (await store.get_task("q", "old")).state is TaskState.DONE


async def test_modify_tasks_refuses_a_key_twice(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    with pytest.raises(ValueError, match="distinct"):
        await store.modify_tasks([TaskChange("q", "a", lambda t: t), TaskChange("q", "a", lambda t: t)])


async def test_an_error_raised_by_one_change_is_that_slot_alone(store: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    await store.insert_task(make_task("q", "b"))

    def broken(task: Task) -> Task:
        raise RuntimeError("bug")

    results = await store.modify_tasks(
        [TaskChange("q", "a", broken), TaskChange("q", "b", lambda t: t.cancelled(ts(5)))]
    )
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], Task)
    assert results[1].state is TaskState.CANCELLED
    assert (await store.get_task("q", "a")).state is TaskState.QUEUED


async def test_a_change_made_through_another_instance_is_never_overwritten(store: Store, twin: Store) -> None:
    await store.insert_task(make_task("q", "a"))
    [claimed] = await store.claim_tasks(["q"], ts(1), 1, claim_as("w", ts(1)))
    # Another server finishes the task; this instance last wrote it as claimed.
    [done] = await twin.modify_tasks([TaskChange("q", "a", lambda t: t.done("w", {"by": "twin"}, ts(2)))])
    assert isinstance(done, Task)
    [report] = await store.modify_tasks([TaskChange("q", "a", lambda t: t.reported("w", {"late": 1}, ts(3)))])
    # Either refused on a fresh read, or a lost race the caller retries; never a write over the done task.
    assert isinstance(report, NotClaimed | VersionConflict)
    assert await store.get_task("q", "a") == done
    assert claimed.state is TaskState.CLAIMED


# The service's batch operations


async def test_done_many_with_mixed_items(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    a, b, c, d = await _claimed(service, "w", 4)
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="queued"))
    results = await service.done_many(
        "w",
        DEFAULT_PROJECT,
        [
            WorkerUpdate("q", a.id, _claim_id(a), {"ok": 1}),
            WorkerUpdate("q", "missing", None, None),
            WorkerUpdate("q", b.id, "another-claim", None),
            WorkerUpdate("q", "queued", None, None),
            WorkerUpdate("q", c.id, None, {"ok": 3}),  # no claim id: the worker alone is checked
        ],
    )
    assert isinstance(results[0], Task)
    assert results[0].state is TaskState.DONE
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], ClaimMismatch)
    assert isinstance(results[3], NotClaimed)
    assert isinstance(results[4], Task)
    assert results[4].state is TaskState.DONE
    states = {t.id: (await store.get_task("q", t.id)).state for t in (a, b, c, d)}
    assert states == {a.id: TaskState.DONE, b.id: TaskState.CLAIMED, c.id: TaskState.DONE, d.id: TaskState.CLAIMED}
    stored_a = await store.get_task("q", a.id)
    assert stored_a.last_claimed is not None
    assert stored_a.last_claimed.result is not None
    assert stored_a.last_claimed.result.success == {"ok": 1}


async def test_another_workers_tasks_are_refused_per_item(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    [mine] = await _claimed(service, "w", 1)
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="theirs"))
    [theirs] = await service.claim("other", DEFAULT_PROJECT, ["q"], 1, timedelta(0))
    results = await service.fail_many(
        "w", DEFAULT_PROJECT, [WorkerUpdate("q", theirs.id), WorkerUpdate("q", mine.id, data={"e": 1})]
    )
    assert isinstance(results[0], NotOwnedByWorker)
    assert isinstance(results[1], Task)
    assert results[1].state is TaskState.FAILED
    assert (await store.get_task("q", theirs.id)).state is TaskState.CLAIMED


async def test_a_retried_batch_has_the_outcome_of_one(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    tasks = await _claimed(service, "w", 3)
    batch = [WorkerUpdate("q", t.id, _claim_id(t), {"i": i}) for i, t in enumerate(tasks)]
    first = await service.done_many("w", DEFAULT_PROJECT, batch)
    after_first = [await store.get_task("q", t.id) for t in tasks]
    again = await service.done_many("w", DEFAULT_PROJECT, batch)
    assert all(isinstance(r, Task) for r in first)
    # The retry is refused item by item (already done) and changes nothing.
    assert all(isinstance(r, NotClaimed) for r in again)
    assert [await store.get_task("q", t.id) for t in tasks] == after_first


async def test_a_task_named_twice_is_changed_in_order(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    [a] = await _claimed(service, "w", 1)
    first, second = await service.done_many("w", DEFAULT_PROJECT, [WorkerUpdate("q", a.id, data={"n": 1})] * 2)
    assert isinstance(first, Task)
    assert first.state is TaskState.DONE
    assert isinstance(second, NotClaimed)
    stored = await store.get_task("q", a.id)
    assert stored.last_claimed is not None
    assert stored.last_claimed.result is not None
    assert stored.last_claimed.result.success == {"n": 1}


async def test_reports_push_the_timeout_out_and_keep_the_data(store: Store) -> None:
    clock = ManualClock(T0)
    service = _service(store, clock)
    [a] = await _claimed(service, "w", 1)
    clock.advance(timedelta(seconds=10))
    [reported] = await service.report_many("w", DEFAULT_PROJECT, [WorkerUpdate("q", a.id, _claim_id(a), {"p": 50})])
    assert isinstance(reported, Task)
    assert reported.last_claimed is not None
    assert a.last_claimed is not None
    assert reported.last_claimed.times_out_at > a.last_claimed.times_out_at
    assert reported.last_claimed.last_report is not None
    assert reported.last_claimed.last_report.data == {"p": 50}
    [done] = await service.done_many("w", DEFAULT_PROJECT, [WorkerUpdate("q", a.id, _claim_id(a))])
    assert isinstance(done, Task)
    assert done.state is TaskState.DONE


async def test_unclaim_many_makes_the_tasks_claimable_again(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    tasks = await _claimed(service, "w", 3)
    results = await service.unclaim_many(
        "w", DEFAULT_PROJECT, [WorkerUpdate("q", t.id, _claim_id(t)) for t in tasks[:2]]
    )
    assert [r.state for r in results if isinstance(r, Task)] == [TaskState.QUEUED, TaskState.QUEUED]
    again = await service.claim("w2", DEFAULT_PROJECT, ["q"], 10, timedelta(0))
    assert sorted(t.id for t in again) == sorted(t.id for t in tasks[:2])


async def test_a_batch_retries_lost_races_with_a_fresh_read(store: Store, twin: Store) -> None:
    """The twin reports on the tasks between this server's claim and its done: this server's copies are stale,
    and the batch still finishes every task, keeping the twin's report."""
    service = _service(store, ManualClock(T0))
    other = _service(twin, ManualClock(T0))
    tasks = await _claimed(service, "w", 5)
    reports = await other.report_many(
        "w", DEFAULT_PROJECT, [WorkerUpdate("q", t.id, data={"via": "twin"}) for t in tasks]
    )
    assert all(isinstance(r, Task) for r in reports)
    results = await service.done_many("w", DEFAULT_PROJECT, [WorkerUpdate("q", t.id, _claim_id(t)) for t in tasks])
    assert all(isinstance(r, Task) and r.state is TaskState.DONE for r in results)
    for t in tasks:
        stored = await store.get_task("q", t.id)
        assert stored.last_claimed is not None
        assert stored.last_claimed.last_report is not None
        assert stored.last_claimed.last_report.data == {"via": "twin"}


# Group commit


async def test_concurrent_single_calls_share_store_writes(store: Store) -> None:
    counting = CountingStore(store)
    service = _service(counting, ManualClock(T0))
    tasks = await _claimed(service, "w", 40)
    counting.modify_calls.clear()
    results = await asyncio.gather(
        *(service.done("w", QueueRef(DEFAULT_PROJECT, "q"), t.id, {"i": i}, _claim_id(t)) for i, t in enumerate(tasks)),
        service.done("w", QueueRef(DEFAULT_PROJECT, "q"), "missing", None),
        return_exceptions=True,
    )
    assert all(isinstance(r, Task) and r.state is TaskState.DONE for r in results[:-1])
    assert isinstance(results[-1], NotFound)  # one caller's error reaches that caller alone
    assert sum(counting.modify_calls) == 41
    # Two flushes may be in flight; everything that arrived meanwhile went in the next one.
    assert len(counting.modify_calls) <= 3
    assert {(await store.get_task("q", t.id)).state for t in tasks} == {TaskState.DONE}


async def test_concurrent_single_creates_share_store_writes(store: Store) -> None:
    counting = CountingStore(store)
    clock = ManualClock(T0)
    service = _service(counting, clock)
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="taken"))
    counting.insert_calls.clear()
    specs = [TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id=f"n{i}") for i in range(30)] + [
        TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="taken")
    ]
    now = clock()
    results = await asyncio.gather(
        *(service.insert(service.resolve(s, now), now) for s in specs), return_exceptions=True
    )
    assert [r.id for r in results if isinstance(r, Task)] == [f"n{i}" for i in range(30)]
    assert isinstance(results[-1], AlreadyExists)
    # All arrived in one turn of the event loop: one write carries them all.
    assert counting.insert_calls == [31]
    assert len(await service.claim("w", DEFAULT_PROJECT, ["q"], 100, timedelta(0))) == 31
