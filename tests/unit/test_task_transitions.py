"""Every transition of `Task`, legal and illegal, with fixed UTC instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from tasques.domain.errors import ClaimMismatch, NotClaimed, NotOwnedByWorker, TasquesError
from tasques.domain.retry import BackoffPolicy
from tasques.domain.task import NewTask, Task, TaskState, claim_order_key

T0 = datetime(2024, 3, 15, 12, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)
BACKOFF = BackoffPolicy(initial=timedelta(seconds=1), multiplier=2.0, max=timedelta(hours=1))
A = "worker-a"
B = "worker-b"
# Claim ids: A's first claim, A's second claim (after a failure), and one no claim ever had.
C1 = "claim-1"
C2 = "claim-2"
STALE = "claim-from-another-attempt"


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
    return new_task().claimed(A, at(10), C1)


def failed() -> Task:
    return claimed_by_a().failed(A, {"err": "boom"}, at(20), BACKOFF)


def claimed_again() -> Task:
    return failed().claimed(A, at(30), C2)


def claimed_before_claim_ids() -> Task:
    """A claim stored by a server that had no claim ids: `claim_id` is absent."""
    task = claimed_by_a()
    assert task.last_claimed is not None
    return task.model_copy(update={"last_claimed": task.last_claimed.model_copy(update={"claim_id": None})})


def done() -> Task:
    return claimed_by_a().done(A, {"ok": True}, at(20))


def dead() -> Task:
    return new_task(retry_times=0).claimed(A, at(10), C1).failed(A, None, at(20), BACKOFF)


def unclaimed() -> Task:
    return claimed_by_a().unclaimed(A, at(20))


def timed_out() -> Task:
    return claimed_by_a().timed_out(at(10) + TIMEOUT, BACKOFF)


STATES: dict[str, tuple[Callable[[], Task], TaskState]] = {
    "queued": (queued, TaskState.QUEUED),
    "claimed": (claimed_by_a, TaskState.CLAIMED),
    "failed": (failed, TaskState.FAILED),
    "claimed_again": (claimed_again, TaskState.CLAIMED),
    "claimed_before_claim_ids": (claimed_before_claim_ids, TaskState.CLAIMED),
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

NEW_CLAIM = "claim-new"


def current(task: Task) -> str | None:
    """The claim id of the task's last claim, as a worker holding it would send it."""
    return task.last_claimed.claim_id if task.last_claimed is not None else None


Op = Callable[[Task], Task]
# Each owner-only operation: by A or B, without a claim id (Go clients), with the last claim's id, or with a
# claim id that is not the last claim's.
_OWNER_OPS: dict[str, Callable[[Task, str, str | None], Task]] = {
    "report": lambda t, w, c: t.reported(w, {"progress": 1}, LATE, c),
    "done": lambda t, w, c: t.done(w, None, LATE, c),
    "fail": lambda t, w, c: t.failed(w, None, LATE, BACKOFF, c),
    "unclaim": lambda t, w, c: t.unclaimed(w, LATE, c),
}


def _owner_op(name: str, worker: str, claim: str) -> Op:
    op = _OWNER_OPS[name]
    if claim == "none":
        return lambda t: op(t, worker, None)
    if claim == "current":
        return lambda t: op(t, worker, current(t))
    return lambda t: op(t, worker, STALE)


OPS: dict[str, Op] = {
    "claim_a": lambda t: t.claimed(A, LATE, NEW_CLAIM),
    "claim_b": lambda t: t.claimed(B, LATE, NEW_CLAIM),
    **{
        f"{name}_{w}{suffix}": _owner_op(name, worker, claim)
        for name in _OWNER_OPS
        for w, worker in (("a", A), ("b", B))
        for suffix, claim in (("", "none"), ("_current_id", "current"), ("_stale_id", "stale"))
    },
    "timeout": lambda t: t.timed_out(LATE, BACKOFF),
}

# state name -> op name -> the error it raises, or the state it leads to.
Outcome = type[TasquesError] | TaskState
_OWNER_OUTCOMES: dict[str, TaskState] = {
    "report": TaskState.CLAIMED,
    "done": TaskState.DONE,
    "fail": TaskState.FAILED,
    "unclaim": TaskState.QUEUED,
}
_CLAIMED_BY_A: dict[str, Outcome] = {
    "claim_a": NotClaimed,
    "claim_b": NotClaimed,
    **{f"{name}_a": state for name, state in _OWNER_OUTCOMES.items()},
    **{f"{name}_a_current_id": state for name, state in _OWNER_OUTCOMES.items()},
    # A claim id that is not the current claim's: a late call from an earlier attempt of the same worker.
    **{f"{name}_a_stale_id": ClaimMismatch for name in _OWNER_OPS},
    # Another worker's call stays 403, whatever claim id it sends.
    **{f"{name}_b{suffix}": NotOwnedByWorker for name in _OWNER_OPS for suffix in ("", "_current_id", "_stale_id")},
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
    # With no claim id stored, any claim id given is not the current claim's; without one A still finishes it.
    "claimed_before_claim_ids": _CLAIMED_BY_A,
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
        if op.startswith("claim_"):
            assert after.last_claimed is not None
            assert after.last_claimed.claim_id == NEW_CLAIM
        else:  # report, done, fail, unclaim and timeout act on the claim and keep it
            assert after.last_claimed is not None
            assert after.last_claimed.claim_id == current(task)
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
    task = new_task().claimed(A, at(10), C1)
    assert task.state is TaskState.CLAIMED
    assert task.attempted == 1
    assert task.last_claimed is not None
    assert task.last_claimed.worker_id == A
    assert task.last_claimed.claim_id == C1
    assert task.last_claimed.claimed_at == at(10)
    assert task.last_claimed.times_out_at == at(10) + TIMEOUT
    assert task.last_claimed.last_report is None
    assert task.last_claimed.result is None
    assert task.metadata.modified_at == at(10)
    assert task.metadata.created_at == T0
    assert not task.claimable
    assert not task.is_claimable_at(LATE)


def test_claim_replaces_the_previous_claim() -> None:
    task = failed().claimed(B, at(30), C2)
    assert task.attempted == 2
    assert task.last_claimed is not None
    assert task.last_claimed.worker_id == B
    assert task.last_claimed.claim_id == C2
    assert task.last_claimed.claimed_at == at(30)
    assert task.last_claimed.times_out_at == at(30) + TIMEOUT
    assert task.last_claimed.result is None
    assert task.last_claimed.last_report is None


def test_claim_uses_the_tasks_own_timeout() -> None:
    task = new_task(processing_timeout=timedelta(seconds=5)).claimed(A, at(10), C1)
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
        task = task.claimed(A, now, f"claim-{attempt}")
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
        task.claimed(A, now + timedelta(days=1), C1)


def test_retry_times_zero_dies_on_first_failure() -> None:
    task = new_task(retry_times=0).claimed(A, at(10), C1).failed(A, {"err": "x"}, at(20), BACKOFF)
    assert task.state is TaskState.DEAD
    assert task.attempted == 1
    assert not task.claimable
    assert task.metadata.modified_at == at(20)


def test_failed_uses_the_given_backoff() -> None:
    backoff = BackoffPolicy(initial=timedelta(seconds=10), multiplier=3.0, max=timedelta(seconds=50))
    task = new_task(retry_times=5)
    task = task.claimed(A, at(0), C1).failed(A, None, at(1), backoff)
    assert task.run_at == at(11)
    task = task.claimed(A, at(20), C1).failed(A, None, at(21), backoff)
    assert task.run_at == at(51)
    task = task.claimed(A, at(60), C1).failed(A, None, at(61), backoff)
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
    task = new_task(retry_times=0).claimed(A, at(10), C1)
    assert task.timed_out(at(10) + TIMEOUT, BACKOFF).state is TaskState.DEAD


# --- unclaimed --------------------------------------------------------------------------------------------


def test_unclaim_returns_to_queued_without_using_an_attempt_and_keeps_last_claimed() -> None:
    task = claimed_by_a().reported(A, {"p": 1}, at(15))
    out = task.unclaimed(A, at(20), C1)
    assert out.state is TaskState.QUEUED
    assert out.attempted == 0
    # As the original Go Tasques does: the claim stays visible (who had it, its last report).
    assert out.last_claimed == task.last_claimed
    assert out.last_enqueued_at == at(20)
    assert out.run_at == T0
    assert out.metadata.modified_at == at(20)
    assert out.metadata.created_at == T0
    assert out.claimable


def test_unclaim_after_a_failure_keeps_the_earlier_attempt() -> None:
    task = claimed_again()
    out = task.unclaimed(A, at(40))
    assert out.state is TaskState.QUEUED
    assert out.attempted == 1
    assert out.last_claimed == task.last_claimed


def test_a_task_unclaimed_and_claimed_again_gets_a_fresh_claim() -> None:
    task = claimed_by_a().unclaimed(A, at(20), C1).claimed(A, at(30), C2)
    assert task.last_claimed is not None
    assert (task.last_claimed.claim_id, task.last_claimed.claimed_at) == (C2, at(30))
    assert task.last_claimed.last_report is None


def test_unclaim_does_not_bring_death_closer() -> None:
    task = new_task(retry_times=0)
    for i in range(5):
        task = task.claimed(A, at(i * 10), f"claim-{i}").unclaimed(A, at(i * 10 + 1), f"claim-{i}")
        assert task.attempted == 0
    task = task.claimed(A, at(100), C1)
    assert task.failed(A, None, at(101), BACKOFF).state is TaskState.DEAD


# --- claim ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(_OWNER_OPS))
def test_a_late_call_from_an_earlier_attempt_of_the_same_worker_is_refused(op: str) -> None:
    # A's first claim timed out and A claimed the task again: the first attempt's call must not act on the second.
    task = claimed_by_a().timed_out(at(10) + TIMEOUT, BACKOFF).claimed(A, LATE - timedelta(seconds=1), C2)
    with pytest.raises(ClaimMismatch) as excinfo:
        _OWNER_OPS[op](task, A, C1)
    assert "claim claim-1 is not its current claim" in str(excinfo.value)
    assert isinstance(excinfo.value, NotClaimed)  # the API answers 409, as for any call on a claim not held
    assert _OWNER_OPS[op](task, A, C2).state is _OWNER_OUTCOMES[op]
    # Without a claim id only the worker id is checked, as the original Tasques does (Go clients send none).
    assert _OWNER_OPS[op](task, A, None).state is _OWNER_OUTCOMES[op]


def test_the_claim_id_survives_reports_and_is_kept_in_the_result() -> None:
    task = claimed_by_a().reported(A, None, at(15), C1).reported(A, {"p": 2}, at(16), C1).done(A, None, at(20), C1)
    assert task.last_claimed is not None
    assert task.last_claimed.claim_id == C1
    assert task.last_claimed.result is not None


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
