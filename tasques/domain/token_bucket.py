"""A token bucket: `rate` tokens a second, holding at most `burst`. Pure: the (monotonic) time is passed in.

The dispatcher paces HTTP targets with it and the API limits each token's requests with it.
"""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, now: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def available(self, now: float) -> int:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        self.available(now)
        self._tokens -= n

    def wait_for_one(self, now: float) -> float:
        """Seconds until a token is available."""
        missing = 1.0 - min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        return max(0.0, missing / self.rate)
