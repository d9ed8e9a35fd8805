"""The worker registry of one server: who claims and reports, and drain.

Sightings: every claim and report/done/failed/unclaim call is a sighting (project, worker id, queues, version,
host, time), merged in memory, never a store write per call; a background flusher writes what it has gathered
with one `Store.record_workers` every `flush_every` (1 s). A listing flushes first, so it shows this server's
sightings at once and other servers' within their flush interval. `first_seen_at` is exact to a flush interval.

Drain: `drain` sets the flag in the store and applies it here at once; the other servers learn it from a poll of
the draining workers every `refresh_every` (1 s). So a drain applies at once on the server that took it, and
within about a second on the others. A draining worker's claims return `[]` without touching the store, and a
claim of it blocked in a long poll returns `[]` at once (`ClaimStop`). The tasks it already holds stay its own:
its report/done/failed/unclaim calls work as before, and every response to it says it is draining.

`forget` (a leader job) deletes the records of workers silent for `forget_after` (7 days), so they do not grow
for ever; `gone_after` (5 min) is when a silent worker is listed as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from tasques.domain.task import Task
from tasques.domain.worker import MAX_WORKER_QUEUES, WorkerRecord, WorkerSighting, WorkerState
from tasques.service.clock import Clock
from tasques.service.signals import ClaimStop
from tasques.store.base import Store

log = logging.getLogger(__name__)

# Workers one server remembers sightings of between flushes, at most: past this, new workers wait for the next
# flush's room (their calls still work; only the record is late).
MAX_PENDING = 100_000

Key = tuple[str, str]  # (project, worker id)


@dataclass(frozen=True)
class WorkerSettings:
    flush_every: timedelta = timedelta(seconds=1)
    refresh_every: timedelta = timedelta(seconds=1)
    gone_after: timedelta = timedelta(minutes=5)
    forget_after: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class WorkerView:
    """A worker as `GET /workers` lists it."""

    record: WorkerRecord
    state: WorkerState
    claims_held: int


class WorkerRegistry:
    def __init__(self, store: Store, clock: Clock, settings: WorkerSettings = WorkerSettings()) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._pending: dict[Key, WorkerSighting] = {}
        self._flush_lock = asyncio.Lock()
        self._draining: set[Key] = set()
        self._changes = 0  # one more per drain or resume through this server
        self._stops: dict[Key, set[ClaimStop]] = {}
        self._loops: list[asyncio.Task[None]] = []

    # Sightings

    def seen(
        self,
        project: str,
        worker_id: str,
        queues: Iterable[str] = (),
        version: str | None = None,
        host: str | None = None,
    ) -> None:
        """Remember that the worker called now (no I/O)."""
        key = (project, worker_id)
        old = self._pending.get(key)
        if old is None and len(self._pending) >= MAX_PENDING:
            return
        now = self._clock()
        named = frozenset(queues)
        if old is not None:
            named = old.queues | named if len(old.queues) < MAX_WORKER_QUEUES else old.queues
            version = version if version is not None else old.version
            host = host if host is not None else old.host
        self._pending[key] = WorkerSighting(project, worker_id, now, named, version, host)

    async def flush(self) -> None:
        """Write the sightings gathered so far (one store write). One flush at a time: when this returns, every
        sighting made before the call is stored (or its write failed, and it waits for the next flush)."""
        async with self._flush_lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                await self._store.record_workers(list(batch.values()))
            except BaseException:
                for key, sighting in batch.items():  # kept for the next flush, behind what came since
                    self._pending.setdefault(key, sighting)
                raise

    # Drain

    def draining(self, project: str, worker_id: str) -> bool:
        return (project, worker_id) in self._draining

    async def claim(
        self, project: str, worker_id: str, run: Callable[[ClaimStop], Awaitable[list[Task]]]
    ) -> list[Task]:
        """A claim call (its sighting is the caller's to record): `[]` at once for a draining worker, else `run`
        (the claim), which returns `[]` at once if the worker is put to drain while it waits."""
        key = (project, worker_id)
        if key in self._draining:
            return []
        stop = ClaimStop()
        self._stops.setdefault(key, set()).add(stop)
        try:
            return await run(stop)
        finally:
            stops = self._stops.get(key)
            if stops is not None:
                stops.discard(stop)
                if not stops:
                    del self._stops[key]

    async def drain(self, project: str, worker_id: str) -> WorkerView:
        """Put the worker to drain; NotFound if no server has seen it."""
        return await self._set_draining(project, worker_id, True)

    async def resume(self, project: str, worker_id: str) -> WorkerView:
        return await self._set_draining(project, worker_id, False)

    async def _set_draining(self, project: str, worker_id: str, draining: bool) -> WorkerView:
        await self.flush()  # a worker seen a moment ago here is known to the store
        record = await self._store.set_worker_draining(worker_id, draining, self._clock(), project=project)
        self._changes += 1
        self._apply({(project, worker_id)} if draining else set(), {(project, worker_id)})
        held = await self._store.claims_by_worker(project=project)
        return self._view(record, held)

    def _apply(self, draining: set[Key], among: set[Key] | None = None) -> None:
        """`draining` are the draining workers (of `among`; of every worker when None): stop their blocked claims."""
        started = draining - self._draining
        self._draining = set(draining) if among is None else (self._draining - among) | draining
        for key in started:
            for stop in self._stops.get(key, ()):
                stop.stop()

    async def refresh(self) -> None:
        """Learn which workers are draining (drains and resumes through other servers)."""
        changes = self._changes
        records = await self._store.list_workers(project=None, draining_only=True)
        if changes == self._changes:  # else a local drain or resume raced this read: the next one is newer
            self._apply({(r.project, r.id) for r in records if r.draining})

    # Listing

    async def list(self, project: str) -> list[WorkerView]:
        await self.flush()
        records = await self._store.list_workers(project=project)
        held = await self._store.claims_by_worker(project=project)
        return [self._view(r, held) for r in records]

    def _view(self, record: WorkerRecord, held: dict[str, int]) -> WorkerView:
        state = record.state(self._clock(), self.settings.gone_after)
        return WorkerView(record=record, state=state, claims_held=held.get(record.id, 0))

    async def forget(self, batch: int) -> int:
        """Delete the records of workers silent for `forget_after` (the leader's job). Flushes first, so a worker
        this server saw since is not forgotten (one seen only by another server is re-created by its next flush)."""
        await self.flush()
        cutoff = self._clock() - self.settings.forget_after
        total = 0
        while True:
            deleted = await self._store.forget_workers(cutoff, batch)
            total += deleted
            if deleted < batch:
                return total

    # Lifecycle

    def start(self) -> None:
        if self._loops:
            return
        self._loops = [
            asyncio.create_task(self._every(self.settings.flush_every, self.flush, "flushing"), name="worker-flush"),
            asyncio.create_task(
                self._every(self.settings.refresh_every, self.refresh, "reading drains"), name="worker-drains"
            ),
        ]

    async def close(self) -> None:
        """Stop the loops and flush what is left (best effort: the store may be gone)."""
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        try:
            await self.flush()
        except Exception as e:
            log.warning("worker registry: the last flush failed (%s)", e)

    @staticmethod
    async def _every(interval: timedelta, step: Callable[[], Awaitable[None]], what: str) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                await step()
                failing = False
            except Exception as e:
                if not failing:
                    log.warning(
                        "worker registry: %s failed (%s); retrying every %ss", what, e, interval.total_seconds()
                    )
                failing = True
