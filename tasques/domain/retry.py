"""Retry backoff: the delay before a failed task may run again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


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
