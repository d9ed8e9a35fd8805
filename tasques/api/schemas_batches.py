"""Request and response bodies of `/batches`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tasques.api.schemas import NewTask
from tasques.domain.batch import CALLBACK_SUFFIX, MAX_BATCH_ID_LENGTH, MAX_BATCH_TASKS, BatchId
from tasques.domain.recurring import TaskDefinition
from tasques.domain.task import TaskKey


class NewBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: BatchId | None = Field(
        None,
        description=f"the batch id (at most {MAX_BATCH_ID_LENGTH} characters); a UUID is generated when absent. "
        "Reusing one gives 409",
    )
    tasks: list[NewTask] = Field(
        min_length=1,
        max_length=MAX_BATCH_TASKS,
        description=f"1 to {MAX_BATCH_TASKS:,} tasks, each as for POST /tasques; if any is invalid, none is created",
    )
    on_complete: TaskDefinition | None = Field(
        None,
        description=f"a task created once, when every task of the batch has finished (done, dead or cancelled), "
        f"with the id `<batch id>{CALLBACK_SUFFIX}` and args: its own args plus `batch`: "
        '`{"id": ..., "total": n, "counts": {"done": n, "dead": n, "cancelled": n, ...}}`',
    )


class BatchCounts(BaseModel):
    """The batch's tasks (live and archived) by state."""

    waiting: int = 0
    queued: int = 0
    claimed: int = 0
    failed: int = 0
    done: int = 0
    dead: int = 0
    cancelled: int = 0


class BatchStatus(BaseModel):
    id: str = Field(description="the batch id")
    total: int = Field(description="how many tasks the batch was created with")
    counts: BatchCounts
    finished: int = Field(description="tasks done, dead or cancelled")
    deleted: int = Field(0, description="tasks deleted before they finished (DELETE /queues); they count as finished")
    completed: bool = Field(description="every task has finished (and the on_complete task, if any, is created)")
    completed_at: datetime | None = Field(None, description="when the batch completed")
    on_complete: TaskDefinition | None = Field(None, description="the task created when the batch completes")
    callback: TaskKey | None = Field(None, description="the on_complete task (queue and id), once created")
    failed_at: datetime | None = Field(
        None, description="set when creating the batch's tasks failed part way: such a batch never completes"
    )
    failure: str | None = Field(None, description="why creating the batch's tasks failed")
    created_at: datetime = Field(description="when the batch was created")
