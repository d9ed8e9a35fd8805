"""The completion buffer: jobs' done, failed, report and unclaim calls gathered into batch requests.

`Batcher` has the single calls' methods and signatures (`done`, `fail`, `report`, `unclaim`), so a job calls it
as it would call `TasquesClient`. Each call puts its item in the buffer of its endpoint (`POST /tasques/done`,
`/failed`, `/reports`, `/unclaims`) and awaits that item's own result: the task, or the `ClaimLost`/`ApiError`/
`ServerUnavailable` the single call would have raised, so the job's retries and claim-lost handling are the
single calls' ones.

A buffer is sent when it holds `size` items, `age` seconds after its first item came in, or at once when
`idle(waiting)` says nothing more is coming (the worker: every running job is waiting on the buffer). After
`hurry()` (shutdown) every item goes out at once. Errors never drop other items:

* a batch the server cannot take (unreachable, timeout, 5xx) fails each of its items with `ServerUnavailable`,
  and each job retries on its own (the retries batch again);
* a 4xx for the whole request is resent item by item as single calls, so one bad item fails alone; a 404 or
  405 (a server without batch endpoints, such as the Go original) moves that endpoint to single calls for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tasques.worker.client import (
    MAX_BATCH,
    ApiError,
    BatchItem,
    BatchResult,
    JsonDict,
    ServerUnavailable,
    Task,
    TasquesClient,
    TasquesError,
)

log = logging.getLogger("tasques.worker")

_NO_BATCH_ENDPOINT = frozenset({404, 405})

_Pending = tuple[BatchItem, "asyncio.Future[Task]"]


@dataclass(eq=False)
class _Lane:
    """The buffer of one batch endpoint."""

    endpoint: str
    many: Callable[[Sequence[BatchItem]], Awaitable[list[BatchResult]]]
    one: Callable[[BatchItem], Awaitable[Task]]
    buffer: list[_Pending] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    singles: bool = False  # the server has no batch endpoint for this


class Batcher:
    """Buffers one worker's done/failed/report/unclaim calls and sends them in batches (see the module doc)."""

    def __init__(
        self,
        client: TasquesClient,
        *,
        size: int = 100,
        age: float = 0.005,
        idle: Callable[[int], bool] | None = None,
    ) -> None:
        if not 1 <= size <= MAX_BATCH:
            raise ValueError(f"the batch size must be 1 to {MAX_BATCH}")
        if age < 0:
            raise ValueError("the batch age must not be negative")
        self.size = size
        self.age = age
        self._idle = idle
        self._waiting = 0  # calls given and not yet answered, buffered or in flight
        self._in_flight: set[asyncio.Task[None]] = set()
        c = client
        self._done = _Lane("done", c.done_many, lambda i: c.done(i.queue, i.id, i.data, claim_id=i.claim_id))
        self._failed = _Lane("failed", c.fail_many, lambda i: c.fail(i.queue, i.id, i.data, claim_id=i.claim_id))
        self._reports = _Lane("reports", c.report_many, lambda i: c.report(i.queue, i.id, i.data, claim_id=i.claim_id))
        self._unclaims = _Lane("unclaims", c.unclaim_many, lambda i: c.unclaim(i.queue, i.id, claim_id=i.claim_id))
        self._lanes = (self._done, self._failed, self._reports, self._unclaims)

    @property
    def waiting(self) -> int:
        """Calls given to the buffer and not answered yet."""
        return self._waiting

    @property
    def buffered(self) -> int:
        """Items in the buffers, not sent yet."""
        return sum(len(lane.buffer) for lane in self._lanes)

    # The single calls of `TasquesClient`, batched.

    async def report(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        return await self._submit(self._reports, BatchItem(queue, task_id, claim_id, data))

    async def done(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        return await self._submit(self._done, BatchItem(queue, task_id, claim_id, data))

    async def fail(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        return await self._submit(self._failed, BatchItem(queue, task_id, claim_id, data))

    async def unclaim(self, queue: str, task_id: str, *, claim_id: str | None = None) -> Task:
        return await self._submit(self._unclaims, BatchItem(queue, task_id, claim_id))

    def flush(self) -> None:
        """Send everything buffered now."""
        for lane in self._lanes:
            if lane.buffer:
                self._flush(lane)

    def hurry(self) -> None:
        """From now on send every item at once (still one batch per endpoint for calls of the same moment)."""
        self.age = 0.0
        self.flush()

    async def aclose(self) -> None:
        """Send what is buffered and wait until every batch has been answered."""
        self.hurry()
        while self._in_flight or self.buffered:
            self.flush()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def cancel(self) -> None:
        """Give up on everything buffered or in flight (the worker itself is cancelled)."""
        for lane in self._lanes:
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            for _, fut in lane.buffer:
                fut.cancel()
            lane.buffer.clear()
        for task in self._in_flight:
            task.cancel()

    # -- internals ------------------------------------------------------------------------------------------

    async def _submit(self, lane: _Lane, item: BatchItem) -> Task:
        fut: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        lane.buffer.append((item, fut))
        self._waiting += 1
        try:
            if len(lane.buffer) >= self.size:
                self._flush(lane)
            elif self._idle is not None and self._idle(self._waiting):
                self.flush()
            elif lane.timer is None:
                # call_later even for age 0: calls made in the same moment still share a batch.
                lane.timer = asyncio.get_running_loop().call_later(self.age, self._flush, lane)
            return await fut
        finally:
            self._waiting -= 1

    def _flush(self, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        pending = [(item, fut) for item, fut in lane.buffer if not fut.done()]  # done: its caller gave up
        lane.buffer.clear()
        for start in range(0, len(pending), self.size):
            sender = asyncio.create_task(self._send(lane, pending[start : start + self.size]))
            self._in_flight.add(sender)
            sender.add_done_callback(self._in_flight.discard)

    async def _send(self, lane: _Lane, batch: list[_Pending]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._results(lane, items)
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Task):
                    fut.set_result(result)
                else:
                    fut.set_exception(result)
        except Exception as e:  # a bug, not the server: fail the calls rather than leave them waiting
            log.exception("sending a batch of %d %s failed", len(items), lane.endpoint)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
        finally:
            for _, fut in batch:
                if not fut.done():
                    fut.cancel()

    async def _results(self, lane: _Lane, items: list[BatchItem]) -> list[BatchResult]:
        if lane.singles:
            return await _singly(lane, items)
        try:
            return await lane.many(items)
        except ServerUnavailable as e:
            return [ServerUnavailable(str(e)) for _ in items]
        except ApiError as e:
            if e.status in _NO_BATCH_ENDPOINT:
                lane.singles = True
                log.warning("the server has no POST /tasques/%s (%s); sending those one by one", lane.endpoint, e)
            else:
                log.warning(
                    "the server refused a batch of %d %s (%s); resending them one by one", len(items), lane.endpoint, e
                )
            return await _singly(lane, items)


async def _singly(lane: _Lane, items: list[BatchItem]) -> list[BatchResult]:
    async def one(item: BatchItem) -> BatchResult:
        try:
            return await lane.one(item)
        except TasquesError as e:
            return e

    return list(await asyncio.gather(*(one(item) for item in items)))


__all__ = ["Batcher"]
