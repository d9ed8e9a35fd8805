"""One Task driven through random operations, checked against a small model of what should happen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tasques.domain.errors import ClaimMismatch, NotClaimed, NotOwnedByWorker, TasquesError
from tasques.domain.retry import BackoffPolicy
from tasques.domain.task import CLAIMABLE_STATES, FINISHED_STATES, NewTask, Task, TaskState

T0 = datetime(2024, 3, 15, 12, 0, 0, tzinfo=UTC)
BACKOFF = BackoffPolicy(initial=timedelta(seconds=1), multiplier=2.0, max=timedelta(minutes=5))
WORKERS = st.sampled_from(["worker-a", "worker-b"])
DATA = st.none() | st.dictionaries(st.sampled_from(["k", "n", "msg"]), st.integers(-5, 5), max_size=2)
# Which claim id an owner-only call sends: none (Go clients), the current claim's, or an earlier claim's.
CLAIM_IDS = st.sampled_from(["none", "current", "earlier"])


@dataclass
class Model:
    state: TaskState
    attempted: int
    owner: str | None = None
    claimed_at: datetime | None = None
    times_out_at: datetime | None = None
    run_at: datetime = T0
    claim_id: str | None = None  # of the last claim; kept after it ends, as `last_claimed` is
    claims: int = 0


class TaskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.processing_timeout = timedelta(minutes=1)
        self.retry_times = 0
        self.task: Task | None = None
        self.model = Model(state=TaskState.QUEUED, attempted=0)

    @initialize(
        retry_times=st.integers(0, 4),
        timeout_s=st.integers(1, 3600),
    )
    def create(self, retry_times: int, timeout_s: int) -> None:
        self.retry_times = retry_times
        self.processing_timeout = timedelta(seconds=timeout_s)
        new = NewTask(
            queue="q",
            kind="k",
            id="t",
            run_at=T0,
            retry_times=retry_times,
            processing_timeout=self.processing_timeout,
        )
        self.task = Task.create(new, T0)

    # --- helpers --------------------------------------------------------------------------------------------

    @property
    def t(self) -> Task:
        assert self.task is not None
        return self.task

    def expect_error(self, op: Callable[[], Task], error: type[TasquesError]) -> None:
        before = self.t
        dumped = before.model_dump()
        with pytest.raises(TasquesError) as excinfo:
            op()
        assert type(excinfo.value) is error
        assert self.task is before
        assert before.model_dump() == dumped

    def apply(self, op: Callable[[], Task]) -> Task:
        before = self.t
        dumped = before.model_dump()
        after = op()
        assert before.model_dump() == dumped, "transitions must not change the old task"
        assert after.metadata.modified_at == self.now
        assert after.metadata.created_at == T0
        assert after.id == before.id
        self.task = after
        return after

    def claim_id(self, which: str) -> str | None:
        if which == "none":
            return None
        if which == "current":
            return self.model.claim_id
        # A claim id this task had before its last claim (or never had, before the second claim).
        return f"claim-{max(self.model.claims - 1, 0)}"

    def ownership_error(self, worker: str, claim_id: str | None) -> type[TasquesError] | None:
        """The error an owner-only operation (report, done, fail, unclaim) by `worker` must raise, if any."""
        if self.model.state is not TaskState.CLAIMED:
            return NotClaimed
        if self.model.owner != worker:
            return NotOwnedByWorker
        if claim_id is not None and claim_id != self.model.claim_id:
            return ClaimMismatch
        return None

    def record_failure(self, after: Task) -> None:
        m = self.model
        if m.attempted > self.retry_times:
            m.state = TaskState.DEAD
        else:
            m.state = TaskState.FAILED
            m.run_at = self.now + BACKOFF.delay(m.attempted)
            assert after.last_enqueued_at == self.now
        m.owner = m.claimed_at = m.times_out_at = None

    # --- rules ----------------------------------------------------------------------------------------------

    @rule(delta_s=st.integers(0, 7200) | st.sampled_from([0, 1, 59, 60]))
    def advance(self, delta_s: int) -> None:
        self.now += timedelta(seconds=delta_s)

    @rule()
    def advance_to_timeout(self) -> None:
        if self.model.times_out_at is not None and self.model.times_out_at > self.now:
            self.now = self.model.times_out_at

    @rule(worker=WORKERS)
    def claim(self, worker: str) -> None:
        if self.model.state not in CLAIMABLE_STATES:
            self.expect_error(lambda: self.t.claimed(worker, self.now, "never-stored"), NotClaimed)
            return
        m = self.model
        claim_id = f"claim-{m.claims + 1}"
        after = self.apply(lambda: self.t.claimed(worker, self.now, claim_id))
        m.claims += 1
        m.claim_id = claim_id
        m.state = TaskState.CLAIMED
        m.attempted += 1
        m.owner = worker
        m.claimed_at = self.now
        m.times_out_at = self.now + self.processing_timeout
        assert after.last_claimed is not None
        assert after.last_claimed.result is None
        assert after.last_claimed.last_report is None

    @rule(worker=WORKERS, data=DATA, which=CLAIM_IDS)
    def report(self, worker: str, data: dict[str, int] | None, which: str) -> None:
        c = self.claim_id(which)
        error = self.ownership_error(worker, c)
        if error is not None:
            self.expect_error(lambda: self.t.reported(worker, data, self.now, c), error)
            return
        after = self.apply(lambda: self.t.reported(worker, data, self.now, c))
        self.model.times_out_at = self.now + self.processing_timeout
        assert after.last_claimed is not None
        assert after.last_claimed.last_report is not None
        assert after.last_claimed.last_report.data == data

    @rule(worker=WORKERS, data=DATA, which=CLAIM_IDS)
    def done(self, worker: str, data: dict[str, int] | None, which: str) -> None:
        c = self.claim_id(which)
        error = self.ownership_error(worker, c)
        if error is not None:
            self.expect_error(lambda: self.t.done(worker, data, self.now, c), error)
            return
        after = self.apply(lambda: self.t.done(worker, data, self.now, c))
        self.model.state = TaskState.DONE
        assert after.last_claimed is not None
        assert after.last_claimed.worker_id == worker
        assert after.last_claimed.result is not None
        assert after.last_claimed.result.success == (data if data is not None else {})
        assert after.last_claimed.result.failure is None

    @rule(worker=WORKERS, data=DATA, which=CLAIM_IDS)
    def fail(self, worker: str, data: dict[str, int] | None, which: str) -> None:
        c = self.claim_id(which)
        error = self.ownership_error(worker, c)
        if error is not None:
            self.expect_error(lambda: self.t.failed(worker, data, self.now, BACKOFF, c), error)
            return
        after = self.apply(lambda: self.t.failed(worker, data, self.now, BACKOFF, c))
        self.record_failure(after)
        assert after.last_claimed is not None
        assert after.last_claimed.worker_id == worker
        assert after.last_claimed.result is not None
        assert after.last_claimed.result.failure == (data if data is not None else {})
        assert after.last_claimed.result.success is None

    @rule(worker=WORKERS, which=CLAIM_IDS)
    def unclaim(self, worker: str, which: str) -> None:
        c = self.claim_id(which)
        error = self.ownership_error(worker, c)
        if error is not None:
            self.expect_error(lambda: self.t.unclaimed(worker, self.now, c), error)
            return
        before = self.t.last_claimed
        after = self.apply(lambda: self.t.unclaimed(worker, self.now, c))
        m = self.model
        m.state = TaskState.QUEUED
        m.attempted -= 1
        m.owner = m.claimed_at = m.times_out_at = None
        assert after.last_claimed == before, "unclaim keeps last_claimed, as the original Tasques does"
        assert after.last_enqueued_at == self.now

    @rule()
    def timeout(self) -> None:
        m = self.model
        if m.state is not TaskState.CLAIMED:
            self.expect_error(lambda: self.t.timed_out(self.now, BACKOFF), NotClaimed)
            return
        assert m.times_out_at is not None
        if self.now < m.times_out_at:
            self.expect_error(lambda: self.t.timed_out(self.now, BACKOFF), NotClaimed)
            return
        owner = m.owner
        after = self.apply(lambda: self.t.timed_out(self.now, BACKOFF))
        self.record_failure(after)
        assert after.last_claimed is not None
        assert after.last_claimed.result is not None
        assert after.last_claimed.result.failure is not None
        assert after.last_claimed.result.failure["worker_id"] == owner

    @rule(worker=WORKERS)
    def finished_tasks_refuse_everything(self, worker: str) -> None:
        if self.model.state not in FINISHED_STATES:
            return
        t, now = self.t, self.now
        ops: list[Callable[[], Task]] = [
            lambda: t.claimed(worker, now, "never-stored"),
            lambda: t.reported(worker, None, now),
            lambda: t.done(worker, None, now, self.model.claim_id),
            lambda: t.failed(worker, None, now, BACKOFF),
            lambda: t.unclaimed(worker, now, self.model.claim_id),
            lambda: t.timed_out(now + timedelta(days=365), BACKOFF),
        ]
        for op in ops:
            self.expect_error(op, NotClaimed)

    # --- invariants -----------------------------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if self.task is None:
            return
        t, m = self.task, self.model
        assert t.state is m.state
        assert t.attempted == m.attempted
        assert t.metadata.created_at == T0
        assert t.run_at == m.run_at
        if m.state is TaskState.CLAIMED:
            assert t.last_claimed is not None
            assert t.last_claimed.worker_id == m.owner
            assert t.last_claimed.claimed_at == m.claimed_at
            assert t.last_claimed.times_out_at == m.times_out_at

    @invariant()
    def attempts_in_range(self) -> None:
        if self.task is None:
            return
        assert 0 <= self.task.attempted <= self.task.retry_times + 1

    @invariant()
    def claimed_tasks_have_a_live_claim(self) -> None:
        if self.task is None or self.task.state is not TaskState.CLAIMED:
            return
        claim = self.task.last_claimed
        assert claim is not None
        assert claim.times_out_at > claim.claimed_at
        assert claim.result is None
        assert self.task.attempted >= 1

    @invariant()
    def claimable_iff_queued_or_failed(self) -> None:
        if self.task is None:
            return
        assert self.task.claimable == (self.task.state in {TaskState.QUEUED, TaskState.FAILED})

    @invariant()
    def finished_tasks_have_a_result(self) -> None:
        if self.task is None or self.task.state not in FINISHED_STATES:
            return
        claim = self.task.last_claimed
        assert claim is not None
        assert claim.result is not None
        if self.task.state is TaskState.DONE:
            assert claim.result.success is not None
            assert claim.result.failure is None
        else:
            assert self.task.attempted == self.task.retry_times + 1
            assert claim.result.failure is not None
            assert claim.result.success is None

    @invariant()
    def last_claimed_is_the_last_claim(self) -> None:
        if self.task is None:
            return
        if self.model.claims == 0:
            assert self.task.last_claimed is None
        else:
            assert self.task.last_claimed is not None
            assert self.task.last_claimed.claim_id == self.model.claim_id


TaskMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestTaskMachine = TaskMachine.TestCase
