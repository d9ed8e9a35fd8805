"""Recurring tasks: a task definition enqueued at every slot of a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.http_target import HttpRequest
from tasques.domain.limits import (
    DEFAULT_PROJECT,
    MAX_PRIORITY,
    MAX_PROCESSING_TIMEOUT,
    MAX_RETRY_TIMES,
    MIN_PRIORITY,
    Kind,
    ProcessingTimeout,
    QueueName,
    at_most,
)
from tasques.domain.retry import RetryPolicy
from tasques.domain.schedule import Schedule, due_slots, parse_schedule
from tasques.domain.task import JsonObj, Metadata, NewTask

# Longest `last_error` text kept on a recurring task.
MAX_ERROR = 1000


class TaskDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: QueueName = Field(description="the queue tasks are enqueued into")
    kind: Kind = Field(description="the kind of task")
    priority: int = Field(0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="higher runs first (32-bit)")
    retry_times: int | None = Field(None, ge=0, le=MAX_RETRY_TIMES, description="retries; the server default if absent")
    processing_timeout: ProcessingTimeout | None = Field(
        None, description=f"the server default if absent; {at_most(MAX_PROCESSING_TIMEOUT)}"
    )
    args: JsonObj | None = Field(None, description="arguments for each task")
    context: JsonObj | None = Field(None, description="context for each task")
    http_request: HttpRequest | None = Field(None, description="makes each task an HTTP-target task")
    retry_policy: RetryPolicy | None = Field(None, description="each task's retry policy")
    sensitive: bool = Field(
        False, description="each task's args and context are encrypted at rest (refused without encryption keys)"
    )


class RecurringTask(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="user-chosen id", examples=["repeat-every-minute"])
    schedule_expression: str = Field(description="cron, a macro such as @daily, or @every <duration>")
    task_definition: TaskDefinition
    skip_if_outstanding_tasks_exist: bool = Field(
        False, description="skip a slot while a task enqueued by this one is not yet done or dead"
    )
    loaded_at: datetime | None = Field(None, description="when the scheduler last loaded this definition")
    last_slot_at: datetime | None = Field(None, description="the last schedule slot that was handled")
    last_error: str | None = Field(
        None, description="why the scheduler last failed to enqueue a slot; cleared once a slot enqueues again"
    )
    last_error_at: datetime | None = Field(
        None, description="when `last_error` first happened (passes since may have failed the same way)"
    )
    project: str = Field(DEFAULT_PROJECT, description="the project (tenant) the recurring task belongs to")
    metadata: Metadata

    @property
    def schedule(self) -> Schedule:
        return parse_schedule(self.schedule_expression)

    def due_slot(self, now: datetime) -> datetime | None:
        """The latest slot at or before `now` that has not been handled yet, if any.

        Missed slots (the server was down) collapse into the latest one, as cron does, rather than firing
        a burst of catch-up tasks.
        """
        since = self.last_slot_at or self.metadata.created_at
        latest = self.schedule.latest_at_or_before(now)
        return latest if latest > since else None

    def due_slots(self, now: datetime, window: timedelta, max_slots: int) -> list[datetime]:
        """The slots to enqueue at `now`, oldest first: each one missed within the catch-up `window`, or the
        latest alone after a longer gap (see `tasques.domain.schedule.due_slots`)."""
        return due_slots(self.schedule, self.last_slot_at or self.metadata.created_at, now, window, max_slots)

    def task_id_for(self, slot: datetime) -> str:
        """Deterministic: the same (recurring task, slot) always gives the same id, so a slot enqueues once."""
        return f"{self.id}@{slot.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"

    def new_task(self, slot: datetime, retry_times: int, processing_timeout: timedelta) -> NewTask:
        d = self.task_definition
        return NewTask(
            id=self.task_id_for(slot),
            queue=d.queue,
            kind=d.kind,
            priority=d.priority,
            run_at=slot,
            retry_times=d.retry_times if d.retry_times is not None else retry_times,
            processing_timeout=d.processing_timeout if d.processing_timeout is not None else processing_timeout,
            args=d.args,
            context=d.context,
            recurring_task_id=self.id,
            http_request=d.http_request,
            retry_policy=d.retry_policy,
            sensitive=d.sensitive,
            project=self.project,
        )

    def handled(self, slot: datetime) -> RecurringTask:
        # Bookkeeping, not a user edit: metadata.modified_at stays as the user last left it.
        return self.model_copy(update={"last_slot_at": slot})

    def failed_to_enqueue(self, error: str, at: datetime) -> RecurringTask:
        # The same error again keeps its first time, so a lasting problem is not rewritten every pass.
        text = error[:MAX_ERROR]
        if text == self.last_error:
            return self
        return self.model_copy(update={"last_error": text, "last_error_at": at})

    def enqueued_fine(self) -> RecurringTask:
        if self.last_error is None and self.last_error_at is None:
            return self
        return self.model_copy(update={"last_error": None, "last_error_at": None})

    def loaded(self, at: datetime) -> RecurringTask:
        return self.model_copy(update={"loaded_at": at})
