"""The leader lease against a store whose lock call hangs: jobs stop at the local deadline, and a stop is
bounded and final. A real SqliteStore underneath; waits are on events with generous bounds, not timings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tasques.leader.election import LeaderElector
from tasques.service.clock import ManualClock
from tasques.store.sqlite.store import SqliteStore
from tests.contract import T0

LEASE = timedelta(seconds=1)
RENEW = timedelta(milliseconds=250)
WITHIN = 10.0  # generous bound on any wait: what matters is that it happens, not how fast


class HangingLockStore(SqliteStore):
    """A real SqliteStore whose `acquire_lock` hangs from call number `hang_from` on, until `unhang()`.
    `deaf`: the hanging call also ignores cancellation, so only something independent of it can help."""

    def __init__(self, path: str, hang_from: int, *, deaf: bool = False) -> None:
        super().__init__(path)
        self.hang_from = hang_from
        self.deaf = deaf
        self.calls = 0
        self.hanging = asyncio.Event()
        self._unhang = asyncio.Event()

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        self.calls += 1
        if self.calls < self.hang_from:
            return await super().acquire_lock(name, holder, now, expires_at)
        self.hanging.set()
        while not self._unhang.is_set():
            try:
                await self._unhang.wait()
            except asyncio.CancelledError:
                if not self.deaf:
                    raise
        raise ConnectionError("store connection reset")

    def unhang(self) -> None:
        self._unhang.set()


class PassJob:
    """Records the loop time at which every pass starts."""

    name = "passes"
    interval = timedelta(milliseconds=10)

    def __init__(self) -> None:
        self.starts: list[float] = []

    async def run_once(self) -> int:
        self.starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.005)
        return 0


@pytest.fixture
async def hanging(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[HangingLockStore]:
    hang_from, deaf = request.param
    store = HangingLockStore(str(tmp_path / "t.db"), hang_from, deaf=deaf)
    await store.open()
    try:
        yield store
    finally:
        store.unhang()
        await store.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, checking often; fails the test if it takes more than WITHIN."""
    async with asyncio.timeout(WITHIN):
        while not condition():  # noqa: ASYNC110 (the elector has no event for stepping down)
            await asyncio.sleep(0.005)


def elector(store: SqliteStore, holder: str, job: PassJob, clock: ManualClock) -> LeaderElector:
    return LeaderElector(store, holder, [job], clock, LEASE, RENEW, lock_name="test-leader")


# The first acquire succeeds, every renewal hangs; `deaf`: it even ignores cancellation.
@pytest.mark.parametrize("hanging", [(2, False), (2, True)], indirect=True, ids=["hangs", "hangs-deaf"])
async def test_jobs_stop_at_the_lease_deadline_while_the_renewal_hangs(hanging: HangingLockStore) -> None:
    job = PassJob()
    a = elector(hanging, "a", job, ManualClock(T0))
    runner = a.start()
    try:
        await asyncio.wait_for(a.elected.wait(), WITHIN)
        await asyncio.wait_for(hanging.hanging.wait(), WITHIN)
        deadline = a.leader_until
        await until(lambda: not a.elected.is_set())
        assert asyncio.get_running_loop().time() >= deadline  # stopped by the lease, not by anything earlier
        assert not a.is_leader
        # Give a wrongly running job loop many intervals to show itself.
        await asyncio.sleep(20 * job.interval.total_seconds())
        assert job.starts
        assert all(start < deadline for start in job.starts), "a job pass started after the lease deadline"
        assert not runner.done()  # the loop itself lives on, to take the lock again once the store answers
    finally:
        hanging.unhang()
        await a.stop(grace=WITHIN)


@pytest.mark.parametrize("hanging", [(2, False), (2, True)], indirect=True, ids=["hangs", "hangs-deaf"])
async def test_stop_while_the_lock_call_hangs_is_bounded_and_never_retakes_the_lock(
    hanging: HangingLockStore,
) -> None:
    clock = ManualClock(T0)
    a = elector(hanging, "a", PassJob(), clock)
    a.start()
    await asyncio.wait_for(a.elected.wait(), WITHIN)
    await asyncio.wait_for(hanging.hanging.wait(), WITHIN)
    grace = 0.5
    await asyncio.wait_for(a.stop(grace=grace), grace + WITHIN)  # the real bound: a stuck stop fails here
    assert a.stopping
    assert not a.elected.is_set()
    calls_at_stop = hanging.calls

    hanging.unhang()  # the store answers again (the hung call fails); a stopped elector must stay out
    await asyncio.sleep(4 * RENEW.total_seconds())
    assert hanging.calls == calls_at_stop
    assert not a.elected.is_set()
    assert await a.step() is False
    # Released: a successor takes the lock at once, without waiting out a's lease (the clock has not moved).
    b = elector(hanging, "b", PassJob(), clock)
    hanging.hang_from = 10**9
    assert await b.step() is True
    await b.stop(grace=WITHIN)


class SlowToCancelJob:
    """A job that needs a moment to finish once cancelled (as a handler handing back a claim does)."""

    name = "slow-to-cancel"
    interval = timedelta(milliseconds=10)

    def __init__(self) -> None:
        self.cancel_seen = asyncio.Event()
        self.let_go = asyncio.Event()

    async def run_once(self) -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancel_seen.set()
            await self.let_go.wait()
            raise
        return 0


async def test_cancelling_the_loop_while_it_stops_its_jobs_ends_it(tmp_path: Path) -> None:
    """The reported hang: the stop's cancellation arrived while the leader was waiting for its jobs to end
    (the lease had just been lost), was swallowed there, and the loop went on, retook the lock, restarted its
    jobs and never ended, so the process never exited."""
    store = SqliteStore(str(tmp_path / "t.db"))
    await store.open()
    clock = ManualClock(T0)
    job = SlowToCancelJob()
    a = LeaderElector(store, "a", [job], clock, LEASE, RENEW, lock_name="test-leader")
    b = elector(store, "b", PassJob(), clock)
    runner = asyncio.create_task(a.run())
    try:
        await asyncio.wait_for(a.elected.wait(), WITHIN)
        clock.advance(LEASE + timedelta(seconds=1))
        assert await b.step() is True  # b takes the expired lock; a's next renewal learns it lost it
        await asyncio.wait_for(job.cancel_seen.wait(), WITHIN)
        runner.cancel()
        job.let_go.set()
        await asyncio.wait({runner}, timeout=WITHIN)
        assert runner.done(), "the leader loop swallowed its cancellation and kept running"
        assert not a.elected.is_set()
    finally:
        job.let_go.set()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await b.stop(grace=WITHIN)
        await store.close()
