"""RetryPolicy: linear and Cloud Tasks doubling schedules, retry limits and max_retry_duration (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasques.domain.http_target import HttpRequest
from tasques.domain.retry import BackoffPolicy, RetryMode, RetryPolicy
from tasques.domain.task import NewTask, Repeat, Task, TaskState

S = timedelta(seconds=1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(mode=RetryMode.LINEAR, retry_interval=5 * S), [5, 10, 15, 20, 25]),
        # Cloud Tasks' example: min 10s, max 300s, 3 doublings: 10, 20, 40, 80, then +80 each, capped at 300.
        (
            RetryPolicy(min_backoff=10 * S, max_backoff=300 * S, max_doublings=3),
            [10, 20, 40, 80, 160, 240, 300, 300],
        ),
        (RetryPolicy(min_backoff=S, max_backoff=10 * S, max_doublings=16), [1, 2, 4, 8, 10, 10]),
        (RetryPolicy(min_backoff=2 * S, max_backoff=100 * S, max_doublings=0), [2, 4, 6, 8]),
    ],
)
def test_delays(policy: RetryPolicy, expected: list[int]) -> None:
    assert [policy.delay(n).total_seconds() for n in range(1, len(expected) + 1)] == expected


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert RetryPolicy(max_doublings=64).delay(10**6) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("policy", "attempted", "since_first", "gives_up"),
    [
        (RetryPolicy(retry_times=2), 2, 0, False),
        (RetryPolicy(retry_times=2), 3, 0, True),
        (RetryPolicy(), 5, 0, False),  # the task's own retry_times (5) applies
        (RetryPolicy(), 6, 0, True),
        (RetryPolicy(max_retry_duration=60 * S), 1, 59, False),
        (RetryPolicy(max_retry_duration=60 * S), 1, 60, True),
    ],
)
def test_gives_up(policy: RetryPolicy, attempted: int, since_first: int, gives_up: bool) -> None:
    assert policy.gives_up(attempted, 5, T0, T0 + since_first * S) is gives_up


def _task(policy: RetryPolicy | None, retry_times: int = 5) -> Task:
    new = NewTask(
        queue="q",
        kind="k",
        id="t",
        run_at=T0,
        retry_times=retry_times,
        processing_timeout=timedelta(minutes=1),
        http_request=HttpRequest(url="http://127.0.0.1/x"),
        retry_policy=policy,
    )
    return Task.create(new, T0)


def test_task_failures_follow_the_policy_with_an_injected_clock() -> None:
    task = _task(RetryPolicy(mode=RetryMode.LINEAR, retry_interval=10 * S, max_retry_duration=45 * S))
    now = T0
    runs = []
    while task.state is not TaskState.DEAD:
        now = max(now, task.run_at)
        task = task.claimed("d", now, "c1").failed("d", None, now, BackoffPolicy())
        runs.append(((now - T0).total_seconds(), task.state.value, (task.run_at - T0).total_seconds()))
    # first attempt at 0; retries wait 10, 20, 30: the attempt at 60 is past 0 + 45s, so it is final.
    assert runs == [(0, "failed", 10), (10, "failed", 30), (30, "failed", 60), (60, "dead", 60)]
    assert task.first_attempted_at == T0


def test_without_a_policy_the_server_backoff_applies() -> None:
    task = _task(None, retry_times=1).claimed("d", T0, "c1").failed("d", None, T0, BackoffPolicy(initial=3 * S))
    assert (task.state, task.run_at) == (TaskState.FAILED, T0 + 3 * S)
    task = task.claimed("d", task.run_at, "c1").failed("d", None, task.run_at, BackoffPolicy())
    assert task.state is TaskState.DEAD


def _repeating(times: int | None) -> Task:
    new = NewTask(
        queue="q",
        kind="k",
        id="r",
        run_at=T0,
        retry_times=0,
        processing_timeout=timedelta(minutes=1),
        repeat=Repeat(interval=10 * S, times=times),
    )
    return Task.create(new, T0)


def test_repeat_runs_again_after_each_success_then_is_done() -> None:
    task = _repeating(2)
    seen = []
    now = T0
    while task.state is not TaskState.DONE:
        now = task.run_at
        task = task.claimed("w", now, "c1").done("w", None, now)
        seen.append((task.state.value, (task.run_at - T0).total_seconds(), task.repeated, task.attempted))
    assert seen == [("queued", 10, 1, 0), ("queued", 20, 2, 0), ("done", 20, 3, 1)]


def test_repeat_forever_until_cancelled_and_failures_do_not_repeat() -> None:
    task = _repeating(None)
    for n in range(50):
        task = task.claimed("w", task.run_at, "c1").done("w", None, task.run_at)
        assert (task.state, task.repeated) == (TaskState.QUEUED, n + 1)
    assert task.cancelled(task.run_at).state is TaskState.CANCELLED
    dead = task.claimed("w", task.run_at, "c1").failed("w", None, task.run_at, BackoffPolicy())
    assert dead.state is TaskState.DEAD  # retry_times 0: a failed run is final, and does not repeat
