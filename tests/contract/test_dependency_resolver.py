"""The dependency resolver over every store: a join of more dependencies than one read chunk, read cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.service.clock import ManualClock
from tasques.service.dependencies import DependencyResolver
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.task_creation import DEPENDENCY_READ_CHUNK
from tasques.service.tasks import TaskService, TaskSettings, TaskSpec, WorkerUpdate
from tasques.store.base import Store
from tests.contract import T0


class CountingReads:
    """The store, counting `get_tasks` calls and keys."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls = 0
        self.keys = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_tasks(self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT) -> list[Task | None]:
        self.calls += 1
        self.keys += len(keys)
        return await self._inner.get_tasks(keys, project=project)


async def test_a_big_join_is_released_after_its_last_dependency_reading_little(store: Store) -> None:
    counting = CountingReads(store)
    clock, signals = ManualClock(T0), QueueSignals()
    tasks = TaskService(counting, TaskSettings(), clock, signals, QueueService(counting, clock, signals))
    resolver = DependencyResolver(counting, tasks)
    tasks.on_settled.append(resolver.on_settled)
    tasks.on_waiting.append(resolver.on_waiting)
    n = DEPENDENCY_READ_CHUNK + 500
    for start in range(0, n, 1000):
        specs = [
            TaskSpec(queue="f", kind="k", id=f"f{i}", project=DEFAULT_PROJECT)
            for i in range(start, min(n, start + 1000))
        ]
        await tasks.create_many(specs)
    deps = tuple(TaskKey(queue="f", id=f"f{i}") for i in range(n))
    join = await tasks.create(TaskSpec(queue="j", kind="k", id="join", depends_on=deps, project=DEFAULT_PROJECT))
    assert join.state is TaskState.WAITING
    await resolver.idle()
    # Elasticsearch looks at each settled key twice (a second pass after its search delay, which may land in the
    # next batch's window): twice the reads.
    per_batch = 2 if store.search_delay.total_seconds() == 0 else 4
    finished = 0
    while finished < n:
        claimed = await tasks.claim("w", DEFAULT_PROJECT, ["f"], 500, block_for=None)
        assert claimed
        before = counting.calls
        await tasks.done_many("w", DEFAULT_PROJECT, [WorkerUpdate(t.queue, t.id, t.claim_id) for t in claimed])
        await resolver.idle()
        # One pass per finishing batch: at most a chunk read past the dependencies already seen done.
        assert counting.calls - before <= per_batch
        finished += len(claimed)
        state = (await tasks.get(QueueRef(DEFAULT_PROJECT, "j"), "join")).state
        assert state is (TaskState.QUEUED if finished == n else TaskState.WAITING)
    assert counting.keys < 4 * n  # not a read of every dependency per finish
