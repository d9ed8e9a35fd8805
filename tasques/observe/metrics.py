"""Prometheus metrics of one server: its own registry (never the global one), fed by the services' events, a
store hook and an HTTP middleware (http.py), and exported by `render` for `GET /metrics`.

Per-task work is a dict lookup or two and an increment: labelled children are cached per label values, and
queue labels are capped (labels.py). Metric names and meanings: README.md in this package."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from types import TracebackType
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

import tasques
from tasques.config import MetricsConfig
from tasques.domain.errors import StoreUnavailable, TasquesError
from tasques.domain.task import Task, TaskState
from tasques.observe.gauges import StoreGauges
from tasques.observe.labels import QueueLabels, method_label, status_class
from tasques.service.clock import Clock
from tasques.service.events import Outcome, RecurringOutcome, Source
from tasques.store.base import Store

# Seconds. Claim latency spans an idle queue's milliseconds to a backlog's hours; runs end within 30 minutes.
CLAIM_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Outcomes whose tasks ran a claim that ends now (a cancel may hit a task that was not claimed; a task given up
# on at its claim never ran), so they have a run duration.
_RAN = frozenset({Outcome.DONE, Outcome.FAILED, Outcome.TIMED_OUT, Outcome.UNCLAIMED})

_Child = TypeVar("_Child")


def version() -> str:
    try:
        return metadata.version("tasques")
    except metadata.PackageNotFoundError:
        return tasques.__version__


class _Children:
    """Labelled children of one metric, cached by label values."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


class Metrics:
    """One server's metrics. Implements `TaskEvents`; `store_hook` is a `StoreHook`."""

    # Every name here is a classic one, so the body is the 0.0.4 text format, which every Prometheus (2.x too) reads.
    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self, config: MetricsConfig, backend: str, clock: Clock) -> None:
        self.registry = r = CollectorRegistry()
        self._clock = clock
        self.queue = QueueLabels(config.max_queues)
        self._gauge_cache = config.gauge_cache
        self._gauges: StoreGauges | None = None
        q = ["queue"]
        self._created = _Children(Counter("tasques_tasks_created", "Tasks created, by how", [*q, "source"], registry=r))
        self._claimed = _Children(
            Counter("tasques_tasks_claimed", "Tasks claimed (by workers and the dispatcher)", q, registry=r)
        )
        self._finished = _Children(
            Counter(
                "tasques_tasks_finished",
                "Claims ended (and cancels), by outcome; a dead task is dead",
                [*q, "outcome"],
                registry=r,
            )
        )
        self._claim_latency = _Children(
            Histogram("tasques_task_claim_latency_seconds", "From a task's run_at to its claim", q,
                      buckets=CLAIM_LATENCY_BUCKETS, registry=r)
        )  # fmt: skip
        self._run = _Children(
            Histogram("tasques_task_run_duration_seconds", "From a claim to its end", [*q, "outcome"],
                      buckets=RUN_BUCKETS, registry=r)
        )  # fmt: skip
        self._conflicts = _Children(
            Counter(
                "tasques_claim_conflicts", "Conditional task writes that lost a race to another writer", q, registry=r
            )
        )
        self._expired = _Children(
            Counter("tasques_claims_expired", "Claims reaped past their processing timeout", q, registry=r)
        )
        self._recurring = _Children(
            Counter(
                "tasques_recurring_runs", "Recurring slots handled by this server's leader", ["outcome"], registry=r
            )
        )
        self._leader = Gauge("tasques_leader", "1 while this server is the leader", registry=r)
        self._leader_changes = Counter(
            "tasques_leader_changes", "Times this server became or stopped being the leader", registry=r
        )
        self._leading = False
        http = ["method", "route", "status_class"]
        self._http_count = _Children(
            Counter("tasques_http_requests", "HTTP requests served, by route template", http, registry=r)
        )
        self._http_time = _Children(
            Histogram(
                "tasques_http_request_duration_seconds",
                "HTTP request durations",
                http,
                buckets=HTTP_BUCKETS,
                registry=r,
            )
        )
        dispatch = [*q, "status_class"]
        self._dispatch_count = _Children(
            Counter(
                "tasques_http_target_dispatches",
                "HTTP-target requests sent, by status class or error",
                dispatch,
                registry=r,
            )
        )
        self._dispatch_time = _Children(
            Histogram("tasques_http_target_dispatch_duration_seconds", "HTTP-target request durations", dispatch,
                      buckets=DISPATCH_BUCKETS, registry=r)
        )  # fmt: skip
        store = ["backend", "operation"]
        self._store_time = _Children(
            Histogram("tasques_store_operation_duration_seconds", "Store call durations, by Store method", store,
                      buckets=STORE_BUCKETS, registry=r)
        )  # fmt: skip
        self._store_errors = _Children(
            Counter(
                "tasques_store_errors",
                "Store calls that failed: unavailable, or an unexpected error",
                store,
                registry=r,
            )
        )
        Gauge("tasques_build_info", "Always 1: this server's version and store", ["version", "backend"],
              registry=r).labels(version(), backend).set(1)  # fmt: skip
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def backups(self) -> BackupMetrics:
        """The backup metrics, registered now: only servers that take backups export them."""
        return BackupMetrics(self.registry)

    def read_gauges_from(self, store: Store) -> None:
        """Export the cluster-wide gauges, read from `store` (pass the observed store: its calls are timed too)."""
        self._gauges = StoreGauges(store, self._clock, self._gauge_cache, self.queue)
        self.registry.register(self._gauges)

    async def render(self) -> bytes:
        """The text exposition; the store gauges are refreshed first if stale (see gauges.py)."""
        if self._gauges is not None:
            await self._gauges.refresh()
        # Formatting every series is CPU work that grows with the queue count: off the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)

    # TaskEvents

    def created(self, tasks: Sequence[Task], source: Source) -> None:
        for t in tasks:
            self._created(self.queue(t.queue), source.value).inc()

    def claimed(self, tasks: Sequence[Task], at: datetime) -> None:
        for t in tasks:
            queue = self.queue(t.queue)
            self._claimed(queue).inc()
            self._claim_latency(queue).observe(max(0.0, (at - t.run_at).total_seconds()))

    def finished(self, tasks: Sequence[Task], outcome: Outcome, at: datetime) -> None:
        ran = outcome in _RAN
        for t in tasks:
            queue = self.queue(t.queue)
            label = Outcome.DEAD.value if t.state is TaskState.DEAD else outcome.value
            self._finished(queue, label).inc()
            if outcome is Outcome.TIMED_OUT:
                self._expired(queue).inc()
            if ran and t.last_claimed is not None:
                self._run(queue, label).observe(max(0.0, (at - t.last_claimed.claimed_at).total_seconds()))

    def conflicts(self, queue: str, count: int) -> None:
        self._conflicts(self.queue(queue)).inc(count)

    def recurring_run(self, outcome: RecurringOutcome) -> None:
        self._recurring(outcome.value).inc()

    def leadership(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)
        if leading != self._leading:
            self._leading = leading
            self._leader_changes.inc()

    def dispatched(self, queue: str, status: int | None, seconds: float) -> None:
        labels = (self.queue(queue), status_class(status))
        self._dispatch_count(*labels).inc()
        self._dispatch_time(*labels).observe(seconds)

    # HTTP (called by the middleware in http.py)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method_label(method), route, status_class(status))
        self._http_count(*labels).inc()
        self._http_time(*labels).observe(seconds)

    # StoreHook

    def store_hook(self, backend: str, operation: str) -> _StoreTiming:
        return _StoreTiming(self._store_time(backend, operation), self._store_errors(backend, operation))


class BackupMetrics:
    """The leader's SQLite backups (`BackupResults` of `tasques.leader.jobs.BackupJob`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self._last_success = Gauge(
            "tasques_backup_last_success_timestamp_seconds",
            "When this server last stored a backup (0: never)",
            registry=r,
        )
        self._last_size = Gauge("tasques_backup_last_size_bytes", "Size of the last backup stored, compressed",
                                registry=r)  # fmt: skip
        self._failures = Counter("tasques_backup_failures", "Backups that failed (retried at the next interval)",
                                 registry=r)  # fmt: skip

    def backup_taken(self, size: int, at: datetime) -> None:
        self._last_success.set(at.timestamp())
        self._last_size.set(size)

    def backup_failed(self) -> None:
        self._failures.inc()


class _StoreTiming:
    """One store call: its duration observed, and counted as an error if it failed for a reason that is not one
    of the store's answers (NotFound, VersionConflict, AlreadyExists, ... are answers)."""

    __slots__ = ("_duration", "_errors", "_started")

    def __init__(self, duration: Any, errors: Any) -> None:
        self._duration = duration
        self._errors = errors
        self._started = 0.0

    def __enter__(self) -> _StoreTiming:
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._duration.observe(time.perf_counter() - self._started)
        if isinstance(error, StoreUnavailable) or (
            isinstance(error, Exception) and not isinstance(error, TasquesError)
        ):
            self._errors.inc()
