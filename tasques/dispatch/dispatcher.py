"""The dispatcher loop. Every server runs one; they share work through ordinary conditional claims.

Per queue and per server it keeps at most `max_concurrent_dispatches` requests in flight and starts at most
`max_dispatches_per_second` (a token bucket with a burst of one), so a cluster of N servers may dispatch up
to N times a queue's limits. A 2xx answer marks the task done; any other status, a connection error or a
timeout is a failed attempt, retried by the task's retry policy; a destination the outbound policy refuses
is a final failure (dead). If the server dies mid-request, the claim times out (HTTP tasks default to the
request timeout plus a grace period) and the reaper retries it.

Idle cost: a pass serves only the queues that may have work: those the service's claim ticker reports (one
store probe per tick finds every queue with claimable HTTP tasks; in-process creates are reported at once)
and the *busy* ones, whose last claim was full or which are held back by their limits. Busy queues are served
every pass (and when one of their requests ends) and left out of the probe; a queue whose claim comes back
short is no longer busy. So an idle server with many HTTP queues sends one store request per tick, not one
per queue.

Isolation: a queue whose pass raises is logged and skipped, the other queues are still served; whatever
goes wrong with one task ends as a recorded failed attempt, never as a claim left to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tasques.dispatch.connect import new_session
from tasques.dispatch.policy import OutboundPolicy
from tasques.dispatch.send import Sender, Sent
from tasques.dispatch.tls import TlsContexts
from tasques.domain.errors import TasquesError
from tasques.domain.queue import QueueSettings
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task
from tasques.domain.timeline import Attempt
from tasques.log_fields import about
from tasques.service.events import NO_EVENTS, TaskEvents
from tasques.service.tasks import TaskService
from tasques.service.tracing import NO_TRACING, Tracer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchSettings:
    poll_interval: timedelta = timedelta(milliseconds=250)
    max_concurrent_dispatches: int = 10
    policy: OutboundPolicy = field(default_factory=OutboundPolicy)
    tls_files_dir: str | None = None
    max_redirects: int = 5


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`. Pure: the (monotonic) time is passed in."""

    def __init__(self, rate: float, now: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def available(self, now: float) -> int:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        self.available(now)
        self._tokens -= n

    def wait_for_one(self, now: float) -> float:
        """Seconds until a token is available."""
        missing = 1.0 - min(self.burst, self._tokens + (now - self._at) * self.rate)
        return max(0.0, missing / self.rate)


class Dispatcher:
    def __init__(
        self,
        tasks: TaskService,
        worker_id: str,
        settings: DispatchSettings,
        events: TaskEvents = NO_EVENTS,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        self._tasks = tasks
        self._events = events
        self._tracer = tracer
        self.worker_id = worker_id
        self._settings = settings
        self._in_flight: dict[QueueRef, int] = {}
        self._buckets: dict[QueueRef, TokenBucket] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._busy: set[QueueRef] = set()  # queues served every pass: they have work (see the module docstring)
        self._sender: Sender | None = None
        self.dispatched = 0  # requests started, for tests and metrics
        self.passes = 0  # completed passes over the queues, so tests can wait for some instead of sleeping

    async def run(self) -> None:
        """Run until cancelled; in-flight requests are cancelled with it (their claims time out and retry)."""
        session = new_session(self._settings.policy)
        tls = TlsContexts(self._settings.tls_files_dir)
        self._sender = Sender(session, tls, self._settings.tls_files_dir, self._settings.max_redirects)
        work = self._tasks.http_work
        try:
            with work.watching():
                while True:
                    try:
                        wait = await self.run_once()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("dispatch pass failed; retrying")
                        wait = self._settings.poll_interval.total_seconds()
                    await work.wait(wait)
        finally:
            for running in list(self._running):
                running.cancel()
            for running in list(self._running):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running
            await session.close()
            self._sender = None

    async def run_once(self) -> float:
        """Claim and start what the limits of each queue that may have work allow; returns how long to wait
        before the next pass."""
        loop = asyncio.get_running_loop()
        wait = self._settings.poll_interval.total_seconds()
        work = self._tasks.http_work
        due = work.take() | self._busy
        if due:
            # Traced only when there is work: an idle server's passes send nothing.
            with self._tracer.background("dispatcher pass", "background", {"queues": len(due)}):
                known = await self._tasks.queues.all()
                for queue in sorted(due):
                    settings = known.get(queue)
                    if settings is None:
                        self._busy.discard(queue)  # only registered queues are dispatched
                        continue
                    try:
                        wait = min(wait, await self._serve(queue, settings, loop.time()))
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # One queue's bad settings record or store error must not keep the others from being served.
                        self._busy.discard(queue)  # the probe reports it again while it has work
                        log.exception("dispatch pass of queue %s failed; skipped", queue.queue,
                                      extra=about(queue=queue.queue))  # fmt: skip
        work.busy = frozenset(self._busy)
        self.passes += 1
        return wait

    async def _serve(self, queue: QueueRef, settings: QueueSettings, now: float) -> float:
        """Claim and start what one queue's limits allow; returns how soon it wants another pass."""
        wait = self._settings.poll_interval.total_seconds()
        if settings.paused:
            self._busy.discard(queue)  # a resume here signals it; elsewhere, the probe finds its tasks
            return wait
        room = self._room(queue, settings, now)
        if room <= 0:
            self._busy.add(queue)  # served again once a request ends or the rate allows
            bucket = self._buckets.get(queue)
            if bucket is not None:
                wait = min(wait, max(0.005, bucket.wait_for_one(now)))
            return wait
        claimed = await self._tasks.claim_http(self.worker_id, queue, room)
        if claimed and (bucket := self._buckets.get(queue)) is not None:
            bucket.take(len(claimed), asyncio.get_running_loop().time())
        for task in claimed:
            self._start(task)
        if len(claimed) == room:
            self._busy.add(queue)
            return 0.0  # a full claim: more may be waiting
        self._busy.discard(queue)
        return wait

    def _room(self, queue: QueueRef, settings: QueueSettings, now: float) -> int:
        concurrent = settings.max_concurrent_dispatches or self._settings.max_concurrent_dispatches
        # However large a stored limit, one pass claims no more than one claim call may.
        room = min(concurrent, self._tasks.settings.max_claim_amount) - self._in_flight.get(queue, 0)
        rate = settings.max_dispatches_per_second
        if rate is None:
            self._buckets.pop(queue, None)
            return room
        bucket = self._buckets.get(queue)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[queue] = TokenBucket(rate, now)
        return min(room, bucket.available(now))

    def _start(self, task: Task) -> None:
        self._in_flight[task.ref] = self._in_flight.get(task.ref, 0) + 1
        self.dispatched += 1
        running = asyncio.create_task(self._dispatch(task), name=f"dispatch {task.queue}/{task.id}")
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _dispatch(self, task: Task) -> None:
        with self._tracer.background("dispatch", "background", {"task_id": task.id, "queue": task.queue}):
            await self._dispatch_traced(task)

    async def _dispatch_traced(self, task: Task) -> None:
        fields = about(task_id=task.id, queue=task.queue, worker_id=self.worker_id)
        try:
            started_at = self._tasks.now()
            sent = await self._send(task)
            status = sent.outcome.get("status_code")
            self._events.dispatched(
                task.queue, status if isinstance(status, int) else None, sent.outcome["duration_ms"] / 1000
            )
            await self._record(task, started_at, sent)
            # The claim id refuses this outcome if the claim timed out and the task was claimed again meanwhile.
            claim_id = task.claim_id
            try:
                if sent.ok:
                    await self._tasks.done(self.worker_id, task.ref, task.id, sent.outcome, claim_id)
                elif sent.final:
                    await self._tasks.fail_finally(self.worker_id, task.ref, task.id, sent.outcome, claim_id)
                else:
                    await self._tasks.fail(self.worker_id, task.ref, task.id, sent.outcome, claim_id)
            except TasquesError as e:
                # Cancelled (or timed out and reclaimed) meanwhile: its new state wins.
                log.debug("outcome of task %s in queue %s not recorded: %s", task.id, task.queue, e, extra=fields)
        except Exception:
            log.exception("outcome of task %s in queue %s not recorded", task.id, task.queue, extra=fields)
        finally:
            self._in_flight[task.ref] -= 1
            if task.ref in self._busy:
                self._tasks.http_work.poke()  # room came free in a queue with work

    async def _send(self, task: Task) -> Sent:
        """Never raises (but for cancellation): an unexpected error is a failed attempt like any other."""
        try:
            if task.http_request is None or self._sender is None:
                raise RuntimeError("the task has no HTTP request, or the dispatcher is not running")
            request = task.http_request
            with self._tracer.http_call(request.method, request.url, {"task_id": task.id, "queue": task.queue}) as call:
                sent = await self._sender.send(request)
                call.http_status(sent.outcome.get("status_code"))
            return sent
        except Exception as e:
            log.exception(
                "dispatching task %s in queue %s failed",
                task.id,
                task.queue,
                extra=about(task_id=task.id, queue=task.queue, worker_id=self.worker_id),
            )
            return Sent(False, {"error": f"dispatch error: {type(e).__name__}: {e}"[:1000], "duration_ms": 0.0})

    async def _record(self, task: Task, started_at: datetime, sent: Sent) -> None:
        outcome = sent.outcome
        try:
            attempt = Attempt(
                project=task.project,
                queue=task.queue,
                task_id=task.id,
                run=task.repeated or 0,
                attempt=task.attempted,
                worker_id=self.worker_id,
                started_at=started_at,
                ended_at=self._tasks.now(),
                duration_ms=outcome["duration_ms"],
                success=sent.ok,
                status_code=outcome.get("status_code"),
                response_headers=outcome.get("headers"),
                response_body=outcome.get("body"),
                error=outcome.get("error"),
            )
            await self._tasks.record_attempt(attempt)
        except Exception:
            log.exception("attempt %d of task %s in queue %s not recorded in the timeline", task.attempted,
                          task.id, task.queue, extra=about(task_id=task.id, queue=task.queue))  # fmt: skip
