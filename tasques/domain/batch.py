"""Batches: many tasks created under one id, counted together, with an optional callback task.

The callback (`on_complete`) is created once every task of the batch has finished (done, dead or cancelled),
with the batch's counts in its args. Its id is derived from the batch id, so two servers that both see the
batch complete create it once: the second insert is refused as a duplicate.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.recurring import TaskDefinition
from tasques.domain.task import Metadata, TaskKey


class Batch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="the batch id")
    project: str = Field(DEFAULT_PROJECT, description="the project the batch belongs to")
    total: int = Field(description="how many tasks the batch was created with")
    on_complete: TaskDefinition | None = Field(None, description="the task created when every task has finished")
    callback: TaskKey | None = Field(None, description="the callback task, once created")
    completed_at: datetime | None = Field(None, description="when every task of the batch had finished")
    metadata: Metadata
