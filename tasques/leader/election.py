"""The leader loop: hold the lock, and run the leader jobs only while it is held (design: README.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from tasques.leader.jobs import LeaderJob
from tasques.service.clock import Clock
from tasques.service.events import NO_EVENTS, TaskEvents
from tasques.service.tracing import NO_TRACING, Tracer
from tasques.store.base import Store

log = logging.getLogger(__name__)

LOCK_NAME = "tasques-leader"


class LeaderElector:
    def __init__(
        self,
        store: Store,
        holder: str,
        jobs: Sequence[LeaderJob],
        clock: Clock,
        lease: timedelta,
        renew_every: timedelta,
        lock_name: str = LOCK_NAME,
        events: TaskEvents = NO_EVENTS,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        if lease <= timedelta(0) or renew_every <= timedelta(0):
            raise ValueError("leader.lease and leader.renew_every must be positive")
        if renew_every >= lease:
            raise ValueError("leader.renew_every must be shorter than leader.lease")
        self._store = store
        self._events = events
        self._holder = holder
        self._jobs = list(jobs)
        self._clock = clock
        self._lease = lease
        self._renew_every = renew_every
        self._lock_name = lock_name
        self._tracer = tracer
        self._job_tasks: list[asyncio.Task[None]] = []
        self._retired: set[asyncio.Task[None]] = set()  # cancelled jobs that have not finished yet
        self._leader_until = 0.0  # monotonic (loop time) deadline of our current lease
        self._watchdog: asyncio.TimerHandle | None = None
        self._stopping = False
        self._stop_by: float | None = None  # loop time by which a stop must be over
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.elected = asyncio.Event()  # set while leader; tests wait on it instead of sleeping

    @property
    def is_leader(self) -> bool:
        return self._may_lead() and bool(self._job_tasks)

    @property
    def jobs(self) -> tuple[LeaderJob, ...]:
        """The jobs it runs while it leads (tests drive one's `run_once` directly)."""
        return tuple(self._jobs)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def leader_until(self) -> float:
        """The loop time at which our current lease runs out locally (0 before the first acquire)."""
        return self._leader_until

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task (once); `stop` ends it."""
        if self._runner is None:
            self._runner = asyncio.create_task(self.run(), name="leader")
        return self._runner

    async def run(self) -> None:
        """Run until cancelled or stopped; steps down (jobs cancelled, lock released) on the way out."""
        loop = asyncio.get_running_loop()
        self._runner = self._runner or asyncio.current_task()
        try:
            while not self._stopping:
                await self.step()
                # Renewal must land before our own deadline; the watchdog steps down if it does not.
                delay = self._renew_every.total_seconds()
                if self._job_tasks:
                    delay = min(delay, max(0.0, self._leader_until - loop.time()))
                await self._pause(delay)
        finally:
            # Whatever ended the loop, this server is done leading: it never takes the lock again.
            self._stopping = True
            await self.step_down()

    async def stop(self, grace: float) -> None:
        """Stop for good within `grace` seconds, whatever the store does: no acquire from now on, jobs
        cancelled at once, the lock released if the store answers in time (else it expires on its own)."""
        loop = asyncio.get_running_loop()
        by = loop.time() + max(0.0, grace)
        self._stop_by = by if self._stop_by is None else min(by, self._stop_by)
        already_stopping, self._stopping = self._stopping, True
        self._wake.set()
        self._cancel_jobs()
        runner = self._runner
        if runner is None or runner.done():
            await self.step_down()
            return
        if runner is not asyncio.current_task():
            if not already_stopping:
                # Interrupts a hanging acquire; run's `finally` releases the lock. A second stop() (the app's
                # cleanup after the CLI's) must not cancel again: that would cut the release short.
                runner.cancel()
            await asyncio.wait({runner}, timeout=max(0.0, self._stop_by - loop.time()))
            if not runner.done():
                log.warning(
                    "leader %s: stop did not finish within %.1fs; the lock expires on its own", self._holder, grace
                )

    async def step(self) -> bool:
        """One acquire-or-renew attempt; starts or stops the jobs to match. Returns whether we lead."""
        if self._stopping:
            return False
        loop = asyncio.get_running_loop()
        sent = loop.time()
        if self._job_tasks and sent >= self._leader_until:
            self._lease_ran_out()  # the watchdog's callback may not have run yet
        # An answer after our own deadline, or (not leading) after a whole lease, is of no use: bound the call.
        budget = self._leader_until - sent if self._job_tasks else self._lease.total_seconds()
        now = self._clock()
        try:
            async with asyncio.timeout(budget):
                held = await self._store.acquire_lock(self._lock_name, self._holder, now, now + self._lease)
        except TimeoutError:
            log.warning("leader lock: no answer from the store within %.2fs", budget)
            return False
        except Exception:
            log.exception("leader lock: store unreachable")
            return False  # the watchdog stops the jobs at our deadline if no renewal lands before it
        if self._stopping:
            return False  # stop() began while the call was in flight: the stop path releases the lock
        if held:
            self._leader_until = sent + self._lease.total_seconds()
            self._arm_watchdog(loop)
            if not self._job_tasks:
                log.info("leader lock acquired by %s; starting %d jobs", self._holder, len(self._jobs))
                self._job_tasks = [asyncio.create_task(self._run_job(j), name=j.name) for j in self._jobs]
                self.elected.set()
                self._events.leadership(True)
        elif self._job_tasks:
            log.warning("leader lock taken from %s; stopping jobs", self._holder)
            self._cancel_jobs()
        return held

    async def step_down(self) -> None:
        """Cancel the jobs and release the lock, within the stop deadline (or one lease without a stop)."""
        loop = asyncio.get_running_loop()
        by = self._stop_by if self._stop_by is not None else loop.time() + self._lease.total_seconds()
        # Unwinding after stop() gave up waiting (a store call ignored cancellation): a short late try.
        by = max(by, loop.time() + min(1.0, self._renew_every.total_seconds())) if by <= loop.time() else by
        self._cancel_jobs()
        self._leader_until = 0.0
        if self._retired:
            await asyncio.wait(set(self._retired), timeout=max(0.0, by - loop.time()))
        try:
            async with asyncio.timeout_at(by):
                await self._store.release_lock(self._lock_name, self._holder)
        except TimeoutError:
            log.warning("leader lock: release got no answer in time; it expires within the lease")
        except Exception:
            log.warning("leader lock: release failed; it expires within the lease", exc_info=True)

    def _may_lead(self) -> bool:
        return not self._stopping and asyncio.get_running_loop().time() < self._leader_until

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()  # set by stop()
        except TimeoutError:
            pass

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = loop.call_at(self._leader_until, self._lease_ran_out)

    def _lease_ran_out(self) -> None:
        if self._job_tasks:
            log.warning("leader lease of %s ran out unrenewed; stopping jobs", self._holder)
        self._cancel_jobs()

    def _cancel_jobs(self) -> None:
        """Cancel the jobs now (no waiting: this also runs as a timer callback)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        tasks, self._job_tasks = self._job_tasks, []
        self.elected.clear()
        if tasks:
            self._events.leadership(False)
        for t in tasks:
            t.cancel()
            if not t.done():
                self._retired.add(t)
                t.add_done_callback(self._retired.discard)

    async def _run_job(self, job: LeaderJob) -> None:
        me = asyncio.current_task()
        # Leadership is checked before every pass: none starts after the deadline or once replaced.
        while self._may_lead() and me in self._job_tasks:
            try:
                with self._tracer.background(f"leader {job.name}", "leader") as traced:
                    changed = await job.run_once()
                    traced.label(changed=changed)
                if changed:
                    log.debug("%s changed %d records", job.name, changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader job %s failed; retrying next interval", job.name)
            await asyncio.sleep(job.interval.total_seconds())
