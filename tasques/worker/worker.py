"""The Worker: claims tasks over HTTP, runs async handlers on them, heartbeats, and finishes or hands them back.

This module holds the claim loop (concurrency slots, reconnect backoff, graceful shutdown); running one claimed
task (steps 2 and 3 below, and `TaskContext`) is `job.py`.

Lifecycle of one claimed task (a *job*):

1. The claim loop asks for at most as many tasks as there are free concurrency slots, long-polling with
   `block_for`; every task it gets starts running at once, so a claimed task never waits for a slot. It
   claims once `refill_at` slots are free (or `refill_wait` after the first one freed), so that claims come
   in few large requests rather than one per freed slot; with no task running it claims at once.
2. While the handler runs, a heartbeat re-sends the last report every `heartbeat_every` (default: a third of
   the task's `processing_timeout`), which pushes the claim's `times_out_at` out.
3. The handler's return value is sent as `done` data; an exception is sent as `failed` data
   `{"error_type", "message", "traceback"}`; a kind without a handler is failed with error type `NoHandler`.
   A `done`/`failed` call that cannot reach the server is retried with backoff a few times. Done, failed,
   reports and unclaims go through the completion buffer (`batching.py`): one batch request per endpoint for
   up to `batch_size` tasks, sent at most `batch_age` after its first item, or at once when every running
   job is waiting on it.
4. Drain: once a response says the worker is put to drain (`X-TASQUES-WORKER-DRAINING: true`, after
   `PUT /workers/{id}/drain`), nothing new is claimed and the running tasks are finished and reported, however
   long they take; then `run()` returns (the CLI exits 0). A `stop()` during it cancels what still runs.
5. On `stop()` (SIGTERM/SIGINT with `handle_signals=True`) nothing new is claimed; tasks returned by a claim
   already in flight are unclaimed; running handlers get `shutdown_grace` to finish, then are cancelled and
   their tasks unclaimed. A second `stop()` (a second signal) skips the rest of the grace period. From the
   stop on the buffer sends at once, and `run()` returns only after every buffered call has been answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta

from tasques.worker.batching import Batcher
from tasques.worker.client import ApiError, ServerUnavailable, Task, TasquesClient
from tasques.worker.job import (
    Handler,
    Job,
    JobRunner,
    TaskContext,
    WorkerStats,
    exception_failure,
    wait_for_any,
)

log = logging.getLogger("tasques.worker")

Seconds = float | timedelta


class WorkerError(Exception):
    """The worker cannot go on: the server rejects its claims (bad queue names, wrong credentials, ...)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Worker:
    """Claims tasks from `queues` and runs `handlers[task.kind]` on each, at most `concurrency` at a time.

    Durations are seconds or `timedelta`s. `await worker.run()` returns once the worker has stopped.

    * `worker_id`: sent as `X-TASQUES-WORKER-ID`; None picks `host-pid-random`.
    * `claim_amount`: the most tasks per claim; a claim never asks for more than the free slots.
    * `refill_at`: claim again once this many slots are free (default: half of the smaller of `claim_amount`
      and `concurrency`, at least 1), or `refill_wait` after the first slot freed, whichever comes first.
    * `batch_size`/`batch_age`: done, failed, report and unclaim calls are sent in batches of at most
      `batch_size` (1 to 1,000), each at most `batch_age` after its first call (sooner when every running
      handler has finished and waits on it).
    * `batching=False`: no buffer; one HTTP call per done/failed/report/unclaim, as the Go worker makes them.
    * `block_for`: how long a claim long-polls on the server when nothing is ready.
    * `heartbeat_every`: None (default) reports every third of each task's `processing_timeout`; a value is
      capped at half of it. `heartbeats=False` turns heartbeats off.
    * `shutdown_grace`: after `stop()`, how long running handlers may finish before they are cancelled and
      their tasks unclaimed.
    * `backoff_initial`/`backoff_max`: reconnect backoff when the server is unreachable.
    * `finish_retries`: how often a done/failed/unclaim call that cannot reach the server is retried.
    * `queue_weights`: queue -> weight (1 to 1000): claims split their amount among these queues by weight
      (the `queues` weigh 1); `queues` may then be empty.
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
        refill_at: int | None = None,
        refill_wait: Seconds = 0.005,
        batch_size: int = 100,
        batch_age: Seconds = 0.005,
        batching: bool = True,
        block_for: Seconds = 5.0,
        heartbeat_every: Seconds | None = None,
        heartbeats: bool = True,
        shutdown_grace: Seconds = 20.0,
        basic_auth: tuple[str, str] | None = None,
        token: str | None = None,
        backoff_initial: Seconds = 0.5,
        backoff_max: Seconds = 30.0,
        finish_retries: int = 5,
        request_timeout: Seconds = 30.0,
        queue_weights: Mapping[str, int] | None = None,
    ) -> None:
        if not queues and not queue_weights:
            raise ValueError("name at least one queue")
        if concurrency < 1 or claim_amount < 1:
            raise ValueError("concurrency and claim_amount must be at least 1")
        for kind, handler in handlers.items():
            if not callable(handler):
                raise TypeError(f"the handler for kind {kind!r} is not callable")
        self.worker_id = worker_id or default_worker_id()
        self.queues = list(dict.fromkeys(queues))
        self.queue_weights = dict(queue_weights) if queue_weights else None
        self.drained = False  # the server put this worker to drain: it stopped claiming and finished its tasks
        self.handlers = dict(handlers)
        self.claim_amount = claim_amount
        self.concurrency = concurrency
        most = min(claim_amount, concurrency)
        if refill_at is not None and refill_at < 1:
            raise ValueError("refill_at must be at least 1")
        self.refill_at = min(refill_at, most) if refill_at is not None else max(1, most // 2)
        self.refill_wait = _seconds(refill_wait)
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
            server_url,
            self.worker_id,
            basic_auth=basic_auth,
            token=token,
            request_timeout=_seconds(request_timeout),
        )
        self._jobs: set[Job] = set()
        self._current: dict[tuple[str, str], Job] = {}  # the latest run of each task; earlier ones are superseded
        # Idle: every running job waits on the buffer, so nothing more is coming; send without waiting.
        self._batcher = Batcher(
            self._client, size=batch_size, age=_seconds(batch_age), idle=lambda waiting: waiting >= len(self._jobs)
        )
        # batching=False: one HTTP call per done/failed/report/unclaim, as the Go worker makes them.
        self._job_runner = JobRunner(self, self._batcher if batching else self._client)
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._claim_in_flight = False
        self._ran = False

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def batch_sizes(self) -> Counter[tuple[str, int]]:
        """Batch requests answered so far, by (endpoint, items): e.g. `{("done", 100): 3, ("done", 7): 1}`."""
        return self._client.batch_sizes

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
            ", ".join([*self.queues, *(f"{q}x{w}" for q, w in (self.queue_weights or {}).items())]),
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
            self._batcher.cancel()
            raise
        finally:
            stop_wait.cancel()
        self._stopping.set()
        self._batcher.hurry()
        # The claim loop ends after its in-flight claim (unclaiming what that returns) while handlers drain.
        await asyncio.gather(self._drain(), claim_loop, return_exceptions=True)
        await self._batcher.aclose()
        if not claim_loop.cancelled() and (exc := claim_loop.exception()) is not None:
            raise exc

    # -- claiming -------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        delay = self.backoff_initial
        while not self._stopping.is_set():
            self._slot_freed.clear()
            free = self.concurrency - len(self._jobs)
            if free <= 0:
                await wait_for_any(self._slot_freed, self._stopping)
                continue
            if free < self.refill_at:
                await self._more_free_slots()
                free = self.concurrency - len(self._jobs)
                if self._stopping.is_set():
                    break
            self._claim_in_flight = True
            try:
                tasks = await self._client.claim(
                    self.queues, min(self.claim_amount, free), self.block_for, queue_weights=self.queue_weights
                )
            except ServerUnavailable as e:
                self.stats.connection_errors += 1
                log.warning("cannot claim from %s (%s); retrying in %.1fs", self._client.base_url, e, delay)
                await wait_for_any(self._stopping, within=delay * random.uniform(0.8, 1.2))
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
            if self._client.draining and not tasks:
                log.info("worker %s is put to drain: finishing %d running task(s), then exiting", self.worker_id,
                         len(self._jobs))  # fmt: skip
                self.drained = True
                return
            if not tasks:
                continue
            self.stats.claimed += len(tasks)
            if self._stopping.is_set():
                # Claimed while the stop came in: hand them straight back.
                await asyncio.gather(*(self._job_runner.unclaim(t, "the worker is stopping") for t in tasks))
                return
            for task in tasks:
                self._start(task)

    async def _more_free_slots(self) -> None:
        """Wait, at most `refill_wait`, until `refill_at` slots are free: fewer, larger claims."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.refill_wait
        while self.concurrency - len(self._jobs) < self.refill_at and not self._stopping.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._slot_freed.clear()
            await wait_for_any(self._slot_freed, self._stopping, within=remaining)

    def _start(self, task: Task) -> None:
        job = Job(task)
        other = self._current.get(job.key)
        if other is not None:
            # This worker got the task again: its earlier claim timed out and was reaped. Whatever the
            # earlier run does now must not touch the new claim (the server cannot tell them apart).
            log.warning(
                "task %s was claimed again while an earlier run of it is still going (its claim timed out); "
                "the earlier run's result will be discarded",
                other.name,
            )
            other.supersede()
        self._current[job.key] = job
        self._jobs.add(job)
        self.stats.running = len(self._jobs)
        self.stats.max_running = max(self.stats.max_running, self.stats.running)
        job.runner = asyncio.create_task(self._job_runner.run(job), name=f"tasques-job-{job.name}")
        job.runner.add_done_callback(lambda _: self._job_finished(job))

    def _job_finished(self, job: Job) -> None:
        self._jobs.discard(job)
        if self._current.get(job.key) is job:
            del self._current[job.key]
        self.stats.running = len(self._jobs)
        self._slot_freed.set()

    # -- shutdown -------------------------------------------------------------------------------------------

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        # Put to drain by the server: the running tasks are finished, however long they take (a stop() hurries).
        deadline = None if self.drained else loop.time() + self.shutdown_grace
        while self._jobs and not self._hurry.is_set():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            self._slot_freed.clear()
            await wait_for_any(self._slot_freed, self._hurry, within=remaining)
        running = [j for j in self._jobs if j.handler_task is not None and not j.handler_task.done()]
        if running:
            log.warning("cancelling %d running handler(s) and unclaiming their tasks", len(running))
            for job in running:
                job.cancelled_by_worker = True
                assert job.handler_task is not None
                job.handler_task.cancel()
        runners = [j.runner for j in self._jobs if j.runner is not None]
        await asyncio.gather(*runners, return_exceptions=True)


__all__ = [
    "Handler",
    "TaskContext",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "default_worker_id",
    "exception_failure",
]
