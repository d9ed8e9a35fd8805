"""Composition root: wires config, store, services, leader jobs and the HTTP app for one server process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from tasques.api.access import Authenticator
from tasques.api.app import build_app
from tasques.api.keys import AUTHENTICATOR
from tasques.backup import destination_for
from tasques.backup.runner import BackupRunner
from tasques.config import Config, ConfigError, TasksConfig
from tasques.dispatch import Dispatcher, DispatchSettings
from tasques.dispatch.policy import OutboundPolicy
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.retry import BackoffPolicy
from tasques.leader.election import LOCK_NAME, LeaderElector
from tasques.leader.jobs import (
    Archiver,
    BackupJob,
    BackupResults,
    BatchSweeper,
    DependencySweeper,
    LeaderJob,
    NoBackupResults,
    Reaper,
    RecurringEnqueuer,
    TimelinePruner,
    WorkerForgetter,
)
from tasques.observe.http import http_metrics_middleware
from tasques.observe.logs import log_store_calls
from tasques.observe.metrics import Metrics
from tasques.observe.store import StoreHook, observed
from tasques.service.batches import BatchService
from tasques.service.claim_recovery import ClaimResolver
from tasques.service.clock import Clock, utc_now
from tasques.service.dependencies import DependencyResolver
from tasques.service.events import TaskEvents, all_of
from tasques.service.health import Readiness
from tasques.service.overview import OverviewService
from tasques.service.projects import ProjectService, ProjectSettings
from tasques.service.queues import QueueService
from tasques.service.recurring import CatchUp, RecurringService
from tasques.service.signals import QueueSignals
from tasques.service.tasks import TaskService, TaskSettings
from tasques.service.tracing import NO_TRACING, Tracer
from tasques.service.workers import WorkerRegistry, WorkerSettings
from tasques.store.base import ReportsClaimConflicts, Store
from tasques.store.sealing import Sealer

if TYPE_CHECKING:
    from tasques.observe.apm_agent import Agent

ELECTOR = web.AppKey("elector", LeaderElector)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
RESOLVER = web.AppKey("claim_resolver", ClaimResolver)
DEPENDENCIES = web.AppKey("dependency_resolver", DependencyResolver)
APM_AGENT: web.AppKey[Agent] = web.AppKey("apm_agent")  # set only with apm.enabled


class StopDeadline:
    """One deadline for the whole stop: every cleanup step gets the time left on it, never more."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.at: float | None = None  # loop time; set when the stop begins

    def begin(self) -> float:
        if self.at is None:
            self.at = asyncio.get_running_loop().time() + self.grace
        return self.at

    def left(self) -> float:
        return max(0.0, self.begin() - asyncio.get_running_loop().time())


STOP_DEADLINE = web.AppKey("stop_deadline", StopDeadline)
log = logging.getLogger(__name__)


async def bounded(what: str, step: Awaitable[object], seconds: float) -> None:
    """Await one cleanup step for at most `seconds`; a step that fails or overruns is logged, not raised."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("stopping: %s did not finish in time; going on without it", what)
    except Exception:
        log.warning("stopping: %s failed", what, exc_info=True)


def open_store(config: Config) -> Store:
    """The configured store, sealing with the configured encryption keys (none: nothing is sealed)."""
    sealer = Sealer.from_config(config.encryption)
    if sealer is not None:  # key ids only, never key material
        log.info("encryption at rest on: keys %s, new writes use %s", ", ".join(sealer.key_ids), sealer.current)
    if config.store.kind == "sqlite":
        from tasques.store.sqlite.store import SqliteStore

        return SqliteStore(config.store.sqlite.path, config.store.sqlite.busy_timeout, sealer=sealer)
    if config.store.kind == "elasticsearch":
        from tasques.store.elasticsearch import ElasticsearchStore

        return ElasticsearchStore.from_config(config.store.elasticsearch, sealer=sealer)
    raise ConfigError(f"unknown store.kind {config.store.kind!r}")


def task_settings(tasks: TasksConfig) -> TaskSettings:
    b = tasks.backoff
    return TaskSettings(
        retry_times=tasks.retry_times,
        processing_timeout=tasks.processing_timeout,
        block_for=tasks.block_for,
        max_block_for=tasks.max_block_for,
        max_claim_amount=tasks.max_claim_amount,
        poll_interval=tasks.claim_poll_interval,
        backoff=BackoffPolicy(initial=b.initial, multiplier=b.multiplier, max=b.max),
    )


def project_settings(config: Config) -> ProjectSettings:
    auth = config.auth
    return ProjectSettings(auth.default_max_outstanding_tasks, auth.enabled, auth.token_cache_ttl)


def backup_job(config: Config, clock: Clock, metrics: Metrics | None) -> BackupJob:
    b = config.backup
    runner = BackupRunner(config.store.sqlite.path, destination_for(b), b.keep)
    results: BackupResults = metrics.backups() if metrics is not None else NoBackupResults()
    return BackupJob(runner, b.every, clock, results)


def server_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class Observers:
    """What watches one server: store hooks (outermost first), task event observers, HTTP middlewares
    (outermost first), the tracer of the background loops."""

    store_hooks: list[StoreHook] = dataclasses.field(default_factory=list)
    events: list[TaskEvents] = dataclasses.field(default_factory=list)
    middlewares: list[Middleware] = dataclasses.field(default_factory=list)
    tracer: Tracer = NO_TRACING
    metrics: Metrics | None = None
    apm: Agent | None = None


def observers_for(config: Config, backend: str, clock: Clock, holder: str) -> Observers:
    """Every observer the config turns on. Each kind (metrics, traces) adds its parts here."""
    seen = Observers()
    if config.apm.enabled:
        from tasques.observe.apm import load_agent  # the agent is imported only when APM is on

        agent = seen.apm = load_agent(config.apm, holder)
        seen.store_hooks.append(agent.store_span)
        seen.middlewares.append(agent.middleware())
        seen.tracer = agent.tracer
    if config.metrics.enabled:
        metrics = seen.metrics = Metrics(config.metrics, backend, clock)
        seen.store_hooks.append(metrics.store_hook)
        seen.events.append(metrics)
        seen.middlewares.append(http_metrics_middleware(metrics))
    if config.logging.level == "debug":  # a line per store call: only when asked for
        seen.store_hooks.append(log_store_calls(logging.getLogger("tasques.store.calls")))
    return seen


def build_server(
    config: Config,
    store: Store,
    clock: Clock = utc_now,
    holder: str | None = None,
    *,
    observers: Observers | None = None,
) -> web.Application:
    """The whole server as an aiohttp app: the store opens and the leader loop starts with the app.
    `observers`: defaults to what `config` turns on (`observers_for`)."""
    holder = holder or server_id()
    seen = observers if observers is not None else observers_for(config, store.kind, clock, holder)
    events = all_of(seen.events)
    if isinstance(store, ReportsClaimConflicts):
        store.on_claim_conflicts = events.conflicts
    store = observed(store, seen.store_hooks)
    if seen.metrics is not None:
        seen.metrics.read_gauges_from(store)
    signals = QueueSignals()
    queues = QueueService(store, clock, signals)
    d = config.dispatch
    # The store must seal with the same keys (`open_store`): a sensitive task is refused by a store without them.
    settings = dataclasses.replace(
        task_settings(config.tasks), tls_files_dir=d.tls_files_dir, encrypts_at_rest=bool(config.encryption.keys)
    )
    projects = ProjectService(store, clock, project_settings(config))
    tasks = TaskService(store, settings, clock, signals, queues, events, projects.quota_of)
    w = config.workers
    workers = WorkerRegistry(
        store, clock, WorkerSettings(w.flush_every, w.drain_refresh_every, w.gone_after, w.forget_after)
    )
    resolver = ClaimResolver(store, tasks)
    tasks.on_unknown_claim = resolver.remember
    batches = BatchService(store, tasks, clock, projects.quota_of)
    tasks.on_settled.append(batches.settled)
    dependencies = DependencyResolver(store, tasks)
    tasks.on_settled.append(dependencies.on_settled)
    tasks.on_waiting.append(dependencies.on_waiting)
    hk = config.housekeeping
    recurring = RecurringService(store, tasks, clock, CatchUp(hk.recurring_catch_up, hk.recurring_catch_up_max), events)
    jobs: list[LeaderJob] = [
        Reaper(tasks, hk.reap_every, hk.batch_size),
        RecurringEnqueuer(recurring, hk.recurring_every),
        Archiver(tasks, hk.archive_every, hk.archive_older_than, hk.batch_size),
        TimelinePruner(tasks, hk.archive_every, hk.timeline_retention, hk.batch_size),
        WorkerForgetter(workers, w.forget_every, hk.batch_size),
        BatchSweeper(batches, hk.batches_every, hk.batch_size),
        DependencySweeper(dependencies, hk.dependencies_every, hk.batch_size),
    ]
    if config.backup.enabled and store.kind == "sqlite":  # the config refuses backups of Elasticsearch
        jobs.append(backup_job(config, clock, seen.metrics))
    elector = LeaderElector(
        store, holder, jobs, clock, config.leader.lease, config.leader.renew_every, events=events, tracer=seen.tracer
    )
    overview = OverviewService(
        store, queues, clock, lock_name=LOCK_NAME, server_id=holder, is_leader=lambda: elector.is_leader
    )
    policy = OutboundPolicy.from_config(d.allowed_networks, d.allowed_hosts)
    dispatch_settings = DispatchSettings(
        d.poll_interval, d.max_concurrent_dispatches, policy, d.tls_files_dir, d.max_redirects
    )
    dispatcher = Dispatcher(tasks, f"dispatcher-{holder}", dispatch_settings, events, seen.tracer)
    readiness = Readiness(store, config.store.ping_timeout)
    authenticator = Authenticator.from_config(config, projects, clock=clock)
    app = build_app(
        tasks,
        recurring,
        projects,
        batches,
        store.kind,
        authenticate=lambda request: authenticator.authenticate(request.headers, request.remote, request.path),
        metrics_open=config.auth.metrics_open,
        readiness=readiness,
        metrics_page=seen.metrics,
        observers=seen.middlewares,
        workers=workers,
        overview=overview,
    )
    app[ELECTOR] = elector
    app[AUTHENTICATOR] = authenticator
    app[DISPATCHER] = dispatcher
    app[RESOLVER] = resolver
    app[DEPENDENCIES] = dependencies
    # The orderly stop gets 90% of the grace; the CLI exits the process at the full grace regardless.
    deadline = app[STOP_DEADLINE] = StopDeadline(0.9 * config.server.shutdown_grace.total_seconds())

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await store.open()
        if config.auth.enabled:
            await projects.ensure(DEFAULT_PROJECT)  # the admin token's project; tokens of a project need its record
        elector.start()
        workers.start()
        loops = [asyncio.create_task(dispatcher.run(), name="dispatcher")] if d.enabled else []
        yield
        # The CLI has usually stopped the leader already (first thing on a signal); this is idempotent.
        await elector.stop(deadline.left())
        for loop in loops:
            loop.cancel()
        if loops:
            await asyncio.wait(loops, timeout=deadline.left())
            for t in loops:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    log.warning("stopping: %s failed", t.get_name(), exc_info=t.exception())
        await batches.close()
        await bounded("resolving dependencies", dependencies.close(), deadline.left())
        await tasks.close()
        await bounded("the last worker sightings", workers.close(), deadline.left())
        await bounded("closing the store", store.close(), deadline.left())

    if seen.apm is not None:
        app[APM_AGENT] = seen.apm
        # Before lifecycle: the agent runs before the store opens and flushes after it closes.
        app.cleanup_ctx.append(partial(_run_agent, seen.apm.start, seen.apm.close))
    app.cleanup_ctx.append(lifecycle)
    # After lifecycle, so it starts once the store is open and stops before the store closes.
    app.cleanup_ctx.append(partial(_run_resolver, resolver))
    return app


async def _run_agent(
    start: Callable[[], None], close: Callable[[], Awaitable[None]], _: web.Application
) -> AsyncIterator[None]:
    start()
    yield
    await close()


async def _run_resolver(resolver: ClaimResolver, _: web.Application) -> AsyncIterator[None]:
    loop = asyncio.create_task(resolver.run(), name="claim-resolver")
    yield
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
