"""TEMPORARY (issue 17 in progress): the new `Store` methods not yet written, one mixin per feature.

Each feature's branch deletes its mixin here and from both stores' bases; the file goes once all have."""

from __future__ import annotations

from collections.abc import Sequence

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
