"""Request and response bodies of dead-letter replay and the queue operations (`GET/DELETE /queues/{queue}`,
`PUT /queues/{queue}/run-now`). New routes, so requests refuse unknown fields (no original client to keep)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasques.api.schemas import StateCounts, UtcDatetime
from tasques.domain.limits import DEFAULT_REPLAY, MAX_REPLAY, Identifier, Kind, QueueName
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplayKey(_Strict):
    queue: QueueName = Field(description="the task's queue")
    id: Identifier = Field(description="the task's id")


class ReplayRequest(_Strict):
    """Either `ids`, or a filter (any of `queue`, `kind`, `dead_since`, `dead_until`, with `limit`)."""

    ids: list[ReplayKey] | None = Field(
        None, min_length=1, max_length=MAX_REPLAY, description=f"1 to {MAX_REPLAY:,} dead tasks, live or archived"
    )
    queue: QueueName | None = Field(None, description="filter: dead tasks of this queue")
    kind: Kind | None = Field(None, description="filter: dead tasks of this kind")
    dead_since: UtcDatetime | None = Field(None, description="filter: dead at or after this time")
    dead_until: UtcDatetime | None = Field(None, description="filter: dead before this time")
    limit: int | None = Field(
        None, ge=1, le=MAX_REPLAY, description=f"filter: put back at most this many (default {DEFAULT_REPLAY})"
    )

    @property
    def has_filter(self) -> bool:
        return any(v is not None for v in (self.queue, self.kind, self.dead_since, self.dead_until))


class ReplayItem(BaseModel):
    queue: str
    id: str
    status: Literal["replayed", "not_dead", "not_found"] = Field(
        description="replayed: queued again; not_dead: not dead (any more), left as it is; not_found: no such task"
    )
    task: Task | None = Field(None, description="the task as stored now, when replayed")


class ReplayResult(BaseModel):
    results: list[ReplayItem] = Field(description="one per task: by ids, in request order; else oldest death first")
    more: bool = Field(description="more dead tasks match the filter: send the same request again for the next ones")


class QueueDetail(BaseModel):
    queue: str
    counts: StateCounts = Field(description="live (not archived) tasks by state")
    paused: bool = Field(description="a paused queue hands no task to claims or to the dispatcher")
    settings: QueueSettings
    oldest_queued_age_seconds: float = Field(
        description="how long the queued or failed task due earliest has been due (0 when none is due)"
    )
    finished_last_minute: int = Field(description="tasks that became done, dead or cancelled in the last minute")


class RunNowResult(BaseModel):
    queue: str
    run_now: int = Field(description="queued or failed tasks due later that are now claimable")


class QueueDeletion(BaseModel):
    queue: str
    deleted: int = Field(description="queued, failed and waiting tasks removed")
    cancelled: int = Field(description="claimed tasks cancelled: their workers' report/done/failed get 409")
    purged: int = Field(description="finished tasks removed, live and archived (with history=true)")
