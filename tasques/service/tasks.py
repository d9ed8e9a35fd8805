"""Task use cases: create, get, claim, report, done, fail, unclaim, list, and the housekeeping passes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
    NotClaimed,
    QuotaExceeded,
    StoreUnavailable,
    TasquesError,
    VersionConflict,
)
from tasques.domain.horizon import later
from tasques.domain.http_target import HttpRequest, TaskTarget, request_problems
from tasques.domain.ref import QueueRef
from tasques.domain.retry import BackoffPolicy, RetryPolicy
from tasques.domain.task import JsonObj, NewTask, Repeat, Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.log_fields import about
from tasques.service.batching import Coalescer
from tasques.service.claims import SharedClaims
from tasques.service.clock import Clock
from tasques.service.conflicts import CONFLICT_RETRIES
from tasques.service.events import NO_EVENTS, Outcome, Source, TaskEvents
from tasques.service.queues import QueueService
from tasques.service.signals import QueueSignals
from tasques.service.ticker import ClaimTicker, HttpWork
from tasques.store.base import GeneratedKeys, QueueCounts, Store, TaskChange, TaskFilter, TaskPage

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
    # Required, and given by name: every task is created in the caller's project.
    project: str = field(kw_only=True)


# A project's quota of outstanding tasks (None: unlimited).
QuotaOf = Callable[[str], Awaitable[int | None]]


async def _no_quota(project: str) -> int | None:
    return None


class TaskService:
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

    def resolve(self, spec: TaskSpec, now: datetime, queue_retry_policy: RetryPolicy | None = None) -> NewTask:
        """Fill in the defaults: a generated id, run now, the configured retries and timeout, the queue's
        retry policy."""
        if spec.run_at is not None and spec.execution_delay is not None:
            raise InvalidInput(
                "invalid task", [FieldProblem("execution_delay", "give run_at or execution_delay, not both")]
            )
        if spec.processing_timeout is not None and spec.processing_timeout <= timedelta(0):
            raise InvalidInput("invalid task", [FieldProblem("processing_timeout", "must be a positive duration")])
        if spec.http_request is not None:
            self.check_http_request(spec.http_request, "http_request")
        if spec.sensitive:
            self.check_sensitive("sensitive")
        return NewTask(
            id=spec.id or str(uuid.uuid4()),
            queue=spec.queue,
            kind=spec.kind,
            priority=spec.priority,
            run_at=spec.run_at or (later(now, spec.execution_delay) if spec.execution_delay is not None else now),
            retry_times=self._settings.retry_times if spec.retry_times is None else spec.retry_times,
            processing_timeout=spec.processing_timeout or self._default_timeout(spec),
            args=spec.args,
            context=spec.context,
            http_request=spec.http_request,
            retry_policy=spec.retry_policy or queue_retry_policy,
            repeat=spec.repeat,
            project=spec.project,
            sensitive=spec.sensitive,
        )

    def check_sensitive(self, field: str) -> None:
        """InvalidInput naming `field` when the store cannot encrypt a sensitive task's args and context."""
        if not self._settings.encrypts_at_rest:
            problem = (
                "args and context cannot be encrypted at rest: this server has no encryption keys (encryption.keys)"
            )
            raise InvalidInput("sensitive tasks are not available", [FieldProblem(field, problem)])

    def check_http_request(self, request: HttpRequest, field: str) -> None:
        """InvalidInput naming `field.<sub-field>` for a request the dispatcher would refuse to send."""
        problems = request_problems(request, self._settings.tls_files_dir)
        if problems:
            raise InvalidInput("invalid HTTP request", [FieldProblem(f"{field}.{f}", p) for f, p in problems])

    def _default_timeout(self, spec: TaskSpec) -> timedelta:
        return self.default_processing_timeout(spec.http_request)

    def default_processing_timeout(self, http_request: HttpRequest | None) -> timedelta:
        # The dispatcher holds an HTTP task's claim for one request: if its server dies, retry soon after.
        if http_request is not None:
            return http_request.timeout + HTTP_CLAIM_GRACE
        return self._settings.processing_timeout

    async def create(self, spec: TaskSpec) -> Task:
        [task] = await self._resolve_all([spec])
        return await self.insert(task, self._clock(), generated=_generated_keys([spec], [task]), source=Source.API)

    async def create_many(self, specs: Sequence[TaskSpec]) -> list[Task | AlreadyExists]:
        """Create many tasks of one project in one store round trip; a taken id fails only its own slot, the
        project's quota refuses them all (`QuotaExceeded`)."""
        news = await self._resolve_all(specs)
        return await self.insert_many(news, self._clock(), generated=_generated_keys(specs, news), source=Source.BULK)

    async def _resolve_all(self, specs: Sequence[TaskSpec]) -> list[NewTask]:
        settings = await self._queues.all()
        now = self._clock()
        news = []
        for spec in specs:
            queue = settings.get(QueueRef(spec.project, spec.queue))
            news.append(self.resolve(spec, now, queue.retry_policy if queue is not None else None))
        return news

    async def insert(
        self, new: NewTask, now: datetime, *, generated: GeneratedKeys = frozenset(), source: Source = Source.API
    ) -> Task:
        """Persist a task whose defaults are already resolved, and wake claims waiting on its queue.
        `generated`: the keys whose id `resolve` generated (see `Store.insert_task`)."""
        await self._register_http_queues([new])
        stored = await self._inserts.submit((Task.create(new, now), (new.queue, new.id) in generated))
        self._events.created([stored], source)
        self._signals.notify(stored.ref, stored.target)
        return stored

    async def insert_many(
        self,
        news: Sequence[NewTask],
        now: datetime,
        *,
        generated: GeneratedKeys = frozenset(),
        source: Source = Source.BULK,
    ) -> list[Task | AlreadyExists]:
        if len({n.project for n in news}) > 1:
            raise ValueError("insert_many takes the tasks of one project")
        if not news:
            return []
        await self._register_http_queues(news)
        quota = await self._quota_of(news[0].project)
        tasks = [Task.create(n, now) for n in news]
        results = await self._store.insert_tasks(tasks, generated=generated, quota=quota)
        self._events.created([r for r in results if isinstance(r, Task)], source)
        for ref, target in {(r.ref, r.target) for r in results if isinstance(r, Task)}:
            self._signals.notify(ref, target)
        return results

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

    async def _register_http_queues(self, news: Sequence[NewTask]) -> None:
        # HTTP tasks register their queue, so the dispatcher (which claims per queue) looks at it.
        for ref in dict.fromkeys(QueueRef(n.project, n.queue) for n in news if n.http_request is not None):
            await self._queues.register(ref)

    async def get(self, ref: QueueRef, task_id: str) -> Task:
        return await self._store.get_task(ref.queue, task_id, project=ref.project)

    async def claim(
        self,
        worker_id: str,
        project: str,
        queues: Sequence[str],
        amount: int = 1,
        block_for: timedelta | None = None,
    ) -> list[Task]:
        """Claim up to `amount` tasks, returning as soon as any are claimed, or `[]` after `block_for`.

        `amount` and `block_for` above the configured maxima are clamped to them, as the original server
        accepted any value (a 400 would stop an unmodified Go worker); below their minimum they are refused."""
        wait = self._settings.block_for if block_for is None else block_for
        problems = []
        if not queues:
            problems.append(FieldProblem("queues", "must name at least one queue"))
        if amount < 1:
            problems.append(FieldProblem("amount", "must be at least 1"))
        if wait < timedelta(0):
            problems.append(FieldProblem("block_for", "must not be negative"))
        if problems:
            raise InvalidInput("invalid claim", problems)
        amount = min(amount, self._settings.max_claim_amount)
        wait = min(wait, self._settings.max_block_for)
        unique_queues = [QueueRef(project, q) for q in dict.fromkeys(queues)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        # A claim that would block on queues the last probe found empty waits for the next one at once.
        skip = wait > timedelta(0) and self._ticker.known_empty(unique_queues)
        while True:
            claimed = [] if skip else await self._claim_pull(worker_id, project, unique_queues, amount)
            remaining = deadline - loop.time()
            if claimed or remaining <= 0:
                return claimed
            await self._ticker.wait(unique_queues, remaining)
            skip = self._ticker.known_empty(unique_queues)

    async def _claim_pull(self, worker_id: str, project: str, queues: list[QueueRef], amount: int) -> list[Task]:
        paused = await self._queues.paused()
        active = [q for q in queues if q not in paused]
        if not active:
            return []
        generation = self._ticker.generation
        claimed = await self._claims.claim(worker_id, project, [q.queue for q in active], amount, TaskTarget.PULL)
        if not claimed:
            self._ticker.found_empty(active, generation)
        return claimed

    async def claim_http(self, worker_id: str, ref: QueueRef, amount: int) -> list[Task]:
        """The dispatcher's claim: HTTP-target tasks of one queue, without waiting; nothing from a paused queue."""
        if amount <= 0 or ref in await self._queues.paused():
            return []
        return await self._claims.claim(worker_id, ref.project, [ref.queue], amount, TaskTarget.HTTP)

    # `claim_id`, when given, must be the current claim's (ClaimMismatch otherwise); None checks the worker only.
    async def report(
        self, worker_id: str, queue: QueueRef, task_id: str, data: JsonObj | None, claim_id: str | None = None
    ) -> Task:
        return await self._change(queue, task_id, lambda t, now: t.reported(worker_id, data, now, claim_id))

    async def done(
        self, worker_id: str, queue: QueueRef, task_id: str, data: JsonObj | None, claim_id: str | None = None
    ) -> Task:
        task = await self._change(queue, task_id, lambda t, now: t.done(worker_id, data, now, claim_id))
        self._finished([task], Outcome.DONE)
        return task

    async def fail(
        self, worker_id: str, queue: QueueRef, task_id: str, data: JsonObj | None, claim_id: str | None = None
    ) -> Task:
        backoff = self._settings.backoff
        task = await self._change(queue, task_id, lambda t, now: t.failed(worker_id, data, now, backoff, claim_id))
        self._finished([task], Outcome.FAILED)
        return task

    async def fail_finally(
        self, worker_id: str, queue: QueueRef, task_id: str, data: JsonObj, claim_id: str | None = None
    ) -> Task:
        """A failed attempt that is never retried (the task becomes dead), e.g. a refused destination."""
        task = await self._change(queue, task_id, lambda t, now: t.failed_finally(worker_id, data, now, claim_id))
        self._finished([task], Outcome.FAILED)  # dead, and labelled so
        return task

    # Batches of a worker's writes: one store trip per batch (more only for lost races), a result per item.
    async def report_many(
        self, worker_id: str, project: str, updates: Sequence[WorkerUpdate]
    ) -> list[Task | Exception]:
        return await self._for_worker(
            project, updates, lambda u: lambda t, now: t.reported(worker_id, u.data, now, u.claim_id)
        )

    async def done_many(self, worker_id: str, project: str, updates: Sequence[WorkerUpdate]) -> list[Task | Exception]:
        results = await self._for_worker(
            project, updates, lambda u: lambda t, now: t.done(worker_id, u.data, now, u.claim_id)
        )
        self._finished(results, Outcome.DONE)
        return results

    async def fail_many(self, worker_id: str, project: str, updates: Sequence[WorkerUpdate]) -> list[Task | Exception]:
        backoff = self._settings.backoff
        results = await self._for_worker(
            project, updates, lambda u: lambda t, now: t.failed(worker_id, u.data, now, backoff, u.claim_id)
        )
        self._finished(results, Outcome.FAILED)
        return results

    async def unclaim_many(
        self, worker_id: str, project: str, updates: Sequence[WorkerUpdate]
    ) -> list[Task | Exception]:
        results = await self._for_worker(
            project, updates, lambda u: lambda t, now: t.unclaimed(worker_id, now, u.claim_id)
        )
        self._finished(results, Outcome.UNCLAIMED)
        for ref in {r.ref for r in results if isinstance(r, Task)}:
            self._signals.notify(ref)
        return results

    async def _for_worker(
        self, project: str, updates: Sequence[WorkerUpdate], change_for: Callable[[WorkerUpdate], Change]
    ) -> list[Task | Exception]:
        return await self.modify_many([Modification(QueueRef(project, u.queue), u.id, change_for(u)) for u in updates])

    async def cancel(self, queue: QueueRef, task_id: str) -> Task:
        """Never run the task again; if claimed, its worker's later report/done/failed are refused (409)."""
        task = await self._change(queue, task_id, lambda t, now: t.cancelled(now))
        self._finished([task], Outcome.CANCELLED)
        return task

    async def run_now(self, queue: QueueRef, task_id: str) -> Task:
        """Make a queued or failed task claimable at once."""
        task = await self._change(queue, task_id, lambda t, now: t.run_now(now))
        self._signals.notify(queue)
        return task

    async def unclaim(self, worker_id: str, queue: QueueRef, task_id: str, claim_id: str | None = None) -> Task:
        task = await self._change(queue, task_id, lambda t, now: t.unclaimed(worker_id, now, claim_id))
        self._finished([task], Outcome.UNCLAIMED)
        self._signals.notify(queue)
        return task

    async def hand_back(self, worker_id: str, claimed_at: datetime, queue: QueueRef, task_id: str) -> Task:
        """Unclaim a task only while it is still claimed by `worker_id` at `claimed_at` (one claim call whose
        outcome was unknown); `NotClaimed` once anything else has changed it."""

        def change(task: Task, now: datetime) -> Task:
            claim = task.last_claimed
            if (
                task.state is not TaskState.CLAIMED
                or claim is None
                or (claim.worker_id, claim.claimed_at) != (worker_id, claimed_at)
            ):
                raise NotClaimed(f"task {task_id} in queue {queue.queue} is no longer that claim's")
            return task.unclaimed(worker_id, now)

        task = await self._change(queue, task_id, change)
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

    async def list_tasks(self, flt: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        if not 1 <= limit <= self._settings.max_list_limit:
            raise InvalidInput(
                "invalid listing", [FieldProblem("limit", f"must be between 1 and {self._settings.max_list_limit}")]
            )
        return await self._store.list_tasks(flt, limit, cursor)

    async def queue_counts(self, project: str | None) -> list[QueueCounts]:
        """Counts of `project`'s queues (of every project's, one entry per project and queue, when None)."""
        return await self._store.queue_counts(project=project)

    async def reap_timed_out(self, batch: int) -> int:
        """Count every claim past its `times_out_at` as a failed attempt. Returns how many were reaped.

        A task whose transition fails is made dead with the reason (`_timed_out`); the others go on."""
        now = self._clock()
        reaped = 0
        backoff = self._settings.backoff
        while True:
            expired = [t for t in await self._store.timed_out_tasks(now, batch) if _times_out_by(t, now)]
            if not expired:
                return reaped
            results = await self._store.update_tasks([_timed_out(backoff, now, t) for t in expired])
            done_now = [r for r in results if isinstance(r, Task)]
            reaped += len(done_now)
            self._events.finished(done_now, Outcome.TIMED_OUT, now)
            self._lost_races([t.queue for t, r in zip(expired, results, strict=True) if isinstance(r, VersionConflict)])
            for ref in {t.ref for t in done_now if t.state is TaskState.FAILED and t.run_at <= now}:
                self._signals.notify(ref)
            if len(expired) < batch or not done_now:
                # A conflict means a worker finished or reported concurrently: its write wins.
                return reaped

    def now(self) -> datetime:
        return self._clock()

    def _finished(self, results: Sequence[Task | Exception], outcome: Outcome) -> None:
        """Tell the observers how these claims ended; a repeating task queued again after a success is created."""
        tasks = [r for r in results if isinstance(r, Task)]
        if not tasks:
            return
        self._events.finished(tasks, outcome, self._clock())
        if outcome is Outcome.DONE:
            again = [t for t in tasks if t.state is TaskState.QUEUED]
            if again:
                self._events.created(again, Source.REPEAT)

    def _lost_races(self, queues: list[str]) -> None:
        for queue, count in Counter(queues).items():
            self._events.conflicts(queue, count)

    async def record_attempt(self, attempt: Attempt) -> None:
        await self._store.insert_attempt(attempt)

    async def timeline(self, ref: QueueRef, task_id: str) -> list[Attempt]:
        """Every recorded attempt of a task (NotFound if there is no such task)."""
        await self._store.get_task(ref.queue, task_id, project=ref.project)
        return await self._store.list_attempts(ref.queue, task_id, project=ref.project)

    async def prune_timeline(self, retention: timedelta, batch: int) -> int:
        cutoff = self._clock() - retention
        total = 0
        while True:
            deleted = await self._store.delete_attempts(cutoff, batch)
            total += deleted
            if deleted < batch:
                return total

    async def archive_finished(self, older_than: timedelta, batch: int) -> int:
        cutoff = self._clock() - older_than
        total = 0
        while True:
            moved = await self._store.archive_finished(cutoff, batch)
            total += moved
            if moved < batch:
                return total

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
