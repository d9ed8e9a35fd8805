"""Wakes blocked claims the moment a task in one of their queues may have become claimable."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

from tasques.domain.http_target import TaskTarget
from tasques.domain.ref import QueueRef

# Told (queue, target) of every notification; target None: tasks of either target.
Listener = Callable[[QueueRef, TaskTarget | None], None]


class ClaimStop:
    """Ends the wait of one blocked claim early (its worker was put to drain): `stop()` wakes it at once."""

    def __init__(self) -> None:
        self.stopped = False
        self._waiters: set[asyncio.Future[None]] = set()

    def stop(self) -> None:
        self.stopped = True
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)


class QueueSignals:
    """In-process only: other servers' tasks are found by the claim ticker's probe (service/ticker.py)."""

    def __init__(self) -> None:
        self._waiters: defaultdict[QueueRef, set[asyncio.Future[None]]] = defaultdict(set)
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def notify(self, queue: QueueRef, target: TaskTarget | None = None) -> None:
        """Tasks of `queue` (of `target`, or of either when None) may have become claimable."""
        for listener in self._listeners:
            listener(queue, target)
        if target is TaskTarget.HTTP:
            return  # the waiters are pull claims
        waiters = self._waiters.pop(queue, None)
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    async def wait(self, queues: Iterable[QueueRef], within: float, stop: ClaimStop | None = None) -> bool:
        """Wait until one of `queues` is notified (True) or `within` seconds pass (False); `stop` ends it early."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if stop is not None:
            if stop.stopped:
                return False
            stop._waiters.add(fut)
        names = list(queues)
        for q in names:
            self._waiters[q].add(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            return False
        finally:
            if stop is not None:
                stop._waiters.discard(fut)
            for q in names:
                waiting = self._waiters.get(q)
                if waiting is not None:
                    waiting.discard(fut)
                    if not waiting:
                        del self._waiters[q]
        return True
