"""The store contract: every backend must pass these tests. Helpers to build records live here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.retry import BackoffPolicy
from tasques.domain.task import Metadata, NewTask, Task, TaskState

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BACKOFF = BackoffPolicy()


def ts(seconds: float) -> datetime:
    """A fixed instant `seconds` after T0; tests never read the clock."""
    return T0 + timedelta(seconds=seconds)


def make_task(
    queue: str = "q",
    id: str | None = None,
    *,
    priority: int = 0,
    run_at: datetime | None = None,
    at: datetime = T0,
    kind: str = "k",
    retry_times: int = 3,
    processing_timeout: timedelta = timedelta(minutes=1),
    recurring_task_id: str | None = None,
    args: dict[str, Any] | None = None,
    project: str = DEFAULT_PROJECT,
) -> Task:
    new = NewTask(
        queue=queue,
        kind=kind,
        id=id if id is not None else uuid.uuid4().hex,
        priority=priority,
        run_at=run_at if run_at is not None else at,
        retry_times=retry_times,
        processing_timeout=processing_timeout,
        args=args,
        recurring_task_id=recurring_task_id,
        project=project,
    )
    return Task.create(new, at)


def finished(task: Task, when: datetime, *, dead: bool = False, worker: str = "w") -> Task:
    """The task taken to done (or, failing every attempt, to dead) at `when`, without touching a store."""
    if not dead:
        return task.claimed(worker, when, "c1").done(worker, {"ok": True}, when)
    while task.state is not TaskState.DEAD:
        task = task.claimed(worker, when, "c1").failed(worker, {"boom": True}, when, BACKOFF)
    return task


def make_recurring(
    id: str = "every-minute", *, at: datetime = T0, queue: str = "q", project: str = DEFAULT_PROJECT
) -> RecurringTask:
    return RecurringTask(
        project=project,
        id=id,
        schedule_expression="@every 1m",
        task_definition=TaskDefinition(queue=queue, kind="k"),
        metadata=Metadata(created_at=at, modified_at=at),
    )


def claim_as(worker: str, when: datetime) -> Callable[[Task], Task]:
    """A claim `change` for `Store.claim_tasks`."""

    def change(task: Task) -> Task:
        return task.claimed(worker, when, "c1")

    return change
