"""Saturating time arithmetic, and the transitions and retry delays that use it: no OverflowError, ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasques.domain.duration import MAX_DURATION
from tasques.domain.horizon import MAX_TIME, later, times
from tasques.domain.limits import MAX_REPEAT_INTERVAL, MAX_RETRY_WAIT
from tasques.domain.retry import BackoffPolicy, RetryMode, RetryPolicy
from tasques.domain.task import GIVEN_UP_BY, Metadata, Repeat, Task, TaskState

AT = datetime(2024, 1, 2, tzinfo=UTC)
HUGE = timedelta(days=999_999_999)


@pytest.mark.parametrize(
    ("at", "delta", "expected"),
    [
        (AT, timedelta(seconds=1), AT + timedelta(seconds=1)),
        (AT, timedelta(0), AT),
        (AT, MAX_TIME - AT, MAX_TIME),
        (AT, MAX_TIME - AT + timedelta(microseconds=1), MAX_TIME),
        (AT, HUGE, MAX_TIME),
        (datetime(9999, 1, 1, tzinfo=UTC), timedelta(days=1), MAX_TIME),  # already past: saturated too
        (AT, -timedelta(days=1), AT - timedelta(days=1)),
    ],
)
def test_later(at: datetime, delta: timedelta, expected: datetime) -> None:
    assert later(at, delta) == expected


@pytest.mark.parametrize(
    ("delta", "n", "expected"),
    [
        (timedelta(seconds=10), 3, timedelta(seconds=30)),
        (timedelta(seconds=10), 0, timedelta(0)),
        (timedelta(0), 10**9, timedelta(0)),
        (timedelta(hours=80_000), 10**6, MAX_DURATION),
        (MAX_DURATION, 1, MAX_DURATION),
        (HUGE, 2, MAX_DURATION),
        (timedelta(days=1), 3650, MAX_DURATION),
        (timedelta(days=1), 3649, timedelta(days=3649)),
    ],
)
def test_times(delta: timedelta, n: int, expected: timedelta) -> None:
    assert times(delta, n) == expected


instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
deltas = st.timedeltas(min_value=timedelta(0), max_value=HUGE)


@given(instants, deltas)
def test_later_never_overflows_and_never_passes_max_time(at: datetime, delta: timedelta) -> None:
    out = later(at, delta)
    if delta < MAX_TIME - at:
        assert out == at + delta
    else:
        assert out == MAX_TIME


@given(deltas, st.integers(min_value=0, max_value=10**30))
def test_times_never_overflows(delta: timedelta, n: int) -> None:
    out = times(delta, n)
    assert timedelta(0) <= out <= MAX_DURATION


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(list(RetryMode)))
def test_retry_delays_saturate(attempted: int, mode: RetryMode) -> None:
    # model_construct: values beyond today's input limits, as an older version may have stored them.
    policy = RetryPolicy.model_construct(
        mode=mode, retry_interval=MAX_DURATION, min_backoff=MAX_DURATION, max_backoff=MAX_DURATION, max_doublings=0
    )
    assert timedelta(0) <= policy.delay(attempted) <= MAX_DURATION
    assert BackoffPolicy(initial=MAX_DURATION, multiplier=1e300, max=MAX_DURATION).delay(attempted) <= MAX_DURATION


def test_linear_delay_for_a_huge_attempt_count_is_capped() -> None:
    # Was `retry_interval * n`: an OverflowError for this policy, failing every reaper pass.
    policy = RetryPolicy.model_construct(mode=RetryMode.LINEAR, retry_interval=timedelta(hours=80_000))
    assert policy.delay(1_000_000) == MAX_DURATION
    doubling = RetryPolicy.model_construct(min_backoff=MAX_DURATION, max_backoff=MAX_DURATION, max_doublings=0)
    assert doubling.delay(1_000_000) == MAX_DURATION


def _task(**fields: object) -> Task:
    base: dict[str, object] = {
        "id": "t",
        "queue": "q",
        "kind": "k",
        "priority": 0,
        "run_at": AT,
        "state": TaskState.QUEUED,
        "retry_times": 1_000_000,
        "attempted": 0,
        "processing_timeout": MAX_DURATION,
        "last_enqueued_at": AT,
        "metadata": Metadata(created_at=AT, modified_at=AT),
    }
    base.update(fields)
    return Task.model_validate(base)


def test_transitions_at_the_end_of_time_saturate() -> None:
    late = datetime(2199, 6, 1, tzinfo=UTC)
    # The largest values the API accepts: each sum or product would pass MAX_TIME (or overflow) unsaturated.
    policy = RetryPolicy(mode=RetryMode.LINEAR, retry_interval=MAX_RETRY_WAIT, max_retry_duration=MAX_DURATION)
    task = _task(retry_policy=policy, repeat=Repeat(interval=MAX_REPEAT_INTERVAL), attempted=500_000)
    claimed = task.claimed("w", late, "c1")
    assert claimed.last_claimed is not None
    assert claimed.last_claimed.times_out_at == MAX_TIME
    reported = claimed.reported("w", None, late)
    assert reported.last_claimed is not None
    assert reported.last_claimed.times_out_at == MAX_TIME
    assert claimed.done("w", None, late).run_at == MAX_TIME
    failed = claimed.failed("w", None, late, BackoffPolicy())
    assert (failed.state, failed.run_at) == (TaskState.FAILED, MAX_TIME)
    # first attempt + max_retry_duration saturates at MAX_TIME too: reached, so the attempt is final.
    assert claimed.timed_out(MAX_TIME, BackoffPolicy()).state is TaskState.DEAD


def test_given_up_is_dead_with_the_reason_and_keeps_the_claim() -> None:
    claimed = _task().claimed("w", AT, "c1")
    dead = claimed.given_up("boom", AT + timedelta(seconds=1))
    assert dead.state is TaskState.DEAD
    assert dead.last_claimed is not None
    assert dead.last_claimed.worker_id == "w"
    assert dead.last_claimed.result is not None
    assert dead.last_claimed.result.failure == {"reason": "boom"}
    assert dead.metadata.modified_at == AT + timedelta(seconds=1)


def test_given_up_without_a_claim_computes_no_time() -> None:
    # Even at the largest datetime there is, nothing is added to `at`.
    at = datetime.max.replace(tzinfo=UTC)
    dead = _task().given_up("boom", at)
    assert dead.state is TaskState.DEAD
    assert dead.last_claimed is not None
    assert dead.last_claimed.worker_id == GIVEN_UP_BY
    assert dead.last_claimed.claimed_at == dead.last_claimed.times_out_at == at
