"""Response bodies of the worker registry routes (`GET /workers`, drain and resume)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tasques.domain.worker import WorkerState
from tasques.service.workers import WorkerView


class WorkerInfo(BaseModel):
    id: str = Field(description="the worker id (X-TASQUES-WORKER-ID)")
    state: WorkerState = Field(description="active; draining; gone once silent for the server's workers.gone_after")
    queues: list[str] = Field(description="the queues it has claimed from, sorted")
    first_seen_at: datetime = Field(description="when a server first saw it (to within a second)")
    last_seen_at: datetime = Field(description="when a server last saw it claim or report")
    claims_held: int = Field(description="tasks it holds claimed now")
    version: str | None = Field(None, description="what it sent as X-TASQUES-WORKER-VERSION")
    host: str | None = Field(None, description="what it sent as X-TASQUES-WORKER-HOST")
    draining: bool = Field(description="put to drain: its claims return nothing until it is resumed")

    @classmethod
    def of(cls, view: WorkerView) -> WorkerInfo:
        r = view.record
        return cls(
            id=r.id,
            state=view.state,
            queues=r.queues,
            first_seen_at=r.first_seen_at,
            last_seen_at=r.last_seen_at,
            claims_held=view.claims_held,
            version=r.version,
            host=r.host,
            draining=r.draining,
        )


class WorkerList(BaseModel):
    workers: list[WorkerInfo] = Field(description="the project's workers, by id")
