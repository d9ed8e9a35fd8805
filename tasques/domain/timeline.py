"""The attempt timeline of HTTP-target tasks: one record per attempt, kept for a retention period."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.limits import DEFAULT_PROJECT

BODY_KEPT = 4096  # bytes of a response body kept in an attempt


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str = Field(description="the task's queue")
    task_id: str = Field(description="the task's id")
    project: str = Field(DEFAULT_PROJECT, description="the task's project")
    run: int = Field(0, description="which run of a repeating task (0 for the first, or a task that does not repeat)")
    attempt: int = Field(description="1 for the first attempt of the run, and so on")
    worker_id: str = Field(description="who made the attempt (the dispatcher of one server)")
    started_at: datetime = Field(description="when the request was sent")
    ended_at: datetime = Field(description="when the answer (or the error) came")
    duration_ms: float = Field(description="how long the request took, in milliseconds")
    success: bool = Field(description="true when the target answered 2xx")
    status_code: int | None = Field(None, description="the HTTP status the target answered")
    response_headers: dict[str, str] | None = Field(None, description="selected response headers")
    response_body: str | None = Field(None, description="the first 4 KB of the response body")
    error: str | None = Field(None, description="why there was no answer: connection error, timeout")

    @property
    def key(self) -> str:
        return f"{self.queue}/{self.task_id}/{self.run}/{self.attempt}"
