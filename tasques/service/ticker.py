"""The claim ticker: what idle waiters of one server poll, once per tick and in one store request.

Blocked claims and the dispatcher do not poll the store on their own schedules. While any of them waits, the
ticker asks `Store.claimable_queues` every `interval` (on Elasticsearch no faster than the refresh interval:
other servers' writes are invisible to searches before a refresh anyway) which of their queues hold claimable
tasks: the pull queues blocked claims wait on, and every queue's HTTP tasks but those the dispatcher already
serves each pass. A queue with pull work wakes its blocked claims (through `QueueSignals`, so their claims
coalesce per key in `SharedClaims`); a queue with HTTP work goes to the dispatcher (`HttpWork`).

A pull queue the last probe (or a claim) found empty is *known empty* until the next tick, unless a signal
says otherwise: a claim whose queues are all known empty goes straight back to waiting, so long-polls that
end and start again at idle cost the store nothing. In-process writes still wake waiters at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta

from tasques.domain.http_target import TaskTarget
from tasques.domain.ref import QueueRef
from tasques.service.clock import Clock
from tasques.service.signals import ClaimStop, QueueSignals
from tasques.store.base import QueueProbe, Store

log = logging.getLogger(__name__)


class HttpWork:
    """The dispatcher's side: queues that may hold claimable HTTP tasks, reported by probes and signals."""

    def __init__(self, ticker: ClaimTicker) -> None:
        self._ticker = ticker
        self._ready: set[QueueRef] = set()
        self._event = asyncio.Event()
        self.watchers = 0
        # Queues the dispatcher serves every pass anyway (it knows they have work): left out of the probe.
        self.busy: frozenset[QueueRef] = frozenset()

    @contextlib.contextmanager
    def watching(self) -> Iterator[HttpWork]:
        self.watchers += 1
        self._ticker.interest_changed()
        try:
            yield self
        finally:
            self.watchers -= 1
            self._ticker.interest_changed()

    def report(self, queue: QueueRef) -> None:
        if self.watchers:
            self._ready.add(queue)
            self._event.set()

    def poke(self) -> None:
        """Wake the dispatcher now (e.g. a dispatch slot of a busy queue came free)."""
        self._event.set()

    async def wait(self, within: float) -> None:
        """Until there is news (work reported, a poke) or `within` seconds pass."""
        if not self._event.is_set() and within > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), within)
        self._event.clear()

    def take(self) -> set[QueueRef]:
        """The queues reported since the last call."""
        ready, self._ready = self._ready, set()
        return ready


class ClaimTicker:
    def __init__(self, store: Store, clock: Clock, signals: QueueSignals, interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._signals = signals
        self.interval = interval.total_seconds()
        self.http = HttpWork(self)
        self._pull: Counter[QueueRef] = Counter()  # queue -> blocked claims waiting on it
        self._empty: dict[QueueRef, float] = {}  # pull queue -> (loop time) until when it is known empty
        self._generation = 0  # one more per signal: a probe or claim older than a signal proves nothing
        self._runner: asyncio.Task[None] | None = None
        self._failing = False
        self.probes = 0  # probes sent, for tests and metrics
        self.waiting = 0  # blocked claims
        signals.listen(self._signalled)

    @property
    def generation(self) -> int:
        return self._generation

    def known_empty(self, queues: Iterable[QueueRef]) -> bool:
        """Whether every one of `queues` was found without claimable pull tasks since the last tick."""
        now = asyncio.get_running_loop().time()
        return all(self._empty.get(q, 0.0) > now for q in queues)

    def found_empty(self, queues: Iterable[QueueRef], generation: int) -> None:
        """A claim that started at `generation` found no claimable pull tasks in `queues`."""
        if generation == self._generation:
            # Two ticks: the next probe renews it (or wakes the waiters), even if it is a little late.
            until = asyncio.get_running_loop().time() + 2 * self.interval
            for q in queues:
                self._empty[q] = until

    async def wait(self, queues: Sequence[QueueRef], within: float, stop: ClaimStop | None = None) -> None:
        """Block a pull claim on `queues` until a signal or a probe finds work in one of them, or `within` passes
        (or `stop` is stopped)."""
        self._pull.update(queues)
        self.waiting += 1
        self.interest_changed()
        try:
            await self._signals.wait(queues, within, stop)
        finally:
            self.waiting -= 1
            self._pull.subtract(queues)
            for q in queues:
                if self._pull[q] <= 0:
                    del self._pull[q]
            self.interest_changed()

    def interest_changed(self) -> None:
        """Run the tick loop while anyone waits, and only then (an idle server with no waiters sends nothing)."""
        wanted = bool(self._pull) or self.http.watchers > 0
        if wanted and self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="claim ticker")
        elif not wanted and self._runner is not None:
            self._runner.cancel()
            self._runner = None

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    def _signalled(self, queue: QueueRef, target: TaskTarget | None) -> None:
        self._generation += 1
        if target is not TaskTarget.HTTP:
            self._empty.pop(queue, None)
        if target is not TaskTarget.PULL:
            self.http.report(queue)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not self._failing:
                    log.warning("claim ticker: probing the store failed (%s); retrying every tick", e)
                self._failing = True
                # Blocked claims claim themselves, so their workers hear of the outage (503), as they would
                # have from their own polls.
                self._empty.clear()
                for queue in sorted(self._pull):
                    self._signals.notify(queue, TaskTarget.PULL)

    async def tick(self) -> None:
        """One probe of every waiter's queues, and the wake-ups it calls for."""
        pull = frozenset(self._pull)
        by_project: dict[str, set[str]] = {}
        for ref in pull:
            by_project.setdefault(ref.project, set()).add(ref.queue)
        probes = [QueueProbe(TaskTarget.PULL, frozenset(qs), project=p) for p, qs in sorted(by_project.items())]
        if self.http.watchers:
            probes.append(QueueProbe(TaskTarget.HTTP, None, self.http.busy, project=None))
        if not probes:
            return
        generation = self._generation
        self.probes += 1
        found = await self._store.claimable_queues(self._clock(), probes)
        self._failing = False
        with_work = {QueueRef(p, q) for p, q, t in found if t is TaskTarget.PULL}
        self.found_empty(pull - with_work, generation)
        for project, queue, target in sorted(found):
            self._signals.notify(QueueRef(project, queue), target)
