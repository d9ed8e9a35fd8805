"""One claimed task's run (a *job*): the handler call, its heartbeats, and the done/failed/unclaim call after it.

`JobRunner.run` runs one job to the end; the claim loop in `worker.py` starts it and never waits on it. Here:
`TaskContext` (what a handler gets), `WorkerStats`, the `Job` record, the heartbeat, the retried delivery of
done/failed/unclaim, claim-lost and superseded-run handling, and the failure data of a raising handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tasques.worker.client import (
    ApiError,
    ClaimLost,
    JsonDict,
    ServerUnavailable,
    Task,
)

log = logging.getLogger("tasques.worker")

Handler = Callable[["TaskContext"], Awaitable[JsonDict | None]]
Outcome = Literal["done", "fail"]

# Failure data is stored in the task; keep it well under the server's request size limit.
MAX_MESSAGE_CHARS = 2_000
MAX_TRACEBACK_CHARS = 16_000


class TaskCalls(Protocol):
    """The calls a job makes about its task: `TasquesClient`'s single calls, or the `Batcher` that batches them."""

    async def report(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task: ...

    async def done(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task: ...

    async def fail(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task: ...

    async def unclaim(self, queue: str, task_id: str, *, claim_id: str | None = None) -> Task: ...


class TaskContext:
    """What a handler gets: the claimed `task`, and `report()` for progress."""

    def __init__(self, task: Task, worker_id: str, client: TaskCalls) -> None:
        self.task = task
        self.worker_id = worker_id
        self._client = client
        self._last_data: JsonDict | None = None
        self._reported = asyncio.Event()
        self._lost = False

    @property
    def claim_lost(self) -> bool:
        """True once the server said this worker no longer holds the claim; the result will be discarded."""
        return self._lost

    async def report(self, data: JsonDict | None = None) -> None:
        """Report progress: stored as the claim's `last_report` and pushes its timeout out.

        Heartbeats re-send the last reported data, so it stays visible. If the server cannot be reached the
        report is logged and dropped (heartbeats keep retrying with the new data); if the claim has been lost
        `ClaimLost` is raised, and letting it propagate ends the handler early.
        """
        self._last_data = data
        if self._lost:
            raise ClaimLost(409, f"task {self.task.id} in queue {self.task.queue} is no longer claimed by this worker")
        try:
            await self._client.report(self.task.queue, self.task.id, data, claim_id=_claim_id(self.task))
        except ClaimLost:
            self._lost = True
            raise
        except ServerUnavailable as e:
            log.warning("report on task %s/%s not delivered: %s", self.task.queue, self.task.id, e)
            return
        self._reported.set()


@dataclass
class WorkerStats:
    """Counters, for logs and tests."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    unclaimed: int = 0
    claims_lost: int = 0
    connection_errors: int = 0
    running: int = 0
    max_running: int = 0


@dataclass(eq=False)
class Job:
    """One claimed task and the asyncio tasks running it; the claim loop keeps the set of live ones."""

    task: Task
    runner: asyncio.Task[None] | None = None
    handler_task: asyncio.Task[tuple[Outcome, JsonDict | None]] | None = None
    cancelled_by_worker: bool = False
    superseded: bool = False
    ctx: TaskContext | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.task.queue, self.task.id

    @property
    def name(self) -> str:
        return f"{self.task.queue}/{self.task.id}"

    def supersede(self) -> None:
        """The task was claimed again: this run must no longer heartbeat, report or finish it."""
        self.superseded = True
        if self.ctx is not None:
            self.ctx._lost = True


class JobSettings(Protocol):
    """The worker settings a job reads (the `Worker` itself); read at each use, as the worker holds them."""

    worker_id: str
    handlers: dict[str, Handler]
    heartbeats: bool
    heartbeat_every: float | None
    backoff_initial: float
    backoff_max: float
    finish_retries: int
    stats: WorkerStats


class JobRunner:
    """Runs jobs for one worker: `run(job)` takes a job from the handler call to done, failed or unclaimed."""

    def __init__(self, settings: JobSettings, client: TaskCalls) -> None:
        self._settings = settings
        self._client = client

    async def run(self, job: Job) -> None:
        task = job.task
        s = self._settings
        try:
            handler = s.handlers.get(task.kind)
            if handler is None:
                log.error("task %s: no handler for kind %r; failing it", job.name, task.kind)
                await self._finish(job, "fail", no_handler_failure(task.kind))
                return
            ctx = TaskContext(task, s.worker_id, self._client)
            job.ctx = ctx
            job.handler_task = asyncio.create_task(_call_handler(handler, ctx), name=f"tasques-handler-{job.name}")
            beat = _Beat(self._heartbeat, job, ctx, self._interval(job)) if s.heartbeats else None
            outcome: Outcome
            data: JsonDict | None
            try:
                outcome, data = await job.handler_task
            except asyncio.CancelledError:
                if job.cancelled_by_worker:
                    await self._unclaim_job(job)
                    return
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the worker itself is being cancelled
                outcome, data = (
                    "fail",
                    {
                        "error_type": "CancelledError",
                        "message": "the handler was cancelled",
                        "traceback": None,
                    },
                )
            finally:
                if beat is not None:
                    await beat.stop()
            if job.cancelled_by_worker and outcome == "fail":
                # The handler turned the shutdown's cancellation into an error of its own: hand the task back.
                await self._unclaim_job(job)
                return
            await self._finish(job, outcome, data)
        except Exception:
            log.exception("task %s: unexpected error in the worker", job.name)

    def _interval(self, job: Job) -> float:
        s = self._settings
        timeout = job.task.processing_timeout.total_seconds()
        return timeout / 3 if s.heartbeat_every is None else min(s.heartbeat_every, timeout / 2)

    async def _heartbeat(self, job: Job, ctx: TaskContext, interval: float) -> None:
        """Started `interval` after the handler (see `_Beat`): beats whenever `interval` passes without a report."""
        s = self._settings
        delay = interval if ctx._reported.is_set() else 0.0  # a report since the start was a heartbeat
        while not ctx._lost:
            ctx._reported.clear()
            if delay > 0 and await wait_for_any(ctx._reported, within=delay):
                delay = interval  # the handler reported: that was a heartbeat
                continue
            if job.superseded:
                return
            try:
                await self._client.report(job.task.queue, job.task.id, ctx._last_data, claim_id=_claim_id(job.task))
                delay = interval
            except ClaimLost as e:
                ctx._lost = True
                s.stats.claims_lost += 1
                log.warning("task %s: the claim was lost (%s); its result will be discarded", job.name, e)
                return
            except ServerUnavailable as e:
                s.stats.connection_errors += 1
                delay = max(0.05, min(interval, s.backoff_initial))
                log.warning("task %s: heartbeat not delivered (%s); retrying in %.2fs", job.name, e, delay)
            except ApiError as e:
                log.error("task %s: heartbeat refused: %s", job.name, e)
                delay = interval

    async def _finish(self, job: Job, outcome: Outcome, data: JsonDict | None) -> None:
        task = job.task
        s = self._settings
        if job.superseded:
            log.warning("task %s: discarding the result of a superseded run (%s)", job.name, outcome)
            return
        call = self._client.done if outcome == "done" else self._client.fail
        delay = s.backoff_initial
        for attempt in range(s.finish_retries + 1):
            try:
                await call(task.queue, task.id, data, claim_id=_claim_id(task))
            except ClaimLost as e:
                if attempt > 0:
                    log.info("task %s: %s already recorded by an earlier try, it seems (%s)", job.name, outcome, e)
                else:
                    s.stats.claims_lost += 1
                    log.warning("task %s: the claim was lost before %s was recorded (%s)", job.name, outcome, e)
                return
            except ServerUnavailable as e:
                s.stats.connection_errors += 1
                if attempt == s.finish_retries:
                    log.error(
                        "task %s: giving up on recording %s (%s); the server will time the claim out and retry it",
                        job.name,
                        outcome,
                        e,
                    )
                    return
                log.warning("task %s: could not record %s (%s); retrying in %.1fs", job.name, outcome, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, s.backoff_max)
                continue
            except ApiError as e:
                log.error("task %s: the server refused %s: %s", job.name, outcome, e)
                return
            if outcome == "done":
                s.stats.done += 1
                log.debug("task %s done", job.name)
            else:
                s.stats.failed += 1
                log.info("task %s failed: %s", job.name, (data or {}).get("message"))
            return

    async def _unclaim_job(self, job: Job) -> None:
        if job.superseded or (job.ctx is not None and job.ctx._lost):
            return
        await self.unclaim(job.task, "the grace period ran out")

    async def unclaim(self, task: Task, why: str) -> None:
        """Hand `task` back to its queue, retried like done/failed; also used for tasks claimed while stopping."""
        s = self._settings
        delay = s.backoff_initial
        for attempt in range(s.finish_retries + 1):
            try:
                await self._client.unclaim(task.queue, task.id, claim_id=_claim_id(task))
            except ClaimLost as e:
                log.info("task %s/%s: nothing to unclaim (%s)", task.queue, task.id, e)
                return
            except ServerUnavailable as e:
                s.stats.connection_errors += 1
                if attempt == s.finish_retries:
                    log.error("task %s/%s: could not unclaim it (%s); it will time out", task.queue, task.id, e)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, s.backoff_max)
                continue
            except ApiError as e:
                log.error("task %s/%s: the server refused the unclaim: %s", task.queue, task.id, e)
                return
            s.stats.unclaimed += 1
            log.info("task %s/%s unclaimed: %s", task.queue, task.id, why)
            return


class _Beat:
    """A job's heartbeat task, created only once the first beat is due: most tasks end sooner and never need one."""

    def __init__(
        self,
        beat: Callable[[Job, TaskContext, float], Coroutine[Any, Any, None]],
        job: Job,
        ctx: TaskContext,
        interval: float,
    ) -> None:
        self._task: asyncio.Task[None] | None = None

        def start() -> None:
            self._task = asyncio.create_task(beat(job, ctx, interval), name=f"tasques-heartbeat-{job.name}")

        self._timer = asyncio.get_running_loop().call_later(interval, start)

    async def stop(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_for_any(*events: asyncio.Event, within: float | None = None) -> bool:
    """Wait until any of `events` is set, for at most `within` seconds; True if an event was set."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return bool(done)


async def _call_handler(handler: Handler, ctx: TaskContext) -> tuple[Outcome, JsonDict | None]:
    try:
        result: object = await handler(ctx)
    except Exception as e:
        log.info("task %s/%s: handler raised %s: %s", ctx.task.queue, ctx.task.id, type(e).__name__, e)
        return "fail", exception_failure(e)
    if result is None or isinstance(result, dict):
        return "done", result
    message = f"the handler for kind {ctx.task.kind!r} returned {type(result).__name__}, expected a dict or None"
    return "fail", {"error_type": "TypeError", "message": message, "traceback": None}


def exception_failure(exc: BaseException) -> JsonDict:
    """The failure data of a handler that raised: `error_type`, `message` and `traceback`."""
    tb = "".join(traceback.format_exception(exc))
    if len(tb) > MAX_TRACEBACK_CHARS:
        tb = "…" + tb[-MAX_TRACEBACK_CHARS:]
    return {"error_type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS], "traceback": tb}


def no_handler_failure(kind: str) -> JsonDict:
    return {"error_type": "NoHandler", "message": f"no handler for kind {kind!r}", "traceback": None}


def _claim_id(task: Task) -> str | None:
    """The claim id to send back: the one this claim came with (None from servers without claim ids)."""
    return task.last_claimed.claim_id if task.last_claimed is not None else None


__all__ = [
    "Handler",
    "Job",
    "JobRunner",
    "JobSettings",
    "TaskCalls",
    "TaskContext",
    "WorkerStats",
    "exception_failure",
    "no_handler_failure",
    "wait_for_any",
]
