"""TEMPORARY (issue 17 in progress): the new `Store` methods not yet written, one mixin per feature.

Each feature's branch deletes its mixin here and from both stores' bases; the file goes once all have."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tasques.domain.errors import NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskKey


class PendingDependencies:
    async def get_tasks(self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT) -> list[Task | None]:
        raise NotImplementedError

    async def find_dependents(
        self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT, limit: int = 1000
    ) -> list[Task]:
        raise NotImplementedError

    async def waiting_tasks(self, after: tuple[str, str, str] | None, limit: int) -> list[Task]:
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
