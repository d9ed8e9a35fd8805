"""Gauges read from the store (cluster-wide): tasks by queue and state, and each queue's oldest ready task's age.

Read with one `Store.queue_counts` call at most once per `metrics.gauge_cache`, never more than one at a time: a
scrape that finds the values stale starts the read (or joins the one in flight), waits for it at most
`REFRESH_WAIT`, and otherwise serves the last values. A failed read keeps the last values (the store's errors
are counted by the store metrics) and is not retried before the cache period ends. Queues the last read did not
return are not exported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tasques.domain.task import TaskState
from tasques.observe.labels import QueueLabels
from tasques.service.clock import Clock
from tasques.store.base import QueueCounts, Store

log = logging.getLogger(__name__)

# Seconds a scrape waits for a refresh before it serves the last values.
REFRESH_WAIT = 5.0
_STATES = tuple(TaskState)


@dataclass(frozen=True)
class QueueGauge:
    queue: str  # the label (capped)
    counts: dict[TaskState, int]
    earliest_run_at: datetime | None


def by_label(counts: Sequence[QueueCounts], label: QueueLabels) -> tuple[QueueGauge, ...]:
    """The store's counts under their queue labels: queues past the cap are summed into one `_other`."""
    merged: dict[str, QueueGauge] = {}
    for c in counts:
        name = label(c.queue)
        seen = merged.get(name)
        if seen is None:
            merged[name] = QueueGauge(name, dict(c.counts), c.earliest_run_at)
            continue
        for state, n in c.counts.items():
            seen.counts[state] = seen.counts.get(state, 0) + n
        earliest = [t for t in (seen.earliest_run_at, c.earliest_run_at) if t is not None]
        merged[name] = QueueGauge(name, seen.counts, min(earliest) if earliest else None)
    return tuple(merged.values())


class StoreGauges(Collector):
    def __init__(self, store: Store, clock: Clock, every: timedelta, label: QueueLabels) -> None:
        self._store = store
        self._clock = clock
        self._every = every
        self._label = label
        self._values: tuple[QueueGauge, ...] = ()
        self._read_at: datetime | None = None  # when the last read started (by the clock)
        self._reading: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Make the values at most `every` old, if the store answers within `REFRESH_WAIT`."""
        now = self._clock()
        if self._read_at is not None and self._read_at <= now < self._read_at + self._every:
            return
        if self._reading is None:
            self._read_at = now
            self._reading = asyncio.create_task(self._read(), name="metrics-gauges")
        try:
            async with asyncio.timeout(REFRESH_WAIT):
                await asyncio.shield(self._reading)
        except TimeoutError:
            log.warning("metrics: the store's counts took over %.0fs; serving the last values", REFRESH_WAIT)

    async def _read(self) -> None:
        try:
            self._values = by_label(await self._store.queue_counts(), self._label)
        except Exception as e:
            log.warning("metrics: could not read the store's counts; serving the last values: %s", e)
        finally:
            self._reading = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Runs in the exposition thread: reads one immutable snapshot.
        yield from self._families(self._values, self._clock())

    def _families(
        self, values: tuple[QueueGauge, ...] = (), now: datetime | None = None
    ) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "tasques_tasks", "Live tasks by queue and state (cluster-wide, from the store)", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "tasques_queue_oldest_task_age_seconds",
            "Seconds the oldest ready task (queued or failed, run_at <= now) has waited (cluster-wide; 0 if none)",
            labels=["queue"],
        )
        for q in values:
            for state in _STATES:
                tasks.add_metric([q.queue, state.value], q.counts.get(state, 0))
            age = 0.0
            if q.earliest_run_at is not None and now is not None:
                age = max(0.0, (now - q.earliest_run_at).total_seconds())
            oldest.add_metric([q.queue], age)
        yield tasks
        yield oldest
