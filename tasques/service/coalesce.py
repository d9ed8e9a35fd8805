"""Natural batching: calls that arrive while a flush is in flight wait for it, then go together in the next one.

An idle coalescer adds no wait: the first call starts a flush on the next loop iteration (so calls made in the
same iteration share it). The flush runs in its own task, so a cancelled caller never cancels a batch others
wait on; a caller that may be cancelled awaits its future through `asyncio.shield` and calls `withdraw`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741  # an item submitted
R = TypeVar("R")  # its result

Flush = Callable[[list[I]], Awaitable[Sequence[R]]]


class Coalescer(Generic[I, R]):
    """`submit(item)` returns a future of its result; `flush(items)` returns one result per item, in order.
    A flush that raises fails every item of its batch with that exception."""

    def __init__(self, flush: Flush[I, R]) -> None:
        self._flush = flush
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._runner is None and not self._pending

    def submit(self, item: I) -> asyncio.Future[R]:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain(), name="coalesced flush")
        return fut

    def withdraw(self, fut: asyncio.Future[R]) -> bool:
        """Take a submitted item back if no flush has taken it yet (True: it will never be flushed)."""
        for i, (_, pending) in enumerate(self._pending):
            if pending is fut:
                del self._pending[i]
                return True
        return False

    async def _drain(self) -> None:
        batch: list[tuple[I, asyncio.Future[R]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as e:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
                batch = []
        finally:
            self._runner = None
            # Only on cancellation (the loop is shutting down): nobody will flush these any more.
            for _, fut in batch + self._pending:
                fut.cancel()
            self._pending = []
