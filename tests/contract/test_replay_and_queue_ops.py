"""Contract: dead-letter replay and the queue operations as services, on every store: a replay racing a worker and
another replay, archived dead tasks replayed, bounded filters; run-now; a queue deleted while claims are held."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from tasques.domain.errors import InvalidInput, NotClaimed, NotFound
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.replay import DeadFilter, ReplayStatus
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.store.base import Store
from tests.contract import T0

Q = QueueRef(DEFAULT_PROJECT, "q")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


class TickingClock(ManualClock):
    """Each reading a microsecond later: two servers' writes of one change never hold the same times."""

    def __call__(self) -> datetime:
        return self.advance(timedelta(microseconds=1))


def _service(store: Store, clock: ManualClock) -> TaskService:
    signals = QueueSignals()
    queues = QueueService(store, clock, signals, cache_for=timedelta(0))
    return TaskService(store, TaskSettings(), clock, signals, queues)


@pytest.fixture
def service(store: Store, clock: ManualClock) -> TaskService:
    return _service(store, clock)


async def _dead(service: TaskService, task_id: str, queue: str = "q", kind: str = "k") -> Task:
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue=queue, kind=kind, id=task_id, retry_times=0))
    [claimed] = await service.claim("w", DEFAULT_PROJECT, [queue], 1, timedelta(0))
    assert claimed.id == task_id
    dead = await service.fail("w", QueueRef(DEFAULT_PROJECT, queue), task_id, {"why": "boom"})
    assert dead.state is TaskState.DEAD
    return dead


def _statuses(items: Sequence[object]) -> list[tuple[str, ReplayStatus]]:
    return [(i.id, i.status) for i in items]  # type: ignore[attr-defined]


async def test_replay_by_ids_keeps_history_and_gives_fresh_attempts(service: TaskService, clock: ManualClock) -> None:
    await _dead(service, "a")
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="queued"))
    clock.advance(timedelta(minutes=5))
    got = await service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id=i) for i in ("a", "queued", "nope", "a")])
    assert _statuses(got.items) == [
        ("a", ReplayStatus.REPLAYED), ("queued", ReplayStatus.NOT_DEAD), ("nope", ReplayStatus.NOT_FOUND),
    ]  # fmt: skip
    assert got.more is False
    task = got.items[0].task
    assert task is not None
    assert task.state is TaskState.QUEUED
    assert task.attempted == 0
    assert task.replayed == 1
    assert task.run_at == clock()
    assert task.last_claimed is not None
    assert task.last_claimed.result is not None
    assert task.last_claimed.result.failure == {"why": "boom"}
    # Claimable again, with its retries: one attempt more, and it can die and be replayed again.
    claimed = {t.id: t for t in await service.claim("w2", DEFAULT_PROJECT, ["q"], 5, timedelta(0))}
    assert claimed["a"].attempted == 1
    await service.fail("w2", Q, "a", {"why": "again"})
    again = await service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")])
    assert again.items[0].task is not None
    assert again.items[0].task.replayed == 2


async def test_replay_is_safe_to_repeat(service: TaskService) -> None:
    await _dead(service, "a")
    first = await service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")])
    second = await service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")])
    assert _statuses(first.items) == [("a", ReplayStatus.REPLAYED)]
    assert _statuses(second.items) == [("a", ReplayStatus.NOT_DEAD)]
    assert (await service.get(Q, "a")).replayed == 1


async def test_a_replay_racing_a_worker_and_another_replay(store: Store) -> None:
    service = _service(store, TickingClock(T0))
    await _dead(service, "a")
    [first] = (await service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")])).items
    assert first.status is ReplayStatus.REPLAYED
    # A worker claims what the replay queued while a second replay of the same id runs.
    claims, second = await asyncio.gather(
        service.claim("w2", DEFAULT_PROJECT, ["q"], 1, timedelta(0)),
        service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")]),
    )
    assert _statuses(second.items) == [("a", ReplayStatus.NOT_DEAD)]
    assert [t.id for t in claims] == ["a"]
    task = await service.get(Q, "a")
    assert task.state is TaskState.CLAIMED
    assert task.attempted == 1
    assert task.replayed == 1
    assert await service.claim("w3", DEFAULT_PROJECT, ["q"], 1, timedelta(0)) == []  # never two live claims
    # Two replays of one dead task at once: one puts it back, the other finds it no longer dead.
    await service.fail("w2", Q, "a", {"why": "again"}, task.claim_id)
    racing = await asyncio.gather(*(service.replay(DEFAULT_PROJECT, [TaskKey(queue="q", id="a")]) for _ in range(2)))
    assert sorted(r.items[0].status for r in racing) == [ReplayStatus.NOT_DEAD, ReplayStatus.REPLAYED]
    assert (await service.get(Q, "a")).replayed == 2


async def test_replay_by_filter_is_bounded_live_first_then_archived(service: TaskService, clock: ManualClock) -> None:
    for i in range(3):
        await _dead(service, f"old{i}")
        clock.advance(timedelta(seconds=1))
    assert await service.archive_finished(timedelta(seconds=0), 100) == 3
    clock.advance(timedelta(minutes=1))
    for i in range(2):
        await _dead(service, f"new{i}")
        clock.advance(timedelta(seconds=1))
    await _dead(service, "other-kind", kind="k2")
    await _dead(service, "other-queue", queue="q2")
    flt = DeadFilter(queue="q", kind="k")
    page = await service.replay(DEFAULT_PROJECT, flt=flt, limit=3)
    assert _statuses(page.items) == [(i, ReplayStatus.REPLAYED) for i in ("new0", "new1", "old0")]
    assert page.more is True
    page = await service.replay(DEFAULT_PROJECT, flt=flt, limit=2)
    assert _statuses(page.items) == [(i, ReplayStatus.REPLAYED) for i in ("old1", "old2")]
    assert page.more is False
    assert (await service.replay(DEFAULT_PROJECT, flt=flt)).items == []
    # The archived ones are live again, claimable, with their history.
    restored = await service.get(Q, "old2")
    assert (restored.state, restored.replayed) == (TaskState.QUEUED, 1)
    assert (await service.get(QueueRef(DEFAULT_PROJECT, "q2"), "other-queue")).state is TaskState.DEAD
    assert (await service.get(Q, "other-kind")).state is TaskState.DEAD
    claimed = await service.claim("w", DEFAULT_PROJECT, ["q"], 10, timedelta(0))
    assert sorted(t.id for t in claimed) == ["new0", "new1", "old0", "old1", "old2"]


async def test_replay_by_time_of_death(service: TaskService, clock: ManualClock) -> None:
    await _dead(service, "early")
    clock.advance(timedelta(hours=1))
    since = clock()
    await _dead(service, "middle")
    clock.advance(timedelta(hours=1))
    until = clock()
    await _dead(service, "late")
    got = await service.replay(DEFAULT_PROJECT, flt=DeadFilter(dead_since=since, dead_until=until))
    assert _statuses(got.items) == [("middle", ReplayStatus.REPLAYED)]
    assert (await service.get(Q, "early")).state is TaskState.DEAD


async def test_replay_refuses_what_is_unbounded_or_ambiguous(service: TaskService) -> None:
    with pytest.raises(InvalidInput):
        await service.replay(DEFAULT_PROJECT)
    with pytest.raises(InvalidInput):
        await service.replay(DEFAULT_PROJECT, [], DeadFilter(queue="q"))
    with pytest.raises(InvalidInput):
        await service.replay(DEFAULT_PROJECT, flt=DeadFilter(queue="q"), limit=1001)


async def test_run_now_makes_future_tasks_claimable(service: TaskService, clock: ManualClock) -> None:
    later = clock() + timedelta(hours=1)
    for i in range(3):
        await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id=f"later{i}", run_at=later))
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="due"))
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q2", kind="k", id="elsewhere", run_at=later))
    assert await service.run_queue_now(Q) == 3
    claimed = await service.claim("w", DEFAULT_PROJECT, ["q", "q2"], 10, timedelta(0))
    assert sorted(t.id for t in claimed) == ["due", "later0", "later1", "later2"]
    assert await service.run_queue_now(Q) == 0


async def test_delete_a_queue_while_claims_are_held(service: TaskService, clock: ManualClock) -> None:
    for task_id in ("claimed1", "claimed2"):
        await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id=task_id))
    held = await service.claim("w", DEFAULT_PROJECT, ["q"], 2, timedelta(0))
    assert len(held) == 2
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="queued"))
    await service.create(
        TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="later", run_at=clock() + timedelta(hours=1))
    )
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q2", kind="k", id="elsewhere"))
    await service.create(TaskSpec(project="p2", queue="q", kind="k", id="queued"))
    settled: list[str] = []
    service.on_settled.append(lambda tasks: settled.extend(t.id for t in tasks))
    with pytest.raises(InvalidInput):
        await service.delete_queue(Q, None, False)
    with pytest.raises(InvalidInput):
        await service.delete_queue(Q, "q2", False)
    gone = await service.delete_queue(Q, "q", False)
    assert (gone.deleted, gone.cancelled, gone.purged) == (2, 2, 0)
    assert sorted(settled) == ["claimed1", "claimed2", "later", "queued"]
    for task_id in ("queued", "later"):
        with pytest.raises(NotFound):
            await service.get(Q, task_id)
    for task in held:
        cancelled = await service.get(Q, task.id)
        assert (cancelled.state, cancelled.cancel_reason) == (TaskState.CANCELLED, "queue deleted")
        with pytest.raises(NotClaimed):  # the worker's done is refused (409)
            await service.done("w", Q, task.id, None, task.claim_id)
    assert (await service.get(QueueRef(DEFAULT_PROJECT, "q2"), "elsewhere")).state is TaskState.QUEUED
    assert (await service.get(QueueRef("p2", "q"), "queued")).state is TaskState.QUEUED
    # With history, the finished tasks go too, archived ones included.
    await _dead(service, "dead")
    clock.advance(timedelta(seconds=1))
    assert await service.archive_finished(timedelta(0), 100) == 3
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="new"))
    gone = await service.delete_queue(Q, "q", True)
    assert (gone.deleted, gone.cancelled, gone.purged) == (1, 0, 3)
    for task_id in ("claimed1", "dead", "new"):
        with pytest.raises(NotFound):
            await service.get(Q, task_id)
    assert (await service.get(QueueRef(DEFAULT_PROJECT, "q2"), "elsewhere")).state is TaskState.QUEUED


async def test_inspect_a_queue(service: TaskService, clock: ManualClock) -> None:
    await _dead(service, "dead")
    await service.create(TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="waited"))
    await service.create(
        TaskSpec(project=DEFAULT_PROJECT, queue="q", kind="k", id="later", run_at=clock() + timedelta(hours=1))
    )
    await service.queues.pause(Q)
    clock.advance(timedelta(seconds=30))
    seen = await service.inspect(Q)
    assert seen.counts.get(TaskState.QUEUED) == 2
    assert seen.counts.get(TaskState.DEAD) == 1
    assert seen.settings.paused is True
    assert seen.oldest_queued_age == timedelta(seconds=30)
    assert seen.finished_last_minute == 1
    clock.advance(timedelta(minutes=1))
    assert (await service.inspect(Q)).finished_last_minute == 0
    empty = await service.inspect(QueueRef(DEFAULT_PROJECT, "none"))
    assert (empty.counts, empty.oldest_queued_age, empty.settings.paused) == ({}, timedelta(0), False)
