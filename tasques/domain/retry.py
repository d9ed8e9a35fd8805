"""Retry backoff: the delay before a failed task may run again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.horizon import later, times
from tasques.domain.limits import (
    MAX_DOUBLINGS,
    MAX_RETRY_DURATION,
    MAX_RETRY_TIMES,
    MAX_RETRY_WAIT,
    RetryDuration,
    RetryWait,
    at_most,
)


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff: after the n-th attempt fails, wait `min(max, initial * multiplier ** (n - 1))`."""

    initial: timedelta = timedelta(seconds=1)
    multiplier: float = 2.0
    max: timedelta = timedelta(hours=1)

    def delay(self, attempted: int) -> timedelta:
        exponent = max(0, attempted - 1)
        initial, cap = self.initial.total_seconds(), self.max.total_seconds()
        if initial <= 0 or cap <= 0:
            return timedelta(0)
        # Decide in log space so a huge attempt count cannot overflow the float.
        if self.multiplier > 1 and exponent * math.log(self.multiplier) >= math.log(cap / initial):
            return self.max
        return timedelta(seconds=min(cap, initial * self.multiplier**exponent))


class RetryMode(StrEnum):
    LINEAR = "linear"
    DOUBLING = "doubling"


class RetryPolicy(BaseModel):
    """A task's (or a queue's default) retry policy, Cloud Tasks style. Pure: the time is always passed in.

    - `linear`: the n-th failed attempt waits `retry_interval * n`.
    - `doubling`: the wait starts at `min_backoff`, doubles `max_doublings` times, then grows linearly by
      `min_backoff * 2 ** max_doublings` per attempt, never above `max_backoff` (Cloud Tasks' semantics).
    - `max_retry_duration`: once `first attempt + max_retry_duration` has passed, a failed attempt is final.
    - `retry_times`: retries after the first attempt (so `0` is one attempt); absent means the task's own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry_times: int | None = Field(
        None, ge=0, le=MAX_RETRY_TIMES, description=f"retries after the first attempt; at most {MAX_RETRY_TIMES:,}"
    )
    mode: RetryMode = Field(RetryMode.DOUBLING, description="linear or doubling")
    retry_interval: RetryWait = Field(
        timedelta(seconds=10),
        description=f"linear mode: interval times the attempt number; {at_most(MAX_RETRY_WAIT)}",
        json_schema_extra={"default": "10s"},
    )
    min_backoff: RetryWait = Field(
        timedelta(seconds=1),
        description=f"doubling mode: the first wait; {at_most(MAX_RETRY_WAIT)}",
        json_schema_extra={"default": "1s"},
    )
    max_backoff: RetryWait = Field(
        timedelta(hours=1),
        description=f"doubling mode: the longest wait; {at_most(MAX_RETRY_WAIT)}",
        json_schema_extra={"default": "1h0m0s"},
    )
    max_doublings: int = Field(16, ge=0, le=MAX_DOUBLINGS, description="doubling mode: how many times the wait doubles")
    max_retry_duration: RetryDuration | None = Field(
        None,
        description=f"no retry once this long has passed since the first attempt; {at_most(MAX_RETRY_DURATION)}",
    )

    def delay(self, attempted: int) -> timedelta:
        """The wait after the `attempted`-th attempt failed (1-based)."""
        n = max(1, attempted)
        if self.mode is RetryMode.LINEAR:
            return times(self.retry_interval, n)
        k = n - 1
        doublings = min(k, self.max_doublings)
        if doublings * math.log(2) >= math.log(self.max_backoff / self.min_backoff):
            return self.max_backoff
        step = self.min_backoff * (1 << doublings)
        wait = times(step, 1 + k - doublings)
        return min(wait, self.max_backoff)

    def gives_up(self, attempted: int, retry_times: int, first_attempt_at: datetime | None, now: datetime) -> bool:
        """Whether the failure of attempt `attempted` at `now` is final."""
        allowed = self.retry_times if self.retry_times is not None else retry_times
        if attempted > allowed:
            return True
        return (
            self.max_retry_duration is not None
            and first_attempt_at is not None
            and now >= later(first_attempt_at, self.max_retry_duration)
        )
