"""Weighted claims (`TaskService.claim(weights=...)`) on every store, and the worker registry's drain as another
server learns it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task
from tasques.domain.worker import WorkerState
from tasques.service.clock import ManualClock
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec
from tasques.service.weighted import WeightedSplit
from tasques.service.workers import WorkerRegistry, WorkerSettings
from tasques.store.base import Store
from tests.contract import T0, make_task

P = DEFAULT_PROJECT


def _service(store: Store, clock: ManualClock) -> TaskService:
    signals = QueueSignals()
    return TaskService(store, TaskSettings(), clock, signals, QueueService(store, clock, signals))


async def _fill(store: Store, queue: str, n: int) -> None:
    await store.insert_tasks([make_task(queue, f"{queue}{i}") for i in range(n)])


def _queues(tasks: list[Task]) -> Counter[str]:
    return Counter(t.queue for t in tasks)


async def test_an_amount_is_split_by_weight(store: Store) -> None:
    await _fill(store, "a", 20)
    await _fill(store, "b", 20)
    service = _service(store, ManualClock(T0))
    got = await service.claim("w", P, [], 4, timedelta(0), weights={"a": 3, "b": 1})
    assert _queues(got) == {"a": 3, "b": 1}
    got = await service.claim("w", P, [], 8, timedelta(0), weights={"a": 3, "b": 1})
    assert _queues(got) == {"a": 6, "b": 2}


async def test_one_at_a_time_each_queue_gets_its_share_and_none_starves(store: Store) -> None:
    await _fill(store, "a", 40)
    await _fill(store, "b", 40)
    service = _service(store, ManualClock(T0))
    order = []
    for _ in range(40):
        (task,) = await service.claim("w", P, [], 1, timedelta(0), weights={"a": 3, "b": 1})
        order.append(task.queue)
    assert Counter(order) == {"a": 30, "b": 10}
    # Never starved: b comes up in every run of four claims.
    assert all("b" in order[i : i + 4] for i in range(0, 40, 4)), order


async def test_an_empty_queue_gives_its_share_to_the_others(store: Store) -> None:
    await _fill(store, "b", 10)
    service = _service(store, ManualClock(T0))
    got = await service.claim("w", P, [], 4, timedelta(0), weights={"a": 3, "b": 1})
    assert _queues(got) == {"b": 4}
    (one,) = await service.claim("w", P, [], 1, timedelta(0), weights={"a": 3, "b": 1})
    assert one.queue == "b"
    # A short queue gives what it lacks too.
    await _fill(store, "a", 1)
    got = await service.claim("w", P, [], 4, timedelta(0), weights={"a": 3, "b": 1})
    assert _queues(got) == {"a": 1, "b": 3}


async def test_plain_queues_weigh_one(store: Store) -> None:
    await _fill(store, "a", 10)
    await _fill(store, "b", 10)
    service = _service(store, ManualClock(T0))
    got = await service.claim("w", P, ["b"], 4, timedelta(0), weights={"a": 3})
    assert _queues(got) == {"a": 3, "b": 1}


async def test_a_blocked_weighted_claim_wakes_for_any_of_its_queues(store: Store) -> None:
    service = _service(store, ManualClock(T0))
    pending = asyncio.create_task(service.claim("w", P, [], 2, timedelta(seconds=10), weights={"a": 5, "b": 1}))
    await asyncio.sleep(0.1)
    await service.create(TaskSpec(project=P, queue="b", kind="k", id="late"))
    got = await asyncio.wait_for(pending, 5)
    assert [t.id for t in got] == ["late"]


def test_the_split_is_smooth_weighted_round_robin_at_amount_one() -> None:
    split = WeightedSplit()
    picks = [next(iter(split.split(P, {"a": 5, "b": 1, "c": 1}, 1))) for _ in range(7)]
    assert picks == ["a", "a", "b", "a", "c", "a", "a"]
    # Amounts summing right, and fair over time, whatever the amount.
    totals: Counter[str] = Counter()
    for amount in (2, 3, 5, 1, 7, 2) * 10:
        seats = split.split(P, {"a": 2, "b": 1}, amount)
        assert sum(seats.values()) == amount
        totals.update(seats)
    assert abs(totals["a"] - 2 * totals["b"]) <= 3


async def test_a_drain_through_another_server_applies_within_its_refresh(store: Store) -> None:
    clock = ManualClock(T0)
    settings = WorkerSettings(flush_every=timedelta(milliseconds=50), refresh_every=timedelta(milliseconds=50))
    here, there = WorkerRegistry(store, clock, settings), WorkerRegistry(store, clock, settings)
    here.start()
    try:
        here.seen(P, "w", ["q"], "1.0", "h")
        await asyncio.sleep(0.2)  # flushed
        view = await there.drain(P, "w")
        assert (view.state, view.record.version) == (WorkerState.DRAINING, "1.0")
        assert there.draining(P, "w")
        for _ in range(100):
            if here.draining(P, "w"):
                break
            await asyncio.sleep(0.05)
        assert here.draining(P, "w")
        await there.resume(P, "w")
        for _ in range(100):
            if not here.draining(P, "w"):
                break
            await asyncio.sleep(0.05)
        assert not here.draining(P, "w")
    finally:
        await here.close()
        await there.close()
