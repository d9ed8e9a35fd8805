"""Read-your-writes for search-based reads: a coalesced refresh of the live tasks index.

Elasticsearch searches only see documents as of the last refresh of the index. A store instance records every
write it makes (`wrote()`, called once the write's response is in, success or not), and before a search it
calls `ensure_fresh()`, which returns once a refresh that *started after* the last recorded write has completed.
At most one refresh is in flight; concurrent callers share it. With no write since the last refresh, nothing
is sent at all, so a read-mostly or idle server costs the cluster nothing.

Claims need less: only writes that make a task claimable (inserts, unclaims, retries) must be visible to them
(`ensure_fresh(for_claims=True)`). Writes that take a task out of the claimable set (claims, done) are instead
excluded from claim searches by id until a refresh covers them, so a busy drain does not refresh per claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class CoalescedRefresher:
    """Coalesces the refreshes that read-your-writes needs into at most one in-flight request."""

    def __init__(self, refresh: Callable[[], Awaitable[object]]) -> None:
        self._refresh = refresh
        self._written = 0  # generation: one more per recorded write
        self._claimable_written = 0  # the generation of the last write that made a task claimable
        self._covered = 0  # the generation the last completed refresh covers
        self._inflight: asyncio.Task[None] | None = None
        self._last_started = float("-inf")
        self.refreshes = 0  # refreshes sent, for tests and metrics

    @property
    def dirty(self) -> bool:
        """Whether a write recorded by this instance may not be visible to searches yet."""
        return self._covered < self._written

    @property
    def covered(self) -> int:
        """Every write with a generation up to this one is visible to searches."""
        return self._covered

    def wrote(self, *, claimable: bool = True) -> int:
        """Record a write that has completed (or failed: it may still have been applied); returns its generation."""
        self._written += 1
        if claimable:
            self._claimable_written = self._written
        return self._written

    async def ensure_fresh(self, *, for_claims: bool = False) -> None:
        """Return once every write recorded before this call (only claimable ones `for_claims`) is searchable."""
        target = self._claimable_written if for_claims else self._written
        while self._covered < target:
            await self._join_or_start()
            # A refresh that started before our target write covers less than it; the loop then starts another.

    async def refresh_if_idle_for(self, seconds: float) -> bool:
        """Refresh to see other servers' writes, unless one started less than `seconds` ago. Returns whether
        a refresh completed (so a search now sees at least what it covered)."""
        loop = asyncio.get_running_loop()
        if self._inflight is None and loop.time() - self._last_started < seconds:
            return False
        await self._join_or_start()
        return True

    async def _join_or_start(self) -> None:
        inflight = self._inflight
        if inflight is None:
            inflight = self._inflight = asyncio.create_task(self._run(self._written))
            inflight.add_done_callback(_retrieve)
        # shield: a cancelled caller must not cancel the refresh the other callers share.
        await asyncio.shield(inflight)

    async def _run(self, generation: int) -> None:
        try:
            self.refreshes += 1
            self._last_started = asyncio.get_running_loop().time()
            await self._refresh()
            self._covered = max(self._covered, generation)
        finally:
            self._inflight = None

    async def close(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            inflight.cancel()
            await asyncio.gather(inflight, return_exceptions=True)


def _retrieve(task: asyncio.Task[None]) -> None:
    # The failure reaches every waiter; reading it here keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()
