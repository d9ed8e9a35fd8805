"""Queue use cases: settings (pause/resume, dispatch limits, default retry policy) and which queues are paused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.queue import QueueSettings
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
        self._cached: dict[str, QueueSettings] | None = None
        self._cached_until = 0.0

    async def get(self, queue: str) -> QueueSettings:
        """The queue's settings; every default when it has none stored."""
        try:
            return await self._store.get_queue_settings(queue)
        except NotFound:
            return QueueSettings.default(queue, self._clock())

    async def all(self) -> dict[str, QueueSettings]:
        """Every stored queue settings record, from the cache when fresh."""
        loop = asyncio.get_running_loop()
        if self._cached is None or loop.time() >= self._cached_until:
            self._cached = {s.queue: s for s in await self._store.list_queue_settings()}
            self._cached_until = loop.time() + self._cache_for
        return self._cached

    async def paused(self) -> frozenset[str]:
        return frozenset(q for q, s in (await self.all()).items() if s.paused)

    async def pause(self, queue: str) -> QueueSettings:
        return await self.update(queue, paused=True)

    async def resume(self, queue: str) -> QueueSettings:
        settings = await self.update(queue, paused=False)
        if self._signals is not None:
            self._signals.notify(queue)  # claims blocked on this server find its tasks at once
        return settings

    async def update(self, queue: str, **changes: Any) -> QueueSettings:
        """Change some settings of a queue (creating its record if it has none), retrying version conflicts."""
        return await self._change(queue, lambda s: s.changed(self._clock(), **changes))

    async def register(self, queue: str) -> None:
        """Make sure the queue has a settings record, so the dispatcher knows to look at it."""
        if self._cached is not None and queue in self._cached:
            return
        try:
            await self._store.insert_queue_settings(QueueSettings.default(queue, self._clock()))
        except AlreadyExists:
            return
        self._cached = None

    async def _change(self, queue: str, change: Callable[[QueueSettings], QueueSettings]) -> QueueSettings:
        async def attempt() -> QueueSettings:
            try:
                current = await self._store.get_queue_settings(queue)
            except NotFound:
                try:
                    return await self._store.insert_queue_settings(change(QueueSettings.default(queue, self._clock())))
                except AlreadyExists as e:
                    raise VersionConflict(str(e)) from e  # created meanwhile: read it again
            try:
                return await self._store.update_queue_settings(change(current))
            except NotFound as e:
                raise VersionConflict(str(e)) from e  # deleted meanwhile: create it again

        try:
            return await retry_conflicts(f"settings of queue {queue}", attempt)
        finally:
            self._cached = None
