"""The leader loop: hold the lock, and run the leader jobs only while it is held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from tasques.leader.jobs import LeaderJob
from tasques.service.clock import Clock
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
    ) -> None:
        if renew_every >= lease:
            raise ValueError("leader.renew_every must be shorter than leader.lease")
        self._store = store
        self._holder = holder
        self._jobs = list(jobs)
        self._clock = clock
        self._lease = lease
        self._renew_every = renew_every
        self._lock_name = lock_name
        self._job_tasks: list[asyncio.Task[None]] = []
        self._leader_until = 0.0  # monotonic deadline of our current lease
        self.elected = asyncio.Event()  # set while leader; tests wait on it instead of sleeping

    @property
    def is_leader(self) -> bool:
        return bool(self._job_tasks) and asyncio.get_running_loop().time() < self._leader_until

    async def run(self) -> None:
        """Run until cancelled; releases the lock on the way out so a successor need not wait a lease."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.step()
                # Never sleep past our own deadline: renew in time, or step down in time.
                delay = self._renew_every.total_seconds()
                if self._job_tasks:
                    delay = min(delay, max(0.0, self._leader_until - loop.time()))
                await asyncio.sleep(delay)
        finally:
            await self.step_down()

    async def step(self) -> bool:
        """One acquire-or-renew attempt; starts or stops the jobs to match. Returns whether we lead."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        now = self._clock()
        try:
            held = await self._store.acquire_lock(self._lock_name, self._holder, now, now + self._lease)
        except Exception:
            log.exception("leader lock: store unreachable")
            # We cannot tell whether we still hold it: keep leading only until our own deadline.
            if self._job_tasks and loop.time() >= self._leader_until:
                log.warning("leader lease of %s ran out unrenewed; stopping jobs", self._holder)
                await self._stop_jobs()
            return False
        if held:
            self._leader_until = sent + self._lease.total_seconds()
            if not self._job_tasks:
                log.info("leader lock acquired by %s; starting %d jobs", self._holder, len(self._jobs))
                self._job_tasks = [asyncio.create_task(self._run_job(j), name=j.name) for j in self._jobs]
                self.elected.set()
        elif self._job_tasks:
            log.warning("leader lock taken from %s; stopping jobs", self._holder)
            await self._stop_jobs()
        return held

    async def step_down(self) -> None:
        """Stop the jobs and release the lock (what `run` does when cancelled)."""
        await self._stop_jobs()
        with contextlib.suppress(Exception):
            await self._store.release_lock(self._lock_name, self._holder)

    async def _run_job(self, job: LeaderJob) -> None:
        while True:
            try:
                changed = await job.run_once()
                if changed:
                    log.debug("%s changed %d records", job.name, changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader job %s failed; retrying next interval", job.name)
            await asyncio.sleep(job.interval.total_seconds())

    async def _stop_jobs(self) -> None:
        tasks, self._job_tasks = self._job_tasks, []
        self.elected.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
