"""Batches: many tasks created under one id, counted together, with an optional callback task.

The callback (`on_complete`) is created once every task of the batch has finished (done, dead or cancelled),
with the batch's counts in its args. Its id is derived from the batch id, so two servers that both see the
batch complete create it once: the second insert is refused as a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.limits import DEFAULT_PROJECT, ID_PATTERN, MAX_ID_LENGTH
from tasques.domain.recurring import TaskDefinition
from tasques.domain.task import FINISHED_STATES, Metadata, NewTask, TaskKey, TaskState

# The callback's id is `{batch id}{CALLBACK_SUFFIX}`, and must still be a task id.
CALLBACK_SUFFIX = ".done"
MAX_BATCH_ID_LENGTH = MAX_ID_LENGTH - len(CALLBACK_SUFFIX)
# The most tasks one batch is created with (written MAX_BATCH_ITEMS at a time).
MAX_BATCH_TASKS = 5000
# The key of the callback's args that holds the batch summary (merged over the definition's own args).
CALLBACK_ARG = "batch"

BatchId = Annotated[str, Field(min_length=1, max_length=MAX_BATCH_ID_LENGTH, pattern=ID_PATTERN)]


class Batch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="the batch id")
    project: str = Field(DEFAULT_PROJECT, description="the project the batch belongs to")
    total: int = Field(description="how many tasks the batch was created with")
    on_complete: TaskDefinition | None = Field(None, description="the task created when every task has finished")
    callback: TaskKey | None = Field(None, description="the callback task, once created")
    completed_at: datetime | None = Field(None, description="when every task of the batch had finished")
    failed_at: datetime | None = Field(
        None, description="when creating the batch's tasks failed part way: a failed batch never completes"
    )
    failure: str | None = Field(None, description="why creating the batch's tasks failed")
    deleted: int = Field(0, description="tasks of the batch deleted before they finished (DELETE /queues)")
    metadata: Metadata

    @property
    def open(self) -> bool:
        """Still waiting for its tasks to finish (neither completed nor failed)."""
        return self.completed_at is None and self.failed_at is None

    @property
    def callback_id(self) -> str:
        return callback_id(self.id)

    def completed(self, at: datetime, callback: TaskKey | None) -> Batch:
        return self.model_copy(update={"completed_at": at, "callback": callback})

    def with_deleted(self, count: int) -> Batch:
        return self.model_copy(update={"deleted": self.deleted + count})

    def failed(self, at: datetime, failure: str) -> Batch:
        return self.model_copy(update={"failed_at": at, "failure": failure[:1000]})

    def callback_task(
        self, counts: Mapping[TaskState, int], at: datetime, retry_times: int, processing_timeout: timedelta
    ) -> NewTask:
        """The `on_complete` task, to run at `at`, with the summary in its args
        under `batch`: `{"id": ..., "total": ..., "counts": {"done": n, "dead": n, "cancelled": n, ...}}`."""
        d = self.on_complete
        if d is None:
            raise ValueError(f"batch {self.id} has no on_complete task")
        args: dict[str, Any] = {**(d.args or {}), CALLBACK_ARG: summary(self, counts)}
        return NewTask(
            id=self.callback_id,
            queue=d.queue,
            kind=d.kind,
            priority=d.priority,
            run_at=at,
            retry_times=d.retry_times if d.retry_times is not None else retry_times,
            processing_timeout=d.processing_timeout if d.processing_timeout is not None else processing_timeout,
            args=args,
            context=d.context,
            http_request=d.http_request,
            retry_policy=d.retry_policy,
            sensitive=d.sensitive,
            project=self.project,
        )


def callback_id(batch_id: str) -> str:
    return f"{batch_id}{CALLBACK_SUFFIX}"


def finished_count(counts: Mapping[TaskState, int]) -> int:
    return sum(n for state, n in counts.items() if state in FINISHED_STATES)


def is_finished(batch: Batch, counts: Mapping[TaskState, int]) -> bool:
    """Every task the batch was created with has finished. Tasks not yet visible (a search lags, or their creation
    is still going on) are not counted at all, so a batch never completes early. Deleted tasks (no longer
    counted) count as finished: they will never run."""
    return finished_count(counts) + batch.deleted >= batch.total


def may_be_finished_elsewhere(counts: Mapping[TaskState, int]) -> bool:
    """No task of the batch still waits to run: the ones not counted finished are claimed (or not visible yet), so
    another server may have just finished them where a search cannot see it yet."""
    return not any(counts.get(s, 0) for s in (TaskState.QUEUED, TaskState.FAILED, TaskState.WAITING))


def summary(batch: Batch, counts: Mapping[TaskState, int]) -> dict[str, Any]:
    """What the callback's args carry under `batch`."""
    return {
        "id": batch.id,
        "total": batch.total,
        "counts": {s.value: counts.get(s, 0) for s in TaskState},
        "deleted": batch.deleted,
    }
