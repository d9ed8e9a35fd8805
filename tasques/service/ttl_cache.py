"""A small TTL cache for store look-ups on the request path, with negative entries and one load per key at a
time. Time is the monotonic seconds of an injected clock.

A found value is kept `ttl` seconds and a `NotFound` `negative_ttl` seconds (so a flood of made-up token ids
costs the store one read per id and interval, not one per request). Any other error (the store is down) is
not cached: the next request tries again. Concurrent misses for one key share one load. At most `max_entries`
entries are kept, least recently used evicted first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tasques.domain.errors import NotFound

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(
        self, ttl: float, negative_ttl: float, monotonic: Callable[[], float], max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._monotonic = monotonic
        self._max_entries = max_entries
        # key -> (expires at, value or None for "not found")
        self._entries: OrderedDict[str, tuple[float, V | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[V | None]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, else `await load()`; raises `NotFound` for a (cached) miss."""
        while True:
            entry = self._entries.get(key)
            if entry is not None and self._monotonic() < entry[0]:
                self._entries.move_to_end(key)
                return _found(entry[1], key)
            pending = self._loading.get(key)
            if pending is None:
                return await self._load(key, load)
            await asyncio.wait([pending])
            if not pending.cancelled():  # a cancelled load (its request went away): load again
                return _found(pending.result(), key)

    async def _load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            try:
                value: V | None = await load()
                ttl = self._ttl
            except NotFound:
                value, ttl = None, self._negative_ttl
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # marked retrieved: no warning when nobody else waited
            raise
        finally:
            del self._loading[key]
        if ttl > 0:
            self._put(key, value, self._monotonic() + ttl)
        future.set_result(value)
        return _found(value, key)

    def invalidate(self, key: str) -> None:
        """Forget `key` (this server's own revocation takes effect at once)."""
        self._entries.pop(key, None)

    def _put(self, key: str, value: V | None, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _found(value: V | None, key: str) -> V:
    if value is None:
        raise NotFound(key)
    return value
