"""Leader-only jobs: small classes with `run_once()`, so tests drive them directly."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tasques.backup.destinations import BackupStorageError
from tasques.backup.runner import BackupError, BackupRecord, BackupRunner
from tasques.service.batches import BatchService
from tasques.service.clock import Clock
from tasques.service.dependencies import DependencyResolver
from tasques.service.recurring import RecurringService
from tasques.service.tasks import TaskService
from tasques.service.workers import WorkerRegistry

log = logging.getLogger("tasques.backup")


class LeaderJob(Protocol):
    name: str
    interval: timedelta

    async def run_once(self) -> int:
        """Do one pass; return how many records it changed."""


@dataclass
class Reaper:
    """Claims past `times_out_at` become failed attempts (retried, or dead when out of retries)."""

    tasks: TaskService
    interval: timedelta
    batch: int
    name: str = "reaper"

    async def run_once(self) -> int:
        return await self.tasks.reap_timed_out(self.batch)


@dataclass
class RecurringEnqueuer:
    recurring: RecurringService
    interval: timedelta
    name: str = "recurring-enqueuer"

    async def run_once(self) -> int:
        return await self.recurring.enqueue_due()


@dataclass
class Archiver:
    """Done and dead tasks older than `older_than` move to the archive (still readable by id)."""

    tasks: TaskService
    interval: timedelta
    older_than: timedelta
    batch: int
    name: str = "archiver"

    async def run_once(self) -> int:
        return await self.tasks.archive_finished(self.older_than, self.batch)


@dataclass
class TimelinePruner:
    """Attempt timeline entries older than `retention` are deleted."""

    tasks: TaskService
    interval: timedelta
    retention: timedelta
    batch: int
    name: str = "timeline-pruner"

    async def run_once(self) -> int:
        return await self.tasks.prune_timeline(self.retention, self.batch)


@dataclass
class WorkerForgetter:
    """Worker records silent for `workers.forget_after` are deleted, so the registry does not grow for ever."""

    workers: WorkerRegistry
    interval: timedelta
    batch: int
    name: str = "worker-forgetter"

    async def run_once(self) -> int:
        return await self.workers.forget(self.batch)


@dataclass
class BatchSweeper:
    """Open batches whose tasks have all finished are completed (their callback created): repairs completions
    missed when tasks settled (a crash, a store error), `batch` batches per pass."""

    batches: BatchService
    interval: timedelta
    batch: int
    name: str = "batch-sweeper"

    async def run_once(self) -> int:
        return await self.batches.sweep(self.batch)


@dataclass
class DependencySweeper:
    """Every waiting task is evaluated afresh: repairs a release or cancel lost to a crash between a finish and
    its resolution (the resolver acts on finishes; this never scans on the hot path)."""

    resolver: DependencyResolver
    interval: timedelta
    batch: int
    name: str = "dependency-sweeper"

    async def run_once(self) -> int:
        return await self.resolver.sweep(self.batch)


class BackupResults(Protocol):
    """What watches the backups (the metrics)."""

    def backup_taken(self, size: int, at: datetime) -> None: ...

    def backup_failed(self) -> None: ...


class NoBackupResults:
    def backup_taken(self, size: int, at: datetime) -> None:
        pass

    def backup_failed(self) -> None:
        pass


@dataclass
class BackupJob:
    """An online backup of the SQLite store every `interval`, on a worker thread (it reads the whole database and
    may upload it). A failure is logged and counted, and the next interval tries again."""

    runner: BackupRunner
    interval: timedelta
    clock: Clock
    results: BackupResults
    name: str = "backup"

    async def run_once(self) -> int:
        try:
            record: BackupRecord = await asyncio.to_thread(self.runner.take, self.clock())
        except (BackupError, BackupStorageError, OSError) as e:
            # Our own messages (no secrets in them), on one line: these are expected failures, not bugs.
            log.error("backup to %s failed; retrying in %s: %s", self.runner.destination.description, self.interval, e)
            self.results.backup_failed()
            return 0
        except Exception:
            self.results.backup_failed()
            raise  # unexpected: the leader loop logs it with its traceback, and runs the job again next interval
        self.results.backup_taken(record.size, self.clock())
        return 1
