"""Dead-letter replay: dead tasks, live or archived, back to queued with a fresh attempt budget.

A replay names tasks by id or by a filter (queue, kind, time of death), and puts back at most `limit`
(`MAX_REPLAY`) per request, saying whether more match so a caller can repeat. Live tasks go through the
read-modify-write loop (`Task.replayed_now` refuses a task that is no longer dead, so a worker's claim or another
replay that got in first wins and this one reports `not_dead`); archived ones through `Store.restore_archived`.
Repeating a replay is harmless: what it put back is no longer dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, NotClaimed, NotFound, VersionConflict
from tasques.domain.limits import DEFAULT_REPLAY, MAX_REPLAY
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.service.events import Source
from tasques.service.task_core import Modification, TaskCore

# Archived tasks read at once while looking for the dead among ids.
_READS_IN_FLIGHT = 32

Key = tuple[str, str]  # (queue, id)


@dataclass(frozen=True)
class DeadFilter:
    """Which dead tasks: of a queue, of a kind, dead in [dead_since, dead_until). Any may be None."""

    queue: str | None = None
    kind: str | None = None
    dead_since: datetime | None = None
    dead_until: datetime | None = None


class ReplayStatus(StrEnum):
    REPLAYED = "replayed"
    NOT_DEAD = "not_dead"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class ReplayItem:
    queue: str
    id: str
    status: ReplayStatus
    task: Task | None = None  # as stored now, when replayed or not dead


@dataclass(frozen=True)
class ReplayOutcome:
    items: list[ReplayItem]
    more: bool  # more dead tasks match the filter than this request put back


class TaskReplay(TaskCore):
    async def replay(
        self,
        project: str,
        ids: Sequence[TaskKey] | None = None,
        flt: DeadFilter | None = None,
        limit: int = DEFAULT_REPLAY,
    ) -> ReplayOutcome:
        """Put dead tasks back to queued: `ids` (each live or archived), or up to `limit` of those `flt` matches
        (oldest death first, live ones before archived ones)."""
        if (ids is None) == (flt is None):
            raise InvalidInput("invalid replay", [FieldProblem("ids", "give ids or a filter, not both")])
        if not 1 <= limit <= MAX_REPLAY:
            raise InvalidInput("invalid replay", [FieldProblem("limit", f"must be between 1 and {MAX_REPLAY}")])
        if ids is not None:
            if len(ids) > MAX_REPLAY:
                raise InvalidInput("invalid replay", [FieldProblem("ids", f"at most {MAX_REPLAY} ids")])
            keys = list(dict.fromkeys((k.queue, k.id) for k in ids))
            return ReplayOutcome(await self._replay_keys(project, keys, {}), more=False)
        assert flt is not None
        live, more = await self._find_dead(project, flt, limit, archived=False)
        archived: list[Task] = []
        if len(live) < limit:
            archived, more = await self._find_dead(project, flt, limit - len(live), archived=True)
        elif not more:
            more = bool((await self._find_dead(project, flt, 1, archived=True))[0])
        keys = [(t.queue, t.id) for t in (*live, *archived)]
        items = await self._replay_keys(project, keys, {(t.queue, t.id): t for t in archived})
        return ReplayOutcome(items, more)

    async def _find_dead(self, project: str, flt: DeadFilter, limit: int, *, archived: bool) -> tuple[list[Task], bool]:
        """Up to `limit` dead tasks the filter matches, and whether there are more."""
        found = await self._store.find_dead(
            project=project, queue=flt.queue, kind=flt.kind, since=flt.dead_since, until=flt.dead_until,
            limit=limit + 1, archived=archived,
        )  # fmt: skip
        return found[:limit], len(found) > limit

    async def _replay_keys(self, project: str, keys: list[Key], archived: dict[Key, Task]) -> list[ReplayItem]:
        """Replay each key: live ones by a conditional change, archived ones (read here, or given in `archived`)
        by a restore. A restore that finds the task moved (restored by someone else, or changed) reads it again."""
        done: dict[Key, ReplayItem] = {}
        pending = list(keys)
        for _ in range(self._settings.conflict_retries):
            if not pending:
                break
            live = [k for k in pending if k not in archived]
            await self._replay_live(project, live, done, archived)
            restores = [k for k in pending if k in archived and k not in done]
            now = self._clock()
            results = await self._store.restore_archived([archived.pop(k).replayed_now(now) for k in restores])
            for key, result in zip(restores, results, strict=True):
                if isinstance(result, Task):
                    done[key] = ReplayItem(key[0], key[1], ReplayStatus.REPLAYED, result)
                elif not isinstance(result, NotFound | VersionConflict | AlreadyExists):
                    raise result
            pending = [k for k in pending if k not in done]
        if pending:
            raise VersionConflict(f"{len(pending)} tasks kept changing during the replay; repeat it")
        items = [done[k] for k in keys]
        await self._replayed([i.task for i in items if i.status is ReplayStatus.REPLAYED and i.task is not None])
        return items

    async def _replay_live(
        self, project: str, keys: list[Key], done: dict[Key, ReplayItem], archived: dict[Key, Task]
    ) -> None:
        """Replay live tasks; keys found only in the archive are read into `archived` (the dead ones)."""
        results = await self.modify_many(
            [Modification(QueueRef(project, q), i, lambda t, now: t.replayed_now(now)) for q, i in keys]
        )
        unread: list[Key] = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, Task):
                done[key] = ReplayItem(key[0], key[1], ReplayStatus.REPLAYED, result)
            elif isinstance(result, NotClaimed):
                done[key] = ReplayItem(key[0], key[1], ReplayStatus.NOT_DEAD)
            elif isinstance(result, NotFound):
                unread.append(key)  # gone, or archived and dead
            else:
                raise result
        limit = asyncio.Semaphore(_READS_IN_FLIGHT)

        async def read(key: Key) -> Task | None:
            async with limit:
                try:
                    return await self._store.get_task(key[0], key[1], project=project)
                except NotFound:
                    return None

        for key, task in zip(unread, await asyncio.gather(*(read(k) for k in unread)), strict=True):
            if task is None:
                done[key] = ReplayItem(key[0], key[1], ReplayStatus.NOT_FOUND)
            elif task.state is not TaskState.DEAD:
                done[key] = ReplayItem(key[0], key[1], ReplayStatus.NOT_DEAD, task)
            else:
                archived[key] = task

    async def _replayed(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        # The dispatcher serves registered queues only: an HTTP task's queue is registered, as on create.
        for ref in dict.fromkeys(t.ref for t in tasks if t.http_request is not None):
            await self._queues.register(ref)
        self._events.created(tasks, Source.REPLAY)
        for ref, target in {(t.ref, t.target) for t in tasks}:
            self._signals.notify(ref, target)
