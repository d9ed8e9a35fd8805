"""Queue operations: inspect a queue, make its waiting tasks claimable now, delete its tasks (and history).

Run-now and delete page through the queue's tasks with `list_tasks` (1,000 at a time) and write each page in one
store trip. A delete removes queued, failed and waiting tasks conditionally on the version listed; one a worker
claimed meanwhile (a version conflict) is cancelled instead, as every claimed task is, so its worker's later
report/done/failed get 409. Whatever waits on the removed tasks (dependents, batches) learns through `settled`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasques.domain.errors import FieldProblem, InvalidInput, NotClaimed, VersionConflict
from tasques.domain.queue import QueueSettings
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskState
from tasques.service.events import Outcome
from tasques.service.task_core import Modification, TaskCore
from tasques.store.base import QueueCounts, TaskFilter

PAGE = 1000
# "Finished in the last minute".
RECENT = timedelta(minutes=1)
DELETE_REASON = "queue deleted"
_WAITING_TO_RUN = frozenset({TaskState.QUEUED, TaskState.FAILED})
_DELETED = frozenset({TaskState.QUEUED, TaskState.FAILED, TaskState.WAITING})


@dataclass(frozen=True)
class QueueInspection:
    queue: str
    counts: dict[TaskState, int]
    settings: QueueSettings
    oldest_queued_age: timedelta  # of the task that has waited longest for a worker; zero when none is due
    finished_last_minute: int


@dataclass(frozen=True)
class QueueDeletion:
    deleted: int  # queued, failed and waiting tasks removed
    cancelled: int  # claimed tasks (and tasks claimed meanwhile) cancelled
    purged: int  # finished tasks removed, live and archived (history=true)


def oldest_queued_age(counts: QueueCounts | None, now: datetime) -> timedelta:
    """How long the queue's queued or failed task due earliest has been due; zero when none is due."""
    earliest = counts.earliest_run_at if counts is not None else None
    return now - earliest if earliest is not None and earliest <= now else timedelta(0)


class QueueOperations(TaskCore):
    async def inspect(self, ref: QueueRef) -> QueueInspection:
        now = self._clock()
        counts = next((c for c in await self._store.queue_counts(project=ref.project) if c.queue == ref.queue), None)
        return QueueInspection(
            queue=ref.queue,
            counts=dict(counts.counts) if counts is not None else {},
            settings=await self._queues.get(ref),
            oldest_queued_age=oldest_queued_age(counts, now),
            finished_last_minute=await self._store.count_finished_since(ref.queue, now - RECENT, project=ref.project),
        )

    async def run_queue_now(self, ref: QueueRef) -> int:
        """Make every queued or failed task of the queue due later claimable now; returns how many changed."""
        changed = 0
        async for page in self._pages(ref, _WAITING_TO_RUN):
            now = self._clock()
            later = [t for t in page if t.run_at > now]
            if later:
                results = await self.modify_many([Modification(ref, t.id, _run_now_if_later) for t in later])
                changed += sum(1 for r in results if isinstance(r, Task))
        self._signals.notify(ref)
        return changed

    async def delete_queue(self, ref: QueueRef, confirm: str | None, history: bool) -> QueueDeletion:
        if confirm != ref.queue:
            raise InvalidInput(
                "the queue was not deleted", [FieldProblem("confirm", "must be given, and equal the queue's name")]
            )
        deleted = cancelled = 0
        async for page in self._pages(ref, _DELETED | {TaskState.CLAIMED}):
            removable = [t for t in page if t.state in _DELETED]
            to_cancel = [t.id for t in page if t.state not in _DELETED]
            gone: list[Task] = []
            for task, result in zip(removable, await self._store.delete_tasks(removable), strict=True):
                if isinstance(result, Task):
                    gone.append(result)
                elif isinstance(result, VersionConflict):
                    to_cancel.append(task.id)  # changed since listed (claimed, most likely): cancel what it is now
            deleted += len(gone)
            self.settled(gone)
            if to_cancel:
                results = await self.modify_many([Modification(ref, i, _cancel_for_delete) for i in to_cancel])
                self._finished(results, Outcome.CANCELLED)
                cancelled += sum(1 for r in results if isinstance(r, Task))
        purged = await self._store.purge_finished(ref.queue, project=ref.project) if history else 0
        return QueueDeletion(deleted=deleted, cancelled=cancelled, purged=purged)

    async def _pages(self, ref: QueueRef, states: frozenset[TaskState]) -> AsyncIterator[list[Task]]:
        """Every live task of the queue in these states, a page at a time. The keyset cursor is a position
        (created_at, queue, id), so changing or deleting the tasks of one page never moves the next."""
        flt = TaskFilter(project=ref.project, queue=ref.queue, states=states)
        cursor: str | None = None
        while True:
            page = await self._store.list_tasks(flt, PAGE, cursor)
            if page.tasks:
                yield page.tasks
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


def _run_now_if_later(task: Task, now: datetime) -> Task:
    if task.is_claimable_at(now):
        raise NotClaimed(f"task {task.id} in queue {task.queue} is already due")  # nothing to write
    return task.run_now(now)


def _cancel_for_delete(task: Task, now: datetime) -> Task:
    return task.cancelled(now, reason=DELETE_REASON)
