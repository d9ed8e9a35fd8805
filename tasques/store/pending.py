"""TEMPORARY (issue 17 in progress): the new `Store` methods not yet written, one mixin per feature.

Each feature's branch deletes its mixin here and from both stores' bases; the file goes once all have."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tasques.domain.batch import Batch
from tasques.domain.errors import NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskState
from tasques.domain.worker import WorkerRecord, WorkerSighting


class PendingBatches:
    async def insert_batch(self, batch: Batch) -> Batch:
        raise NotImplementedError

    async def get_batch(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> Batch:
        raise NotImplementedError

    async def update_batch(self, batch: Batch) -> Batch:
        raise NotImplementedError

    async def open_batches(self, limit: int) -> list[Batch]:
        raise NotImplementedError

    async def batch_counts(self, batch_id: str, *, project: str = DEFAULT_PROJECT) -> dict[TaskState, int]:
        raise NotImplementedError


class PendingWorkers:
    async def record_workers(self, sightings: Sequence[WorkerSighting]) -> None:
        raise NotImplementedError

    async def get_worker(self, worker_id: str, *, project: str = DEFAULT_PROJECT) -> WorkerRecord:
        raise NotImplementedError

    async def list_workers(self, *, project: str | None = None) -> list[WorkerRecord]:
        raise NotImplementedError

    async def set_worker_draining(
        self, worker_id: str, draining: bool, at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> WorkerRecord:
        raise NotImplementedError

    async def claims_by_worker(self, *, project: str = DEFAULT_PROJECT) -> dict[str, int]:
        raise NotImplementedError

    async def forget_workers(self, seen_before: datetime, limit: int) -> int:
        raise NotImplementedError


class PendingQueueOps:
    async def find_dead(
        self,
        *,
        project: str,
        queue: str | None,
        kind: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        archived: bool,
    ) -> list[Task]:
        raise NotImplementedError

    async def restore_archived(self, tasks: Sequence[Task]) -> list[Task | Exception]:
        raise NotImplementedError

    async def delete_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict | NotFound]:
        raise NotImplementedError

    async def purge_finished(self, queue: str, *, project: str = DEFAULT_PROJECT) -> int:
        raise NotImplementedError

    async def count_finished_since(self, queue: str, since: datetime, *, project: str = DEFAULT_PROJECT) -> int:
        raise NotImplementedError
