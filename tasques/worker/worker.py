"""The Worker: claims tasks over HTTP, runs async handlers on them, heartbeats, and finishes or hands them back.

Lifecycle of one claimed task (a *job*):

1. The claim loop asks for at most as many tasks as there are free concurrency slots, long-polling with
   `block_for`; every task it gets starts running at once, so a claimed task never waits for a slot.
2. While the handler runs, a heartbeat re-sends the last report every `heartbeat_every` (default: a third of
   the task's `processing_timeout`), which pushes the claim's `times_out_at` out.
3. The handler's return value is sent as `done` data; an exception is sent as `failed` data
   `{"error_type", "message", "traceback"}`; a kind without a handler is failed with error type `NoHandler`.
   A `done`/`failed` call that cannot reach the server is retried with backoff a few times.
4. On `stop()` (SIGTERM/SIGINT with `handle_signals=True`) nothing new is claimed; tasks returned by a claim
   already in flight are unclaimed; running handlers get `shutdown_grace` to finish, then are cancelled and
   their tasks unclaimed. A second `stop()` (a second signal) skips the rest of the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from tasques.worker.client import (
    ApiError,
    ClaimLost,
    JsonDict,
    ServerUnavailable,
    Task,
    TasquesClient,
)

log = logging.getLogger("tasques.worker")

Handler = Callable[["TaskContext"], Awaitable[JsonDict | None]]
Seconds = float | timedelta

# Failure data is stored in the task; keep it well under the server's request size limit.
MAX_MESSAGE_CHARS = 2_000
MAX_TRACEBACK_CHARS = 16_000


class WorkerError(Exception):
    """The worker cannot go on: the server rejects its claims (bad queue names, wrong credentials, ...)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TaskContext:
    """What a handler gets: the claimed `task`, and `report()` for progress."""

    def __init__(self, task: Task, worker_id: str, client: TasquesClient) -> None:
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
class _Job:
    task: Task
    runner: asyncio.Task[None] | None = None
    handler_task: asyncio.Task[tuple[Literal["done", "fail"], JsonDict | None]] | None = None
    cancelled_by_worker: bool = False
    superseded: bool = False
    ctx: TaskContext | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.task.queue, self.task.id

    @property
    def name(self) -> str:
        return f"{self.task.queue}/{self.task.id}"


class Worker:
    """Claims tasks from `queues` and runs `handlers[task.kind]` on each, at most `concurrency` at a time.

    Durations are seconds or `timedelta`s. `await worker.run()` returns once the worker has stopped.

    * `worker_id`: sent as `X-TASQUES-WORKER-ID`; None picks `host-pid-random`.
    * `claim_amount`: the most tasks per claim; a claim never asks for more than the free slots.
    * `block_for`: how long a claim long-polls on the server when nothing is ready.
    * `heartbeat_every`: None (default) reports every third of each task's `processing_timeout`; a value is
      capped at half of it. `heartbeats=False` turns heartbeats off.
    * `shutdown_grace`: after `stop()`, how long running handlers may finish before they are cancelled and
      their tasks unclaimed.
    * `backoff_initial`/`backoff_max`: reconnect backoff when the server is unreachable.
    * `finish_retries`: how often a done/failed/unclaim call that cannot reach the server is retried.
    """

    def __init__(
        self,
        server_url: str,
        worker_id: str | None,
        queues: Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        claim_amount: int = 10,
        concurrency: int = 10,
        block_for: Seconds = 5.0,
        heartbeat_every: Seconds | None = None,
        heartbeats: bool = True,
        shutdown_grace: Seconds = 20.0,
        basic_auth: tuple[str, str] | None = None,
        backoff_initial: Seconds = 0.5,
        backoff_max: Seconds = 30.0,
        finish_retries: int = 5,
        request_timeout: Seconds = 30.0,
    ) -> None:
        if not queues:
            raise ValueError("name at least one queue")
        if concurrency < 1 or claim_amount < 1:
            raise ValueError("concurrency and claim_amount must be at least 1")
        for kind, handler in handlers.items():
            if not callable(handler):
                raise TypeError(f"the handler for kind {kind!r} is not callable")
        self.worker_id = worker_id or default_worker_id()
        self.queues = list(dict.fromkeys(queues))
        self.handlers = dict(handlers)
        self.claim_amount = claim_amount
        self.concurrency = concurrency
        self.block_for = _seconds(block_for)
        self.heartbeat_every = None if heartbeat_every is None else _seconds(heartbeat_every)
        if self.heartbeat_every is not None and self.heartbeat_every <= 0:
            raise ValueError("heartbeat_every must be positive (use heartbeats=False to turn heartbeats off)")
        self.heartbeats = heartbeats
        self.shutdown_grace = _seconds(shutdown_grace)
        self.backoff_initial = _seconds(backoff_initial)
        self.backoff_max = _seconds(backoff_max)
        self.finish_retries = finish_retries
        self.stats = WorkerStats()
        self._client = TasquesClient(
            server_url, self.worker_id, basic_auth=basic_auth, request_timeout=_seconds(request_timeout)
        )
        self._jobs: set[_Job] = set()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._claim_in_flight = False
        self._ran = False

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, *, immediate: bool = False) -> None:
        """Begin a graceful shutdown; called again (or with `immediate`), skip what is left of the grace period."""
        if self._stopping.is_set() or immediate:
            self._hurry.set()
        self._stopping.set()

    async def run(self, *, handle_signals: bool = False) -> None:
        """Work until `stop()`; with `handle_signals`, SIGTERM and SIGINT call `stop()`."""
        if self._ran:
            raise RuntimeError("a Worker runs once; create a new one")
        self._ran = True
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info(
            "worker %s on %s: queues %s, kinds %s, concurrency %d",
            self.worker_id,
            self._client.base_url,
            ", ".join(self.queues),
            ", ".join(sorted(self.handlers)) or "(none)",
            self.concurrency,
        )
        try:
            async with self._client:
                await self._run()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        log.info(
            "worker %s stopped: %d done, %d failed, %d unclaimed",
            self.worker_id,
            self.stats.done,
            self.stats.failed,
            self.stats.unclaimed,
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            log.warning("%s again: cancelling running handlers now", sig.name)
        else:
            log.info("%s: stopping; running handlers have %.1fs to finish", sig.name, self.shutdown_grace)
        self.stop()

    async def _run(self) -> None:
        claim_loop = asyncio.create_task(self._claim_loop(), name="tasques-worker-claims")
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({claim_loop, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Cancelled from outside: no grace, no unclaims; the server times the claims out.
            claim_loop.cancel()
            for job in list(self._jobs):
                if job.runner is not None:
                    job.runner.cancel()
            raise
        finally:
            stop_wait.cancel()
        self._stopping.set()
        # The claim loop ends after its in-flight claim (unclaiming what that returns) while handlers drain.
        await asyncio.gather(self._drain(), claim_loop, return_exceptions=True)
        if not claim_loop.cancelled() and (exc := claim_loop.exception()) is not None:
            raise exc

    # -- claiming -------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        delay = self.backoff_initial
        while not self._stopping.is_set():
            self._slot_freed.clear()
            free = self.concurrency - len(self._jobs)
            if free <= 0:
                await self._wait_for(self._slot_freed, self._stopping)
                continue
            self._claim_in_flight = True
            try:
                tasks = await self._client.claim(self.queues, min(self.claim_amount, free), self.block_for)
            except ServerUnavailable as e:
                self.stats.connection_errors += 1
                log.warning("cannot claim from %s (%s); retrying in %.1fs", self._client.base_url, e, delay)
                await self._wait_for(self._stopping, within=delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max)
                continue
            except ApiError as e:
                log.error("the server refused the claim: %s", e)
                raise WorkerError(f"the server refused the claim: {e}") from e
            finally:
                self._claim_in_flight = False
            if delay > self.backoff_initial:
                log.info("reconnected to %s", self._client.base_url)
            delay = self.backoff_initial
            if not tasks:
                continue
            self.stats.claimed += len(tasks)
            if self._stopping.is_set():
                # Claimed while the stop came in: hand them straight back.
                await asyncio.gather(*(self._unclaim(t, "the worker is stopping") for t in tasks))
                return
            for task in tasks:
                self._start(task)

    def _start(self, task: Task) -> None:
        for other in self._jobs:
            if other.key == (task.queue, task.id) and not other.superseded:
                # This worker got the task again: its earlier claim timed out and was reaped. Whatever the
                # earlier run does now must not touch the new claim (the server cannot tell them apart).
                log.warning(
                    "task %s was claimed again while an earlier run of it is still going (its claim timed out); "
                    "the earlier run's result will be discarded",
                    other.name,
                )
                other.superseded = True
                if other.ctx is not None:
                    other.ctx._lost = True
        job = _Job(task)
        self._jobs.add(job)
        self.stats.running = len(self._jobs)
        self.stats.max_running = max(self.stats.max_running, self.stats.running)
        job.runner = asyncio.create_task(self._run_job(job), name=f"tasques-job-{job.name}")
        job.runner.add_done_callback(lambda _: self._job_finished(job))

    def _job_finished(self, job: _Job) -> None:
        self._jobs.discard(job)
        self.stats.running = len(self._jobs)
        self._slot_freed.set()

    # -- one job ------------------------------------------------------------------------------------------

    async def _run_job(self, job: _Job) -> None:
        task = job.task
        try:
            handler = self.handlers.get(task.kind)
            if handler is None:
                log.error("task %s: no handler for kind %r; failing it", job.name, task.kind)
                await self._finish(job, "fail", no_handler_failure(task.kind))
                return
            ctx = TaskContext(task, self.worker_id, self._client)
            job.ctx = ctx
            job.handler_task = asyncio.create_task(_call_handler(handler, ctx), name=f"tasques-handler-{job.name}")
            beat = asyncio.create_task(self._heartbeat(job, ctx)) if self.heartbeats else None
            outcome: Literal["done", "fail"]
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
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat
            if job.cancelled_by_worker and outcome == "fail":
                # The handler turned the shutdown's cancellation into an error of its own: hand the task back.
                await self._unclaim_job(job)
                return
            await self._finish(job, outcome, data)
        except Exception:
            log.exception("task %s: unexpected error in the worker", job.name)

    async def _heartbeat(self, job: _Job, ctx: TaskContext) -> None:
        timeout = job.task.processing_timeout.total_seconds()
        interval = timeout / 3 if self.heartbeat_every is None else min(self.heartbeat_every, timeout / 2)
        delay = interval
        while not ctx._lost:
            ctx._reported.clear()
            if await self._wait_for(ctx._reported, within=delay):
                delay = interval  # the handler reported: that was a heartbeat
                continue
            if job.superseded:
                return
            try:
                await self._client.report(job.task.queue, job.task.id, ctx._last_data, claim_id=_claim_id(job.task))
                delay = interval
            except ClaimLost as e:
                ctx._lost = True
                self.stats.claims_lost += 1
                log.warning("task %s: the claim was lost (%s); its result will be discarded", job.name, e)
                return
            except ServerUnavailable as e:
                self.stats.connection_errors += 1
                delay = max(0.05, min(interval, self.backoff_initial))
                log.warning("task %s: heartbeat not delivered (%s); retrying in %.2fs", job.name, e, delay)
            except ApiError as e:
                log.error("task %s: heartbeat refused: %s", job.name, e)
                delay = interval

    async def _finish(self, job: _Job, outcome: Literal["done", "fail"], data: JsonDict | None) -> None:
        task = job.task
        if job.superseded:
            log.warning("task %s: discarding the result of a superseded run (%s)", job.name, outcome)
            return
        call = self._client.done if outcome == "done" else self._client.fail
        delay = self.backoff_initial
        for attempt in range(self.finish_retries + 1):
            try:
                await call(task.queue, task.id, data, claim_id=_claim_id(task))
            except ClaimLost as e:
                if attempt > 0:
                    log.info("task %s: %s already recorded by an earlier try, it seems (%s)", job.name, outcome, e)
                else:
                    self.stats.claims_lost += 1
                    log.warning("task %s: the claim was lost before %s was recorded (%s)", job.name, outcome, e)
                return
            except ServerUnavailable as e:
                self.stats.connection_errors += 1
                if attempt == self.finish_retries:
                    log.error(
                        "task %s: giving up on recording %s (%s); the server will time the claim out and retry it",
                        job.name,
                        outcome,
                        e,
                    )
                    return
                log.warning("task %s: could not record %s (%s); retrying in %.1fs", job.name, outcome, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except ApiError as e:
                log.error("task %s: the server refused %s: %s", job.name, outcome, e)
                return
            if outcome == "done":
                self.stats.done += 1
                log.debug("task %s done", job.name)
            else:
                self.stats.failed += 1
                log.info("task %s failed: %s", job.name, (data or {}).get("message"))
            return

    async def _unclaim_job(self, job: _Job) -> None:
        if job.superseded or (job.ctx is not None and job.ctx._lost):
            return
        await self._unclaim(job.task, "the grace period ran out")

    async def _unclaim(self, task: Task, why: str) -> None:
        delay = self.backoff_initial
        for attempt in range(self.finish_retries + 1):
            try:
                await self._client.unclaim(task.queue, task.id, claim_id=_claim_id(task))
            except ClaimLost as e:
                log.info("task %s/%s: nothing to unclaim (%s)", task.queue, task.id, e)
                return
            except ServerUnavailable as e:
                self.stats.connection_errors += 1
                if attempt == self.finish_retries:
                    log.error("task %s/%s: could not unclaim it (%s); it will time out", task.queue, task.id, e)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            except ApiError as e:
                log.error("task %s/%s: the server refused the unclaim: %s", task.queue, task.id, e)
                return
            self.stats.unclaimed += 1
            log.info("task %s/%s unclaimed: %s", task.queue, task.id, why)
            return

    # -- shutdown -------------------------------------------------------------------------------------------

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_grace
        while self._jobs and not self._hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._slot_freed.clear()
            await self._wait_for(self._slot_freed, self._hurry, within=remaining)
        running = [j for j in self._jobs if j.handler_task is not None and not j.handler_task.done()]
        if running:
            log.warning("cancelling %d running handler(s) and unclaiming their tasks", len(running))
            for job in running:
                job.cancelled_by_worker = True
                assert job.handler_task is not None
                job.handler_task.cancel()
        runners = [j.runner for j in self._jobs if j.runner is not None]
        await asyncio.gather(*runners, return_exceptions=True)

    @staticmethod
    async def _wait_for(*events: asyncio.Event, within: float | None = None) -> bool:
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


async def _call_handler(handler: Handler, ctx: TaskContext) -> tuple[Literal["done", "fail"], JsonDict | None]:
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
    "TaskContext",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "default_worker_id",
    "exception_failure",
]
