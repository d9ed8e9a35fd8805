"""The worker registry: what the server knows of each worker id that claims or reports, and drain.

A record is per (project, worker id). Sightings (claims and reports) update it; the drain flag is set only by
an operator (`PUT /workers/{id}/drain`) and survives sightings. The state is derived from the record and the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.limits import DEFAULT_PROJECT

# The most queue names a worker's record keeps (the first, sorted): a worker claiming from ever new queues
# cannot grow its record without bound.
MAX_WORKER_QUEUES = 1000


class WorkerState(StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"
    GONE = "gone"


@dataclass(frozen=True)
class WorkerSighting:
    """One worker seen by one server in one flush window: the queues it claimed from, when, what it said it is."""

    project: str
    worker_id: str
    seen_at: datetime
    queues: frozenset[str] = frozenset()
    version: str | None = None
    host: str | None = None


class WorkerRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="the worker id (X-TASQUES-WORKER-ID)")
    project: str = Field(DEFAULT_PROJECT, description="the project the worker works in")
    queues: list[str] = Field(default_factory=list, description="the queues it has claimed from, sorted")
    first_seen_at: datetime = Field(description="when a server first saw it")
    last_seen_at: datetime = Field(description="when a server last saw it claim or report")
    version: str | None = Field(None, description="what it sent as X-TASQUES-WORKER-VERSION")
    host: str | None = Field(None, description="what it sent as X-TASQUES-WORKER-HOST")
    draining: bool = Field(False, description="set by PUT /workers/{id}/drain: its claims return nothing")
    drained_at: datetime | None = Field(None, description="when it was last put to drain")

    def state(self, now: datetime, gone_after: timedelta) -> WorkerState:
        """Gone once silent for `gone_after`, whether draining or not; else draining or active."""
        if now - self.last_seen_at >= gone_after:
            return WorkerState.GONE
        return WorkerState.DRAINING if self.draining else WorkerState.ACTIVE
