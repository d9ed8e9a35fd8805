"""Group commit: concurrent calls gathered into one batch while the store is busy with the previous one.

`Coalescer.submit(item)` queues an item and waits for its own result. A flush starts as soon as fewer than
`flushes` are in flight; it takes everything queued (up to `max_batch`), so at idle a call goes out at once
(after one turn of the event loop, which lets the calls that arrived together go together) and under load the
batches grow by themselves to what arrives while the store answers the previous ones. No timer, no added
latency: the window is the store's own round trip (River's batch completer and a database's group commit
work the same way).

A flush returns one result per item, in order, a result being either the value or the exception for that item
alone; if the flush itself raises, every item of the batch gets that exception. A caller that is cancelled
stops waiting, but its item, once queued, is written all the same (as a cancelled single write may have been).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

Flush = Callable[[list[I]], Awaitable[Sequence[R | Exception]]]


class Coalescer(Generic[I, R]):
    def __init__(self, flush: Flush[I, R], *, max_batch: int = 1000, flushes: int = 2) -> None:
        if max_batch < 1 or flushes < 1:
            raise ValueError("max_batch and flushes must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._flushes = flushes
        self._queue: deque[tuple[I, asyncio.Future[R]]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._starting = False  # a flush is started but has not taken its batch yet

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start()
        return await future

    def _start(self) -> None:
        # One flush waiting to run is enough: it takes everything queued by the time it runs (after this turn).
        if self._queue and not self._starting and len(self._running) < self._flushes:
            self._starting = True
            task = asyncio.create_task(self._run())
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self) -> None:
        self._starting = False
        batch: list[tuple[I, asyncio.Future[R]]] = []
        while self._queue and len(batch) < self._max_batch:
            batch.append(self._queue.popleft())
        if not batch:
            return
        self._start()  # more may queue while this one is in flight: the next flush can wait for them
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a flush of {len(batch)} items returned {len(results)} results")
        except BaseException as e:
            error = e if isinstance(e, Exception) else asyncio.CancelledError()
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(e, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
