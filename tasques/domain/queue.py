"""Per-queue settings: pause, dispatch limits and the default retry policy of the queue's tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.limits import DEFAULT_PROJECT, MAX_CONCURRENT_DISPATCHES, MAX_DISPATCHES_PER_SECOND
from tasques.domain.ref import QueueRef
from tasques.domain.retry import RetryPolicy
from tasques.domain.task import Metadata


class QueueSettings(BaseModel):
    """One record per queue; a queue without one has every default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str = Field(description="the queue these settings are for")
    paused: bool = Field(False, description="a paused queue hands no task to claims or to the dispatcher")
    max_dispatches_per_second: float | None = Field(
        None,
        gt=0,
        le=MAX_DISPATCHES_PER_SECOND,
        allow_inf_nan=False,
        description="dispatch rate limit of the queue, per server (a token bucket on each server)",
    )
    max_concurrent_dispatches: int | None = Field(
        None,
        ge=1,
        le=MAX_CONCURRENT_DISPATCHES,
        description="the queue's requests in flight at once, per server; the server default if absent",
    )
    retry_policy: RetryPolicy | None = Field(None, description="default retry policy of the queue's new tasks")
    project: str = Field(DEFAULT_PROJECT, description="the project (tenant) the queue belongs to")
    metadata: Metadata

    @classmethod
    def default(cls, queue: str, at: datetime, project: str = DEFAULT_PROJECT) -> QueueSettings:
        return cls(queue=queue, project=project, metadata=Metadata(created_at=at, modified_at=at))

    @property
    def ref(self) -> QueueRef:
        return QueueRef(self.project, self.queue)

    def changed(self, at: datetime, **changes: Any) -> QueueSettings:
        # Validated (model_copy would not validate the changes).
        metadata = self.metadata.model_copy(update={"modified_at": at})
        return QueueSettings.model_validate({**dict(self), **changes, "metadata": metadata})
