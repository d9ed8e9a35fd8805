"""What the services tell observers (metrics, traces) about tasks. The services call these; they never read back.

Every method is called on the event loop, after the store has accepted the write, with the tasks as stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tasques.domain.task import Task


class Source(StrEnum):
    """How a task came to be queued."""

    API = "api"  # POST /tasques
    BULK = "bulk"  # POST /tasques/bulk
    RECURRING = "recurring"  # a recurring task's slot
    REPEAT = "repeat"  # a repeating HTTP task queued again after a success
    BATCH = "batch"  # POST /batches, and a batch's on_complete task
    REPLAY = "replay"  # a dead task put back by POST /tasques/replay


class Outcome(StrEnum):
    """How a claim ended, as the caller asked for it; observers label a task that ended dead as dead."""

    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    TIMED_OUT = "timed_out"
    UNCLAIMED = "unclaimed"
    CANCELLED = "cancelled"


class RecurringOutcome(StrEnum):
    ENQUEUED = "enqueued"
    SKIPPED = "skipped"
    ERROR = "error"


class TaskEvents(Protocol):
    def created(self, tasks: Sequence[Task], source: Source) -> None: ...

    def claimed(self, tasks: Sequence[Task], at: datetime) -> None: ...

    def finished(self, tasks: Sequence[Task], outcome: Outcome, at: datetime) -> None: ...

    def conflicts(self, queue: str, count: int) -> None:
        """Conditional writes of tasks of `queue` that lost a race (and were retried or given up)."""

    def recurring_run(self, outcome: RecurringOutcome) -> None: ...

    def leadership(self, leading: bool) -> None:
        """This server became (True) or stopped being (False) the leader."""

    def dispatched(self, queue: str, status: int | None, seconds: float) -> None:
        """One HTTP-target request ended: its status, or None when no response came (refused, timeout, error)."""


class NoEvents:
    """The default observer: nothing is recorded."""

    def created(self, tasks: Sequence[Task], source: Source) -> None:
        pass

    def claimed(self, tasks: Sequence[Task], at: datetime) -> None:
        pass

    def finished(self, tasks: Sequence[Task], outcome: Outcome, at: datetime) -> None:
        pass

    def conflicts(self, queue: str, count: int) -> None:
        pass

    def recurring_run(self, outcome: RecurringOutcome) -> None:
        pass

    def leadership(self, leading: bool) -> None:
        pass

    def dispatched(self, queue: str, status: int | None, seconds: float) -> None:
        pass


# The default observer of every service and loop: one shared instance, as the tracing default is.
NO_EVENTS: TaskEvents = NoEvents()


class AllOf:
    """Tells every observer, in order (metrics, traces, logs each add one in the composition root)."""

    def __init__(self, observers: Sequence[TaskEvents]) -> None:
        self._observers = tuple(observers)

    def created(self, tasks: Sequence[Task], source: Source) -> None:
        for o in self._observers:
            o.created(tasks, source)

    def claimed(self, tasks: Sequence[Task], at: datetime) -> None:
        for o in self._observers:
            o.claimed(tasks, at)

    def finished(self, tasks: Sequence[Task], outcome: Outcome, at: datetime) -> None:
        for o in self._observers:
            o.finished(tasks, outcome, at)

    def conflicts(self, queue: str, count: int) -> None:
        for o in self._observers:
            o.conflicts(queue, count)

    def recurring_run(self, outcome: RecurringOutcome) -> None:
        for o in self._observers:
            o.recurring_run(outcome)

    def leadership(self, leading: bool) -> None:
        for o in self._observers:
            o.leadership(leading)

    def dispatched(self, queue: str, status: int | None, seconds: float) -> None:
        for o in self._observers:
            o.dispatched(queue, status, seconds)


def all_of(observers: Sequence[TaskEvents]) -> TaskEvents:
    """One observer for `observers`: NO_EVENTS when there are none, the observer itself when there is one."""
    if not observers:
        return NO_EVENTS
    if len(observers) == 1:
        return observers[0]
    return AllOf(observers)
