"""The dispatcher loop. Every server runs one; they share work through ordinary conditional claims.

Per queue and per server it keeps at most `max_concurrent_dispatches` requests in flight and starts at most
`max_dispatches_per_second` (a token bucket with a burst of one), so a cluster of N servers may dispatch up
to N times a queue's limits. A 2xx answer marks the task done; any other status, a connection error or a
timeout is a failed attempt, retried by the task's retry policy. If the server dies mid-request, the claim
times out (HTTP tasks default to the request timeout plus a grace period) and the reaper retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp

from tasques.dispatch.tls import ssl_context
from tasques.domain.errors import TasquesError
from tasques.domain.queue import QueueSettings
from tasques.domain.task import Task
from tasques.domain.timeline import BODY_KEPT, Attempt
from tasques.service.tasks import TaskService

log = logging.getLogger(__name__)

KEPT_HEADERS = ("content-type", "content-length", "retry-after", "location", "date", "server")


@dataclass(frozen=True)
class DispatchSettings:
    poll_interval: timedelta = timedelta(milliseconds=250)
    max_concurrent_dispatches: int = 10


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
    def __init__(self, tasks: TaskService, worker_id: str, settings: DispatchSettings) -> None:
        self._tasks = tasks
        self.worker_id = worker_id
        self._settings = settings
        self._in_flight: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.dispatched = 0  # requests started, for tests and metrics
        self.passes = 0  # completed passes over the queues, so tests can wait for some instead of sleeping

    async def run(self) -> None:
        """Run until cancelled; in-flight requests are cancelled with it (their claims time out and retry)."""
        self._session = aiohttp.ClientSession()
        try:
            while True:
                try:
                    wait = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("dispatch pass failed; retrying")
                    wait = self._settings.poll_interval.total_seconds()
                await asyncio.sleep(wait)
        finally:
            for running in list(self._running):
                running.cancel()
            for running in list(self._running):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running
            await self._session.close()
            self._session = None

    async def run_once(self) -> float:
        """Claim and start what each queue's limits allow; returns how long to wait before the next pass."""
        loop = asyncio.get_running_loop()
        wait = self._settings.poll_interval.total_seconds()
        for queue, settings in (await self._tasks.queues.all()).items():
            if settings.paused:
                continue
            now = loop.time()
            room = self._room(queue, settings, now)
            if room <= 0:
                bucket = self._buckets.get(queue)
                if bucket is not None:
                    wait = min(wait, max(0.005, bucket.wait_for_one(now)))
                continue
            claimed = await self._tasks.claim_http(self.worker_id, queue, room)
            if claimed and (bucket := self._buckets.get(queue)) is not None:
                bucket.take(len(claimed), loop.time())
            for task in claimed:
                self._start(task)
            if len(claimed) == room:
                wait = 0.0  # more may be waiting
        self.passes += 1
        return wait

    def _room(self, queue: str, settings: QueueSettings, now: float) -> int:
        concurrent = settings.max_concurrent_dispatches or self._settings.max_concurrent_dispatches
        room = concurrent - self._in_flight.get(queue, 0)
        rate = settings.max_dispatches_per_second
        if rate is None:
            self._buckets.pop(queue, None)
            return room
        bucket = self._buckets.get(queue)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[queue] = TokenBucket(rate, now)
        return min(room, bucket.available(now))

    def _start(self, task: Task) -> None:
        self._in_flight[task.queue] = self._in_flight.get(task.queue, 0) + 1
        self.dispatched += 1
        running = asyncio.create_task(self._dispatch(task), name=f"dispatch {task.queue}/{task.id}")
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _dispatch(self, task: Task) -> None:
        try:
            started_at = self._tasks.now()
            ok, outcome = await self._send(task)
            attempt = Attempt(
                queue=task.queue,
                task_id=task.id,
                run=task.repeated or 0,
                attempt=task.attempted,
                worker_id=self.worker_id,
                started_at=started_at,
                ended_at=self._tasks.now(),
                duration_ms=outcome["duration_ms"],
                success=ok,
                status_code=outcome.get("status_code"),
                response_headers=outcome.get("headers"),
                response_body=outcome.get("body"),
                error=outcome.get("error"),
            )
            try:
                await self._tasks.record_attempt(attempt)
            except Exception:
                log.exception("attempt %s not recorded in the timeline", attempt.key)
            claim_id = task.last_claimed.claim_id if task.last_claimed is not None else None
            try:
                if ok:
                    await self._tasks.done(self.worker_id, task.queue, task.id, outcome, claim_id)
                else:
                    await self._tasks.fail(self.worker_id, task.queue, task.id, outcome, claim_id)
            except TasquesError as e:
                # Cancelled (or timed out and reclaimed) meanwhile: its new state wins.
                log.info("outcome of task %s in queue %s not recorded: %s", task.id, task.queue, e)
        finally:
            self._in_flight[task.queue] -= 1

    async def _send(self, task: Task) -> tuple[bool, dict[str, Any]]:
        request = task.http_request
        if request is None or self._session is None:
            raise RuntimeError(f"task {task.id} has no HTTP request, or the dispatcher is not running")
        data, content_type = request.payload()
        headers = dict(request.headers)
        if content_type is not None and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = content_type
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = aiohttp.ClientTimeout(total=request.timeout.total_seconds())
        try:
            ssl_option: ssl.SSLContext | bool = True
            if request.tls is not None:
                ssl_option = ssl_context(request.tls)
            async with self._session.request(
                request.method, request.url, data=data, headers=headers, timeout=timeout, ssl=ssl_option
            ) as resp:
                body = await resp.content.read(BODY_KEPT)
                outcome: dict[str, Any] = {
                    "status_code": resp.status,
                    "headers": {k: resp.headers[k] for k in KEPT_HEADERS if k in resp.headers},
                    "body": body.decode("utf-8", errors="replace"),
                    "duration_ms": round((loop.time() - started) * 1000, 3),
                }
                return 200 <= resp.status < 300, outcome
        except TimeoutError:
            error = f"timed out after {request.timeout.total_seconds()}s"
        except (aiohttp.ClientError, ssl.SSLError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        return False, {"error": error, "duration_ms": round((loop.time() - started) * 1000, 3)}
