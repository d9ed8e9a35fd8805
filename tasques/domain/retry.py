"""Retry backoff: the delay before a failed task may run again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.duration import PositiveDuration
from tasques.domain.horizon import later, times


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

    retry_times: int | None = Field(None, ge=0, le=1_000_000, description="retries after the first attempt")
    mode: RetryMode = Field(RetryMode.DOUBLING, description="linear or doubling")
    retry_interval: PositiveDuration = Field(
        timedelta(seconds=10),
        description="linear mode: interval times the attempt number",
        json_schema_extra={"default": "10s"},
    )
    min_backoff: PositiveDuration = Field(
        timedelta(seconds=1), description="doubling mode: the first wait", json_schema_extra={"default": "1s"}
    )
    max_backoff: PositiveDuration = Field(
        timedelta(hours=1), description="doubling mode: the longest wait", json_schema_extra={"default": "1h0m0s"}
    )
    max_doublings: int = Field(16, ge=0, le=64, description="doubling mode: how many times the wait doubles")
    max_retry_duration: PositiveDuration | None = Field(
        None, description="no retry once this long has passed since the first attempt"
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
