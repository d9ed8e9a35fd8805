"""Leader election and the leader-only jobs, on every store, driven by a manual clock (no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tasques.leader.election import LeaderElector
from tasques.service.clock import ManualClock
from tasques.store.base import Store
from tests.contract import T0

LEASE = timedelta(seconds=5)
RENEW = timedelta(seconds=1)


class CountingJob:
    """A leader job that records how often it ran and whether it is running now."""

    name = "counting"
    interval = timedelta(milliseconds=5)

    def __init__(self) -> None:
        self.runs = 0

    async def run_once(self) -> int:
        self.runs += 1
        return 0


def elector(store: Store, holder: str, clock: ManualClock, job: CountingJob) -> LeaderElector:
    return LeaderElector(store, holder, [job], clock, LEASE, RENEW, lock_name="test-leader")


async def test_one_leader_at_a_time_and_failover_after_the_lease(store: Store) -> None:
    clock = ManualClock(T0)
    job_a, job_b = CountingJob(), CountingJob()
    a, b = elector(store, "a", clock, job_a), elector(store, "b", clock, job_b)
    try:
        assert await a.step() is True
        assert await b.step() is False
        await asyncio.sleep(0.05)
        assert job_a.runs > 0
        assert job_b.runs == 0
        assert a.elected.is_set()
        assert not b.elected.is_set()

        # a renews within its lease: b still cannot take over.
        clock.advance(RENEW)
        assert await a.step() is True
        clock.advance(LEASE - timedelta(milliseconds=1))
        assert await b.step() is False

        # a goes silent past its lease: b takes over, and a steps down the moment it learns.
        clock.advance(timedelta(milliseconds=2))
        assert await b.step() is True
        assert await a.step() is False
        assert not a.elected.is_set()
        runs_when_a_stopped = job_a.runs
        await asyncio.sleep(0.05)
        assert job_a.runs == runs_when_a_stopped
        assert job_b.runs > 0
    finally:
        for e in (a, b):
            await e.step_down()


async def test_release_on_shutdown_lets_a_successor_in_at_once(store: Store) -> None:
    clock = ManualClock(T0)
    a, b = elector(store, "a", clock, CountingJob()), elector(store, "b", clock, CountingJob())
    runner = asyncio.create_task(a.run())
    await asyncio.wait_for(a.elected.wait(), 5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    # No clock movement: the lease would still be live had a not released it.
    assert await b.step() is True
    await b.step_down()


async def test_renew_interval_must_be_shorter_than_the_lease(store: Store) -> None:
    with pytest.raises(ValueError, match="renew_every"):
        LeaderElector(store, "a", [], ManualClock(T0), lease=RENEW, renew_every=RENEW)
