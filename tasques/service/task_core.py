"""The core every task use case shares: the service's parts, the read-modify-write loop, and the task rules
the claims, the reaper and the creations apply. `TaskService` (tasks.py) adds the use cases on top of it."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from tasques.domain.errors import (
    QuotaExceeded,
    StoreUnavailable,
    TasquesError,
    VersionConflict,
)
from tasques.domain.http_target import HttpRequest
from tasques.domain.ref import QueueRef
from tasques.domain.retry import BackoffPolicy, RetryPolicy
from tasques.domain.task import DependencyFailure, JsonObj, NewTask, Repeat, Task, TaskKey, TaskState
from tasques.log_fields import about
from tasques.service.batching import Coalescer
from tasques.service.claims import SharedClaims
from tasques.service.clock import Clock
from tasques.service.conflicts import CONFLICT_RETRIES
from tasques.service.events import NO_EVENTS, Outcome, Source, TaskEvents
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.ticker import ClaimTicker, HttpWork
from tasques.store.base import GeneratedKeys, Store, TaskChange

log = logging.getLogger(__name__)

# Longest reason text recorded on a task the server gave up on.
MAX_REASON = 1000

# Group commit of single-task changes: the most per store write, and how many such writes may be in flight.
WRITE_BATCH = 1000
WRITE_FLUSHES = 2

# An HTTP task's default processing timeout is its request timeout plus this.
HTTP_CLAIM_GRACE = timedelta(seconds=5)


@dataclass(frozen=True)
class TaskSettings:
    retry_times: int = 25
    processing_timeout: timedelta = timedelta(minutes=30)
    block_for: timedelta = timedelta(seconds=3)
    max_block_for: timedelta = timedelta(seconds=60)
    max_claim_amount: int = 1000
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # Blocked claims and the dispatcher's idle queues are probed this often (one store request for all of
    # them, see service/ticker.py); in-process creates wake them at once regardless.
    poll_interval: timedelta = timedelta(milliseconds=250)
    # Read → change → conditional write is retried this many times on version conflicts.
    conflict_retries: int = CONFLICT_RETRIES
    max_list_limit: int = 1000
    # TLS file paths in HTTP requests are accepted only inside this directory (refused when None).
    tls_files_dir: str | None = None
    # The store seals sensitive fields (encryption keys are configured); without it `sensitive: true` is refused.
    encrypts_at_rest: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """A task as a producer asks for it: anything left None takes the server default."""

    queue: str
    kind: str
    id: str | None = None
    priority: int = 0
    run_at: datetime | None = None
    execution_delay: timedelta | None = None  # run this long after creation (instead of run_at)
    retry_times: int | None = None
    processing_timeout: timedelta | None = None
    args: JsonObj | None = None
    context: JsonObj | None = None
    http_request: HttpRequest | None = None
    retry_policy: RetryPolicy | None = None
    repeat: Repeat | None = None
    sensitive: bool = False  # args and context encrypted at rest
    depends_on: tuple[TaskKey, ...] = ()  # tasks of the project to finish first (see service/dependencies.py)
    on_dependency_failure: DependencyFailure = DependencyFailure.CANCEL
    # Required, and given by name: every task is created in the caller's project.
    project: str = field(kw_only=True)


# A project's quota of outstanding tasks (None: unlimited).
QuotaOf = Callable[[str], Awaitable[int | None]]


async def _no_quota(project: str) -> int | None:
    return None


class TaskCore:
    def __init__(
        self,
        store: Store,
        settings: TaskSettings,
        clock: Clock,
        signals: QueueSignals,
        queues: QueueService,
        events: TaskEvents = NO_EVENTS,
        quota_of: QuotaOf = _no_quota,
    ) -> None:
        self._store = store
        self._quota_of = quota_of
        self._events = events
        self._settings = settings
        self._clock = clock
        self._signals = signals
        self._queues = queues
        # Told (project, worker id, claimed_at) of every claim call whose outcome is unknown; see
        # service/claim_recovery.py.
        self.on_unknown_claim: Callable[[str, str, datetime], None] = _ignore_unknown_claim
        # Told every task that has just finished (done, dead or cancelled) or been deleted, as stored: what
        # waits on it (dependents, a batch's completion) is settled from here. Each must return at once (it
        # schedules its own work) and never raise.
        self.on_settled: list[Callable[[Sequence[Task]], None]] = []
        # Told every task just created waiting, as stored: a dependency may have finished between the creation's
        # check and its insert, so each is looked at once more. Same rules as `on_settled`.
        self.on_waiting: list[Callable[[Sequence[Task]], None]] = []
        # Single creates and single-task changes in flight are written together (group commit).
        self._inserts: Coalescer[tuple[Task, bool], Task] = Coalescer(
            self._insert_batch, max_batch=WRITE_BATCH, flushes=WRITE_FLUSHES
        )
        self._writes: Coalescer[Modification, Task] = Coalescer(
            self.modify_many, max_batch=WRITE_BATCH, flushes=WRITE_FLUSHES
        )
        # Probing faster than other servers' writes become searchable would find nothing new.
        self._ticker = ClaimTicker(store, clock, signals, max(settings.poll_interval, store.search_delay))
        self._claims = SharedClaims(
            store,
            clock,
            _claim,
            lambda project, worker_id, at: self.on_unknown_claim(project, worker_id, at),
            self.unclaim_all,
            self._events,
        )

    @property
    def events(self) -> TaskEvents:
        return self._events

    @property
    def queues(self) -> QueueService:
        return self._queues

    @property
    def settings(self) -> TaskSettings:
        return self._settings

    @property
    def http_work(self) -> HttpWork:
        """Where the dispatcher learns which queues may hold claimable HTTP tasks."""
        return self._ticker.http

    @property
    def ticker(self) -> ClaimTicker:
        return self._ticker

    @property
    def shared_claims(self) -> SharedClaims:
        return self._claims

    async def close(self) -> None:
        """Stop the claim ticker (blocked claims still end by their own deadline)."""
        await self._ticker.close()

    def now(self) -> datetime:
        return self._clock()

    def _finished(self, results: Sequence[Task | Exception], outcome: Outcome) -> None:
        """Tell the observers how these claims ended; a repeating task queued again after a success is created."""
        tasks = [r for r in results if isinstance(r, Task)]
        if not tasks:
            return
        self._events.finished(tasks, outcome, self._clock())
        self.settled([t for t in tasks if t.finished])
        if outcome is Outcome.DONE:
            again = [t for t in tasks if t.state is TaskState.QUEUED]
            if again:
                self._events.created(again, Source.REPEAT)

    def settled(self, tasks: Sequence[Task]) -> None:
        """Tell `on_settled` of tasks that have just finished or been deleted."""
        if tasks:
            for hook in self.on_settled:
                hook(tasks)

    def released(self, tasks: Sequence[Task]) -> None:
        """Waiting tasks the server has just queued: wake the claims blocked on their queues."""
        for ref, target in {(t.ref, t.target) for t in tasks}:
            self._signals.notify(ref, target)

    def cancelled_by_server(self, tasks: Sequence[Task]) -> None:
        """Tasks the server has just cancelled (e.g. a failed dependency): observed and settled like any cancel."""
        self._finished(tasks, Outcome.CANCELLED)

    def _lost_races(self, queues: list[str]) -> None:
        for queue, count in Counter(queues).items():
            self._events.conflicts(queue, count)

    async def _insert_batch(self, items: Sequence[tuple[Task, bool]]) -> list[Task | Exception]:
        """A flush of single creates: (task, whether its id was generated), one store write per project (a
        project's quota refuses only its own slots)."""
        by_project: dict[str, list[int]] = {}
        for i, (task, _) in enumerate(items):
            by_project.setdefault(task.project, []).append(i)
        results: list[Task | Exception] = [VersionConflict("not written")] * len(items)
        for project, slots in by_project.items():
            group = [items[i] for i in slots]
            generated = frozenset((task.queue, task.id) for task, is_generated in group if is_generated)
            try:
                stored: Sequence[Task | Exception] = await self._store.insert_tasks(
                    [task for task, _ in group], generated=generated, quota=await self._quota_of(project)
                )
            except QuotaExceeded as e:
                stored = [e] * len(group)
            for i, result in zip(slots, stored, strict=True):
                results[i] = result
        return results

    async def _change(self, queue: QueueRef, task_id: str, change: Change) -> Task:
        """One task's read-modify-write, group-committed with the other single calls in flight."""
        return await self._writes.submit(Modification(queue, task_id, change))

    async def modify_many(self, items: Sequence[Modification]) -> list[Task | Exception]:
        """The read-modify-write loop: each item's pure change applied to the task as stored, written
        conditionally, many per store trip; an item that lost a race is read and changed again, up to
        `conflict_retries` times. Items for the same task are applied one after the other, in order.
        Each slot is the stored task or that item's error."""
        results: list[Task | Exception | None] = [None] * len(items)
        attempts = [0] * len(items)
        pending = list(range(len(items)))
        while pending:
            # A wave holds each task once: the store needs distinct keys, and a task's later items wait.
            wave: list[int] = []
            waiting: list[int] = []
            keys: set[tuple[QueueRef, str]] = set()
            for i in pending:
                key = (items[i].queue, items[i].id)
                (waiting if key in keys else wave).append(i)
                keys.add(key)
            now = self._clock()
            got = await self._store.modify_tasks(
                [
                    TaskChange(
                        items[i].queue.queue, items[i].id, partial(_at, items[i].change, now), items[i].queue.project
                    )
                    for i in wave
                ]
            )
            self._lost_races(
                [items[i].queue.queue for i, r in zip(wave, got, strict=True) if isinstance(r, VersionConflict)]
            )
            retry: list[int] = []
            for i, result in zip(wave, got, strict=True):
                attempts[i] += 1
                if not isinstance(result, VersionConflict):
                    results[i] = result
                elif attempts[i] < self._settings.conflict_retries:
                    retry.append(i)
                else:
                    item = items[i]
                    results[i] = VersionConflict(
                        f"task {item.id} in queue {item.queue.queue} kept changing; gave up after retries"
                    )
            pending = sorted(retry + waiting)
        return [r if r is not None else VersionConflict("not written") for r in results]

    async def unclaim(self, worker_id: str, queue: QueueRef, task_id: str, claim_id: str | None = None) -> Task:
        task = await self._change(queue, task_id, lambda t, now: t.unclaimed(worker_id, now, claim_id))
        self._finished([task], Outcome.UNCLAIMED)
        self._signals.notify(queue)
        return task

    async def unclaim_all(self, worker_id: str, tasks: Sequence[Task]) -> None:
        """Best-effort unclaim of tasks nobody will run; any left behind still time out as usual."""
        for task in tasks:
            try:
                await self.unclaim(worker_id, task.ref, task.id, task.claim_id)
            except TasquesError as e:
                log.warning("could not hand back task %s in queue %s: %s", task.id, task.queue, e,
                            extra=about(task_id=task.id, queue=task.queue, worker_id=worker_id))  # fmt: skip
                if isinstance(e, StoreUnavailable) and task.last_claimed is not None:
                    self.on_unknown_claim(task.project, worker_id, task.last_claimed.claimed_at)


Change = Callable[[Task, datetime], Task]


@dataclass(frozen=True)
class WorkerUpdate:
    """One item of a worker's batch: which task, the claim it holds (None: any of this worker's), the data."""

    queue: str
    id: str
    claim_id: str | None = None
    data: JsonObj | None = None


@dataclass(frozen=True)
class Modification:
    """A pure change to one task, given the task as stored and the time."""

    queue: QueueRef
    id: str
    change: Change


def _at(change: Change, now: datetime, task: Task) -> Task:
    return change(task, now)


def _generated_keys(specs: Sequence[TaskSpec], news: Sequence[NewTask]) -> GeneratedKeys:
    """The (queue, id) of each resolved task whose id `resolve` generated (a random UUID4)."""
    return frozenset((new.queue, new.id) for spec, new in zip(specs, news, strict=True) if not spec.id)


def _ignore_unknown_claim(project: str, worker_id: str, claimed_at: datetime) -> None:
    log.warning("claim by %s at %s has an unknown outcome; its tasks may wait for their timeout", worker_id, claimed_at,
                extra=about(worker_id=worker_id))  # fmt: skip


def _claim(worker_id: str, at: datetime, task: Task, claim_id: str | None = None) -> Task:
    """Claim the task; one no transition can process is made dead with the reason, never failing the claim.

    A fresh id per task per claim (`claim_id`, or a new one): a late call from an earlier attempt by the same
    worker id is refused."""
    try:
        return task.claimed(worker_id, at, claim_id or uuid.uuid4().hex)
    except TasquesError:
        raise  # e.g. no longer claimable: the store skips it
    except Exception as e:
        return _give_up(task, "could not be claimed", e, at)


def _timed_out(backoff: BackoffPolicy, at: datetime, task: Task) -> Task:
    """The reaper's change: a failed attempt, or dead with the reason when the transition itself fails."""
    try:
        return task.timed_out(at, backoff)
    except TasquesError:
        raise
    except Exception as e:
        return _give_up(task, "could not be retried after its processing timeout", e, at)


def _give_up(task: Task, what: str, error: Exception, at: datetime) -> Task:
    log.error("task %s in queue %s %s, so it is now dead: %r", task.id, task.queue, what, error,
              extra=about(task_id=task.id, queue=task.queue))  # fmt: skip
    return task.given_up(f"{what}: {describe_error(error)}"[:MAX_REASON], at)


def describe_error(error: Exception) -> str:
    """How an unexpected error is recorded on the record it concerns (a task's reason, a recurring last_error)."""
    return f"{type(error).__name__}: {error}"


def _times_out_by(task: Task, now: datetime) -> bool:
    claim = task.last_claimed
    return task.state is TaskState.CLAIMED and claim is not None and claim.times_out_at <= now
