"""Retry delays stay within MAX_DURATION for every accepted policy and attempt count (no overflow later)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tasques.domain.duration import MAX_DURATION
from tasques.domain.limits import MAX_DOUBLINGS, MAX_RETRY_TIMES, MAX_RETRY_WAIT, RUN_AT_MAX
from tasques.domain.retry import RetryMode, RetryPolicy

WAITS = st.timedeltas(min_value=timedelta(microseconds=1), max_value=MAX_RETRY_WAIT)


@given(
    mode=st.sampled_from(RetryMode),
    interval=WAITS,
    low=WAITS,
    high=WAITS,
    doublings=st.integers(0, MAX_DOUBLINGS),
    attempted=st.integers(1, MAX_RETRY_TIMES + 1),
)
def test_every_delay_is_bounded(
    mode: RetryMode, interval: timedelta, low: timedelta, high: timedelta, doublings: int, attempted: int
) -> None:
    policy = RetryPolicy(mode=mode, retry_interval=interval, min_backoff=low, max_backoff=high, max_doublings=doublings)
    delay = policy.delay(attempted)
    assert timedelta(0) < delay <= MAX_DURATION
    # The latest run_at a store may see is still a valid datetime (and below Elasticsearch's 2262).
    assert RUN_AT_MAX + delay < datetime(2262, 1, 1, tzinfo=UTC)


def test_linear_delay_at_the_extremes_is_capped() -> None:
    policy = RetryPolicy(mode=RetryMode.LINEAR, retry_interval=MAX_RETRY_WAIT)
    assert policy.delay(MAX_RETRY_TIMES + 1) == MAX_DURATION
    assert policy.delay(2) == MAX_RETRY_WAIT * 2
