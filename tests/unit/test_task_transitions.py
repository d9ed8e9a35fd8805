"""Every transition of `Task`, legal and illegal, with fixed UTC instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from tasques.domain.errors import NotClaimed, NotOwnedByWorker, TasquesError
from tasques.domain.retry import BackoffPolicy
from tasques.domain.task import NewTask, Task, TaskState, claim_order_key

T0 = datetime(2024, 3, 15, 12, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)
BACKOFF = BackoffPolicy(initial=timedelta(seconds=1), multiplier=2.0, max=timedelta(hours=1))
A = "worker-a"
B = "worker-b"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_task(retry_times: int = 2, **overrides: object) -> Task:
    fields: dict[str, object] = {
        "queue": "q",
        "kind": "sayHello",
        "id": "t1",
        "priority": 3,
        "run_at": T0,
        "retry_times": retry_times,
        "processing_timeout": TIMEOUT,
        "args": {"name": "world"},
        "context": {"trace": "abc"},
    }
    fields.update(overrides)
    return Task.create(NewTask.model_validate(fields), T0)


# --- tasks in each state, all owned (when claimed) by worker A --------------------------------------------


def queued() -> Task:
    return new_task()


def claimed_by_a() -> Task:
    return new_task().claimed(A, at(10))


def failed() -> Task:
    return claimed_by_a().failed(A, {"err": "boom"}, at(20), BACKOFF)


def claimed_again() -> Task:
    return failed().claimed(A, at(30))


def done() -> Task:
    return claimed_by_a().done(A, {"ok": True}, at(20))


def dead() -> Task:
    return new_task(retry_times=0).claimed(A, at(10)).failed(A, None, at(20), BACKOFF)


def unclaimed() -> Task:
    return claimed_by_a().unclaimed(A, at(20))


def timed_out() -> Task:
    return claimed_by_a().timed_out(at(10) + TIMEOUT, BACKOFF)


STATES: dict[str, tuple[Callable[[], Task], TaskState]] = {
    "queued": (queued, TaskState.QUEUED),
    "claimed": (claimed_by_a, TaskState.CLAIMED),
    "failed": (failed, TaskState.FAILED),
    "claimed_again": (claimed_again, TaskState.CLAIMED),
    "done": (done, TaskState.DONE),
    "dead": (dead, TaskState.DEAD),
    "unclaimed": (unclaimed, TaskState.QUEUED),
    "timed_out": (timed_out, TaskState.FAILED),
}


@pytest.mark.parametrize("name", list(STATES))
def test_builders_reach_their_state(name: str) -> None:
    build, state = STATES[name]
    assert build().state is state


# --- the full operation table -----------------------------------------------------------------------------

LATE = at(100_000)  # long past any claim's times_out_at

Op = Callable[[Task], Task]
OPS: dict[str, Op] = {
    "claim_a": lambda t: t.claimed(A, LATE),
    "claim_b": lambda t: t.claimed(B, LATE),
    "report_a": lambda t: t.reported(A, {"progress": 1}, LATE),
    "report_b": lambda t: t.reported(B, {"progress": 1}, LATE),
    "done_a": lambda t: t.done(A, None, LATE),
    "done_b": lambda t: t.done(B, None, LATE),
    "fail_a": lambda t: t.failed(A, None, LATE, BACKOFF),
    "fail_b": lambda t: t.failed(B, None, LATE, BACKOFF),
    "unclaim_a": lambda t: t.unclaimed(A, LATE),
    "unclaim_b": lambda t: t.unclaimed(B, LATE),
    "timeout": lambda t: t.timed_out(LATE, BACKOFF),
}

# state name -> op name -> the error it raises, or the state it leads to.
Outcome = type[TasquesError] | TaskState
_CLAIMED_BY_A: dict[str, Outcome] = {
    "claim_a": NotClaimed,
    "claim_b": NotClaimed,
    "report_a": TaskState.CLAIMED,
    "report_b": NotOwnedByWorker,
    "done_a": TaskState.DONE,
    "done_b": NotOwnedByWorker,
    "fail_a": TaskState.FAILED,
    "fail_b": NotOwnedByWorker,
    "unclaim_a": TaskState.QUEUED,
    "unclaim_b": NotOwnedByWorker,
    "timeout": TaskState.FAILED,
}
_CLAIMABLE: dict[str, Outcome] = {
    **dict.fromkeys(OPS, NotClaimed),
    "claim_a": TaskState.CLAIMED,
    "claim_b": TaskState.CLAIMED,
}
_FINISHED: dict[str, Outcome] = dict.fromkeys(OPS, NotClaimed)

TABLE: dict[str, dict[str, Outcome]] = {
    "queued": _CLAIMABLE,
    "claimed": _CLAIMED_BY_A,
    "failed": _CLAIMABLE,
    # the second of three allowed attempts: failing again still retries
    "claimed_again": _CLAIMED_BY_A,
    "done": _FINISHED,
    "dead": _FINISHED,
    "unclaimed": _CLAIMABLE,
    "timed_out": _CLAIMABLE,
}
CASES = [(s, op, outcome) for s, row in TABLE.items() for op, outcome in row.items()]


def test_table_covers_every_state_and_op() -> None:
    assert set(TABLE) == set(STATES)
    for row in TABLE.values():
        assert set(row) == set(OPS)


@pytest.mark.parametrize(("state", "op", "outcome"), CASES, ids=[f"{s}-{op}" for s, op, _ in CASES])
def test_transition_table(state: str, op: str, outcome: Outcome) -> None:
    task = STATES[state][0]()
    before = task.model_dump()
    if isinstance(outcome, TaskState):
        after = OPS[op](task)
        assert after.state is outcome
        assert after.metadata.modified_at == LATE
        assert after.metadata.created_at == T0
        assert after.metadata.version == task.metadata.version
        assert (after.id, after.queue, after.kind, after.args, after.context) == (
            task.id,
            task.queue,
            task.kind,
            task.args,
            task.context,
        )
    else:
        with pytest.raises(TasquesError) as excinfo:
            OPS[op](task)
        assert type(excinfo.value) is outcome
    assert task.model_dump() == before, "the original task must never change"


# --- claim ------------------------------------------------------------------------------------------------


def test_create() -> None:
    task = new_task()
    assert task.state is TaskState.QUEUED
    assert task.attempted == 0
    assert task.last_claimed is None
    assert task.last_enqueued_at == T0
    assert task.metadata.created_at == task.metadata.modified_at == T0
    assert task.claimable
    assert task.is_claimable_at(T0)
    assert not task.is_claimable_at(T0 - timedelta(microseconds=1))


def test_claim() -> None:
    task = new_task().claimed(A, at(10))
    assert task.state is TaskState.CLAIMED
    assert task.attempted == 1
    assert task.last_claimed is not None
    assert task.last_claimed.worker_id == A
    assert task.last_claimed.claimed_at == at(10)
    assert task.last_claimed.times_out_at == at(10) + TIMEOUT
    assert task.last_claimed.last_report is None
    assert task.last_claimed.result is None
    assert task.metadata.modified_at == at(10)
    assert task.metadata.created_at == T0
    assert not task.claimable
    assert not task.is_claimable_at(LATE)


def test_claim_replaces_the_previous_claim() -> None:
    task = failed().claimed(B, at(30))
    assert task.attempted == 2
    assert task.last_claimed is not None
    assert task.last_claimed.worker_id == B
    assert task.last_claimed.claimed_at == at(30)
    assert task.last_claimed.times_out_at == at(30) + TIMEOUT
    assert task.last_claimed.result is None
    assert task.last_claimed.last_report is None


def test_claim_uses_the_tasks_own_timeout() -> None:
    task = new_task(processing_timeout=timedelta(seconds=5)).claimed(A, at(10))
    assert task.last_claimed is not None
    assert task.last_claimed.times_out_at == at(15)


# --- report -----------------------------------------------------------------------------------------------


def test_report_extends_the_timeout_and_keeps_the_claim() -> None:
    task = claimed_by_a()
    reported = task.reported(A, {"progress": 0.5}, at(60))
    assert reported.state is TaskState.CLAIMED
    assert reported.attempted == 1
    claim = reported.last_claimed
    assert claim is not None
    assert claim.worker_id == A
    assert claim.claimed_at == at(10)
    assert claim.times_out_at == at(60) + TIMEOUT
    assert claim.last_report is not None
    assert claim.last_report.at == at(60)
    assert claim.last_report.data == {"progress": 0.5}
    assert reported.metadata.modified_at == at(60)
    assert reported.metadata.created_at == T0


def test_report_without_data_and_a_second_report_replaces_the_first() -> None:
    task = claimed_by_a().reported(A, {"progress": 1}, at(60)).reported(A, None, at(120))
    claim = task.last_claimed
    assert claim is not None
    assert claim.last_report is not None
    assert claim.last_report.at == at(120)
    assert claim.last_report.data is None
    assert claim.times_out_at == at(120) + TIMEOUT


# --- done -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [({"answer": 42}, {"answer": 42}), (None, {}), ({}, {})])
def test_done_records_success(data: dict[str, object] | None, expected: dict[str, object]) -> None:
    task = claimed_by_a().done(A, data, at(20))
    assert task.state is TaskState.DONE
    assert task.attempted == 1
    claim = task.last_claimed
    assert claim is not None
    assert claim.worker_id == A
    assert claim.result is not None
    assert claim.result.at == at(20)
    assert claim.result.success == expected
    assert claim.result.failure is None
    assert task.metadata.modified_at == at(20)
    assert task.metadata.created_at == T0
    assert not task.claimable


def test_done_keeps_the_last_report() -> None:
    task = claimed_by_a().reported(A, {"p": 1}, at(15)).done(A, None, at(20))
    assert task.last_claimed is not None
    assert task.last_claimed.last_report is not None
    assert task.last_claimed.last_report.data == {"p": 1}


# --- failed -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [({"err": "boom"}, {"err": "boom"}), (None, {})])
def test_failed_records_failure(data: dict[str, object] | None, expected: dict[str, object]) -> None:
    task = claimed_by_a().failed(A, data, at(20), BACKOFF)
    assert task.state is TaskState.FAILED
    claim = task.last_claimed
    assert claim is not None
    assert claim.result is not None
    assert claim.result.at == at(20)
    assert claim.result.failure == expected
    assert claim.result.success is None
    assert task.run_at == at(20) + BACKOFF.delay(1)
    assert task.last_enqueued_at == at(20)
    assert task.metadata.modified_at == at(20)
    assert task.metadata.created_at == T0
    assert task.claimable
    assert not task.is_claimable_at(at(20))
    assert task.is_claimable_at(task.run_at)


@pytest.mark.parametrize("retry_times", [0, 1, 2, 3, 5])
def test_failures_retry_then_die(retry_times: int) -> None:
    task = new_task(retry_times=retry_times)
    now = T0
    for attempt in range(1, retry_times + 2):
        now += timedelta(hours=2)
        task = task.claimed(A, now)
        assert task.attempted == attempt
        now += timedelta(seconds=5)
        task = task.failed(A, {"attempt": attempt}, now, BACKOFF)
        if attempt <= retry_times:
            assert task.state is TaskState.FAILED
            assert task.run_at == now + BACKOFF.delay(attempt)
            assert task.run_at == now + timedelta(seconds=2 ** (attempt - 1))
        else:
            assert task.state is TaskState.DEAD
    assert task.attempted == retry_times + 1
    assert task.last_claimed is not None
    assert task.last_claimed.result is not None
    assert task.last_claimed.result.failure == {"attempt": retry_times + 1}
    with pytest.raises(NotClaimed):
        task.claimed(A, now + timedelta(days=1))


def test_retry_times_zero_dies_on_first_failure() -> None:
    task = new_task(retry_times=0).claimed(A, at(10)).failed(A, {"err": "x"}, at(20), BACKOFF)
    assert task.state is TaskState.DEAD
    assert task.attempted == 1
    assert not task.claimable
    assert task.metadata.modified_at == at(20)


def test_failed_uses_the_given_backoff() -> None:
    backoff = BackoffPolicy(initial=timedelta(seconds=10), multiplier=3.0, max=timedelta(seconds=50))
    task = new_task(retry_times=5)
    task = task.claimed(A, at(0)).failed(A, None, at(1), backoff)
    assert task.run_at == at(11)
    task = task.claimed(A, at(20)).failed(A, None, at(21), backoff)
    assert task.run_at == at(51)
    task = task.claimed(A, at(60)).failed(A, None, at(61), backoff)
    assert task.run_at == at(111)  # capped at 50s


# --- timed_out --------------------------------------------------------------------------------------------


def test_timed_out_before_times_out_at_raises() -> None:
    task = claimed_by_a()
    assert task.last_claimed is not None
    with pytest.raises(NotClaimed):
        task.timed_out(task.last_claimed.times_out_at - timedelta(microseconds=1), BACKOFF)
    with pytest.raises(NotClaimed):
        task.timed_out(at(10), BACKOFF)


def test_timed_out_after_a_report_counts_from_the_report() -> None:
    task = claimed_by_a().reported(A, None, at(600))
    with pytest.raises(NotClaimed):
        task.timed_out(at(10) + TIMEOUT, BACKOFF)
    assert task.timed_out(at(600) + TIMEOUT, BACKOFF).state is TaskState.FAILED


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_timed_out_is_a_failed_attempt(late: timedelta) -> None:
    task = claimed_by_a()
    deadline = at(10) + TIMEOUT
    now = deadline + late
    out = task.timed_out(now, BACKOFF)
    assert out.state is TaskState.FAILED
    assert out.attempted == 1
    assert out.run_at == now + BACKOFF.delay(1)
    assert out.last_enqueued_at == now
    assert out.metadata.modified_at == now
    assert out.metadata.created_at == T0
    claim = out.last_claimed
    assert claim is not None
    assert claim.worker_id == A
    assert claim.result is not None
    assert claim.result.at == now
    assert claim.result.success is None
    assert claim.result.failure == {
        "reason": "processing timed out",
        "worker_id": A,
        "times_out_at": deadline.isoformat().replace("+00:00", "Z"),
    }


def test_timed_out_on_the_last_attempt_is_dead() -> None:
    task = new_task(retry_times=0).claimed(A, at(10))
    assert task.timed_out(at(10) + TIMEOUT, BACKOFF).state is TaskState.DEAD


# --- unclaimed --------------------------------------------------------------------------------------------


def test_unclaim_returns_to_queued_without_using_an_attempt() -> None:
    task = claimed_by_a()
    out = task.unclaimed(A, at(20))
    assert out.state is TaskState.QUEUED
    assert out.attempted == 0
    assert out.last_claimed is None
    assert out.last_enqueued_at == at(20)
    assert out.run_at == T0
    assert out.metadata.modified_at == at(20)
    assert out.metadata.created_at == T0
    assert out.claimable


def test_unclaim_after_a_failure_keeps_the_earlier_attempt() -> None:
    out = claimed_again().unclaimed(A, at(40))
    assert out.state is TaskState.QUEUED
    assert out.attempted == 1
    assert out.last_claimed is None


def test_unclaim_does_not_bring_death_closer() -> None:
    task = new_task(retry_times=0)
    for i in range(5):
        task = task.claimed(A, at(i * 10)).unclaimed(A, at(i * 10 + 1))
        assert task.attempted == 0
    task = task.claimed(A, at(100))
    assert task.failed(A, None, at(101), BACKOFF).state is TaskState.DEAD


# --- misc ---------------------------------------------------------------------------------------------------


def test_tasks_are_frozen() -> None:
    task = claimed_by_a()
    with pytest.raises(pydantic.ValidationError):
        task.state = TaskState.DONE  # type: ignore[misc]
    assert task.last_claimed is not None
    with pytest.raises(pydantic.ValidationError):
        task.last_claimed.worker_id = B  # type: ignore[misc]


def test_claim_order_key() -> None:
    low_early = new_task(id="a", priority=0, run_at=at(0))
    high_late = new_task(id="b", priority=5, run_at=at(100))
    high_early = new_task(id="c", priority=5, run_at=at(50))
    ordered = sorted([low_early, high_late, high_early], key=claim_order_key)
    assert [t.id for t in ordered] == ["c", "b", "a"]
