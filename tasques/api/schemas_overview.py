"""Response bodies of the dashboard's reads: `GET /overview` and `GET /schedules/preview`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasques.api.schemas import StateCounts, UtcDatetime
from tasques.service.overview import THROUGHPUT_MINUTES


class ServerInfo(BaseModel):
    id: str = Field(description="the id of the server that answered (its leader lock holder name)")
    leader: bool = Field(description="whether that server leads (runs the housekeeping) now")


class LeaderInfo(BaseModel):
    holder: str = Field(description="the id of the server holding the leader lock")
    expires_at: UtcDatetime = Field(description="when its lease runs out unless renewed")


class QueueOverview(BaseModel):
    queue: str
    counts: StateCounts = Field(description="live (not archived) tasks by state, every state")
    paused: bool = Field(description="a paused queue hands no task to claims or to the dispatcher")
    oldest_queued_age_seconds: float = Field(
        description="how long the queued or failed task due earliest has been due (0 when none is due)"
    )
    finished_per_minute: list[int] = Field(
        description="tasks that became done, dead or cancelled in each of `minutes`, in the same order"
    )


class OverviewBody(BaseModel):
    store: str = Field(description="the store kind: sqlite or elasticsearch")
    server: ServerInfo
    leader: LeaderInfo | None = Field(description="the live leader lease; null when no server holds one")
    minutes: list[UtcDatetime] = Field(
        description=f"the starts of the last {THROUGHPUT_MINUTES} minutes (UTC), oldest first; the last is the "
        "current minute, still running"
    )
    queues: list[QueueOverview] = Field(
        description="every queue of the project with live tasks or stored settings, by name"
    )


class SchedulePreview(BaseModel):
    expression: str
    next: list[UtcDatetime] = Field(description="the next fire times after now (UTC), oldest first")
