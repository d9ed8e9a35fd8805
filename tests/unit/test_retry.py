from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasques.domain.retry import BackoffPolicy

DEFAULT = BackoffPolicy()
S = timedelta(seconds=1)


def test_defaults() -> None:
    assert BackoffPolicy(initial=S, multiplier=2.0, max=timedelta(hours=1)) == DEFAULT


@pytest.mark.parametrize(
    ("attempted", "expected"),
    [
        (0, 1 * S),  # never attempted: treated like the first attempt
        (1, 1 * S),
        (2, 2 * S),
        (3, 4 * S),
        (4, 8 * S),
        (5, 16 * S),
        (10, 512 * S),
        (12, 2048 * S),
        (13, timedelta(hours=1)),  # 4096s, capped at 3600s
        (100, timedelta(hours=1)),
        (10_000, timedelta(hours=1)),
        (10**9, timedelta(hours=1)),
    ],
)
def test_default_policy(attempted: int, expected: timedelta) -> None:
    assert DEFAULT.delay(attempted) == expected


@pytest.mark.parametrize(
    ("policy", "attempted", "expected"),
    [
        (BackoffPolicy(initial=10 * S, multiplier=3.0, max=60 * S), 1, 10 * S),
        (BackoffPolicy(initial=10 * S, multiplier=3.0, max=60 * S), 2, 30 * S),
        (BackoffPolicy(initial=10 * S, multiplier=3.0, max=60 * S), 3, 60 * S),
        (BackoffPolicy(initial=10 * S, multiplier=3.0, max=60 * S), 4, 60 * S),
        (BackoffPolicy(initial=timedelta(milliseconds=100), multiplier=2.0, max=S), 4, timedelta(milliseconds=800)),
        (BackoffPolicy(initial=timedelta(milliseconds=100), multiplier=2.0, max=S), 5, S),
        (BackoffPolicy(initial=S, multiplier=1.5, max=timedelta(minutes=5)), 3, timedelta(seconds=2.25)),
        # a cap below the initial delay wins
        (BackoffPolicy(initial=10 * S, multiplier=2.0, max=5 * S), 1, 5 * S),
        (BackoffPolicy(initial=10 * S, multiplier=1.0, max=5 * S), 1, 5 * S),
        # no initial delay: retry at once
        (BackoffPolicy(initial=timedelta(0), multiplier=2.0, max=S), 7, timedelta(0)),
    ],
)
def test_policy_table(policy: BackoffPolicy, attempted: int, expected: timedelta) -> None:
    assert policy.delay(attempted) == expected


@pytest.mark.parametrize("attempted", [0, 1, 2, 3, 50, 10**6, 10**9])
def test_multiplier_one_is_constant(attempted: int) -> None:
    policy = BackoffPolicy(initial=7 * S, multiplier=1.0, max=timedelta(hours=1))
    assert policy.delay(attempted) == 7 * S


@pytest.mark.parametrize("multiplier", [1.0001, 1.5, 2.0, 10.0, 1e6])
@pytest.mark.parametrize("attempted", [10**6, 10**9, 10**18, 2**64])
def test_huge_attempt_counts_return_max(multiplier: float, attempted: int) -> None:
    cap = timedelta(hours=1)
    assert BackoffPolicy(initial=S, multiplier=multiplier, max=cap).delay(attempted) == cap


def test_huge_cap_does_not_overflow() -> None:
    cap = timedelta(days=365 * 1000)
    policy = BackoffPolicy(initial=S, multiplier=2.0, max=cap)
    assert policy.delay(10**9) == cap
    assert policy.delay(30) == timedelta(seconds=2**29)


policies = st.builds(
    BackoffPolicy,
    initial=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2)),
    multiplier=st.floats(min_value=1.0, max_value=100.0, allow_nan=False, allow_infinity=False),
    max=st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=30)),
)
attempts = st.integers(min_value=0, max_value=10**9) | st.integers(min_value=0, max_value=64)


@given(policies, attempts, attempts)
def test_delay_is_monotonic_and_capped(policy: BackoffPolicy, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    d_lo, d_hi = policy.delay(lo), policy.delay(hi)
    assert timedelta(0) <= d_lo <= d_hi <= policy.max


@given(policies, st.integers(min_value=0, max_value=200))
def test_delay_is_monotonic_step_by_step(policy: BackoffPolicy, attempted: int) -> None:
    assert policy.delay(attempted) <= policy.delay(attempted + 1) <= policy.max


@pytest.mark.parametrize("attempted", [0, 1, 2, 10**9])
def test_zero_cap_means_retry_at_once(attempted: int) -> None:
    # The docstring's min(max, initial * multiplier ** (n - 1)) is 0 here; config allows `backoff.max: 0s`.
    policy = BackoffPolicy(initial=S, multiplier=2.0, max=timedelta(0))
    assert policy.delay(attempted) == timedelta(0)
