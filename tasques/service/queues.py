"""Queue use cases: settings (pause/resume, dispatch limits, default retry policy) and which queues are paused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.queue import QueueSettings
from tasques.domain.ref import QueueRef
from tasques.service.clock import Clock
from tasques.service.conflicts import retry_conflicts
from tasques.service.signals import QueueSignals
from tasques.store.base import Store

# Claims consult the paused set through this cache; writes through this service clear it at once, and other
# servers' writes are seen within this many (monotonic) seconds.
SETTINGS_CACHE_SECONDS = 1.0


class QueueService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        signals: QueueSignals | None = None,
        cache_for: timedelta = timedelta(seconds=SETTINGS_CACHE_SECONDS),
    ):
        self._store = store
        self._clock = clock
        self._signals = signals
        self._cache_for = cache_for.total_seconds()
        self._cached: dict[QueueRef, QueueSettings] | None = None
        self._cached_until = 0.0
        self._generation = 0  # one more per write through this service: a load older than it is stale
        # The load in flight (and the generation it started at): concurrent callers share it, so claims woken
        # together reach the shared claim together.
        self._loading: tuple[int, asyncio.Future[dict[QueueRef, QueueSettings]]] | None = None

    async def get(self, ref: QueueRef) -> QueueSettings:
        """The queue's settings; every default when it has none stored."""
        try:
            return await self._store.get_queue_settings(ref.queue, project=ref.project)
        except NotFound:
            return QueueSettings.default(ref.queue, self._clock(), ref.project)

    async def all(self) -> dict[QueueRef, QueueSettings]:
        """Every stored queue settings record of every project, from the cache when fresh."""
        if self._cached is not None and asyncio.get_running_loop().time() < self._cached_until:
            return self._cached
        if self._loading is None or self._loading[0] != self._generation:
            load = asyncio.ensure_future(self._load(self._generation))
            load.add_done_callback(_retrieve)
            self._loading = (self._generation, load)
        return await asyncio.shield(self._loading[1])

    async def _load(self, generation: int) -> dict[QueueRef, QueueSettings]:
        try:
            loaded = {s.ref: s for s in await self._store.list_queue_settings()}
        finally:
            if self._loading is not None and self._loading[0] == generation:
                self._loading = None
        if generation == self._generation:
            self._cached = loaded
            self._cached_until = asyncio.get_running_loop().time() + self._cache_for
        return loaded

    def _invalidate(self) -> None:
        self._cached = None
        self._generation += 1

    async def paused(self) -> frozenset[QueueRef]:
        return frozenset(ref for ref, s in (await self.all()).items() if s.paused)

    async def pause(self, ref: QueueRef) -> QueueSettings:
        return await self.update(ref, paused=True)

    async def resume(self, ref: QueueRef) -> QueueSettings:
        settings = await self.update(ref, paused=False)
        if self._signals is not None:
            self._signals.notify(ref)  # claims blocked on this server find its tasks at once
        return settings

    async def update(self, ref: QueueRef, **changes: Any) -> QueueSettings:
        """Change some settings of a queue (creating its record if it has none), retrying version conflicts."""
        return await self._change(ref, lambda s: s.changed(self._clock(), **changes))

    async def register(self, ref: QueueRef) -> None:
        """Make sure the queue has a settings record, so the dispatcher knows to look at it."""
        if self._cached is not None and ref in self._cached:
            return
        try:
            await self._store.insert_queue_settings(QueueSettings.default(ref.queue, self._clock(), ref.project))
        except AlreadyExists:
            return
        self._invalidate()

    async def _change(self, ref: QueueRef, change: Callable[[QueueSettings], QueueSettings]) -> QueueSettings:
        queue, project = ref.queue, ref.project

        async def attempt() -> QueueSettings:
            try:
                current = await self._store.get_queue_settings(queue, project=project)
            except NotFound:
                try:
                    fresh = QueueSettings.default(queue, self._clock(), project)
                    return await self._store.insert_queue_settings(change(fresh))
                except AlreadyExists as e:
                    raise VersionConflict(str(e)) from e  # created meanwhile: read it again
            try:
                return await self._store.update_queue_settings(change(current))
            except NotFound as e:
                raise VersionConflict(str(e)) from e  # deleted meanwhile: create it again

        try:
            return await retry_conflicts(f"settings of queue {queue}", attempt)
        finally:
            self._invalidate()


def _retrieve(load: asyncio.Future[dict[QueueRef, QueueSettings]]) -> None:
    # The failure reaches every caller; reading it here keeps asyncio from logging it when none is left.
    if not load.cancelled():
        load.exception()
