"""Task use cases: get, claim, report, done, fail, unclaim, cancel, run-now, list, and the housekeeping passes;
creation is `TaskCreation` (task_creation.py), dead-letter replay `TaskReplay` (replay.py), queue operations
`QueueOperations` (queue_ops.py), the shared parts and rules `TaskCore` (task_core.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from tasques.domain.errors import (
    FieldProblem,
    InvalidInput,
    NotClaimed,
    VersionConflict,
)
from tasques.domain.http_target import TaskTarget
from tasques.domain.ref import QueueRef
from tasques.domain.task import JsonObj, Task, TaskState
from tasques.domain.timeline import Attempt
from tasques.service.events import Outcome
from tasques.service.queue_ops import QueueOperations
from tasques.service.replay import TaskReplay
from tasques.service.signals import ClaimStop
from tasques.service.task_core import (
    Change,
    Modification,
    TaskSettings,
    TaskSpec,
    WorkerUpdate,
    _timed_out,
    _times_out_by,
    describe_error,
)
from tasques.service.task_creation import TaskCreation
from tasques.service.weighted import WeightedSplit
from tasques.store.base import QueueCounts, TaskFilter, TaskPage

# The names other layers import from here (their home is task_core).
# A weighted claim's queues (queues and queue_weights together) and weights, at most.
MAX_WEIGHTED_QUEUES = 100
MAX_WEIGHT = 1000

__all__ = ["Modification", "TaskService", "TaskSettings", "TaskSpec", "WorkerUpdate", "describe_error"]


class TaskService(TaskCreation, TaskReplay, QueueOperations):
    async def get(self, ref: QueueRef, task_id: str) -> Task:
        return await self._store.get_task(ref.queue, task_id, project=ref.project)

    async def claim(
        self,
        worker_id: str,
        project: str,
        queues: Sequence[str],
        amount: int = 1,
        block_for: timedelta | None = None,
        *,
        weights: Mapping[str, int] | None = None,
        stop: ClaimStop | None = None,
    ) -> list[Task]:
        """Claim up to `amount` tasks, returning as soon as any are claimed, or `[]` after `block_for` (at once
        once `stop` is stopped: the worker was put to drain).

        `weights` (queue -> weight, 1 to 1000): the amount is split among them by weight (`_claim_weighted`);
        a queue of `queues` not among them weighs 1. Without weights, one claim over `queues` in claim order.

        `amount` and `block_for` above the configured maxima are clamped to them, as the original server
        accepted any value (a 400 would stop an unmodified Go worker); below their minimum they are refused."""
        wait = self._settings.block_for if block_for is None else block_for
        problems = []
        if not queues and not weights:
            problems.append(FieldProblem("queues", "must name at least one queue (in queues or queue_weights)"))
        weighted = {q: 1 for q in queues} | dict(weights) if weights else None
        if weighted is not None:
            if len(weighted) > MAX_WEIGHTED_QUEUES:
                problem = f"with queues, names at most {MAX_WEIGHTED_QUEUES} queues"
                problems.append(FieldProblem("queue_weights", problem))
            if any(not 1 <= w <= MAX_WEIGHT for w in weighted.values()):
                problems.append(FieldProblem("queue_weights", f"weights must be 1 to {MAX_WEIGHT}"))
        if amount < 1:
            problems.append(FieldProblem("amount", "must be at least 1"))
        if wait < timedelta(0):
            problems.append(FieldProblem("block_for", "must not be negative"))
        if problems:
            raise InvalidInput("invalid claim", problems)
        amount = min(amount, self._settings.max_claim_amount)
        wait = min(wait, self._settings.max_block_for)
        unique_queues = [QueueRef(project, q) for q in (weighted or dict.fromkeys(queues))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        # A claim that would block on queues the last probe found empty waits for the next one at once.
        skip = wait > timedelta(0) and self._ticker.known_empty(unique_queues)
        while True:
            if stop is not None and stop.stopped:
                return []
            if skip:
                claimed = []
            elif weighted is not None:
                claimed = await self._claim_weighted(worker_id, project, weighted, amount)
            else:
                claimed = await self._claim_pull(worker_id, project, unique_queues, amount)
            remaining = deadline - loop.time()
            if claimed or remaining <= 0:
                return claimed
            await self._ticker.wait(unique_queues, remaining, stop)
            skip = self._ticker.known_empty(unique_queues)

    @functools.cached_property
    def _weighted(self) -> WeightedSplit:
        return WeightedSplit()

    async def _claim_weighted(self, worker_id: str, project: str, weights: dict[str, int], amount: int) -> list[Task]:
        """One weighted claim: each queue's seats (weighted.py) claimed from it, the queues concurrently, each
        through the shared claims as a claim of that queue alone; then the seats of queues that came up short
        are claimed from the others that may hold more (filled their seats, or had none), in claim order."""
        paused = await self._queues.paused()
        active = {q: w for q, w in weights.items() if QueueRef(project, q) not in paused}
        seats = self._weighted.split(project, active, amount)
        answers = await asyncio.gather(
            *(self._claim_pull(worker_id, project, [QueueRef(project, q)], n) for q, n in seats.items()),
            return_exceptions=True,
        )
        claimed = [t for a in answers if isinstance(a, list) for t in a]
        failed = next((a for a in answers if isinstance(a, BaseException)), None)
        if failed is not None:
            await self.unclaim_all(worker_id, claimed)  # the caller hears only of the failure
            raise failed
        short = amount - len(claimed)
        if short > 0:
            full = {q for (q, n), a in zip(seats.items(), answers, strict=True) if isinstance(a, list) and len(a) >= n}
            more = [QueueRef(project, q) for q in active if q in full or q not in seats]
            if more:
                claimed += await self._claim_pull(worker_id, project, more, short)
        return claimed

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
            self.settled([t for t in done_now if t.finished])
            self._lost_races([t.queue for t, r in zip(expired, results, strict=True) if isinstance(r, VersionConflict)])
            for ref in {t.ref for t in done_now if t.state is TaskState.FAILED and t.run_at <= now}:
                self._signals.notify(ref)
            if len(expired) < batch or not done_now:
                # A conflict means a worker finished or reported concurrently: its write wins.
                return reaped

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
