"""Per-token request rate limits: one token bucket per key, `rate` a second up to `burst`. Pure: the monotonic
time is passed in.

At most `max_keys` buckets are kept, least recently used evicted first; an evicted key comes back with a
full bucket, so the bound must exceed the keys active within `burst / rate` seconds (the default, 100,000,
does for any plausible deployment). Limits are per server: N servers behind a balancer allow up to N times
the rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from tasques.domain.token_bucket import TokenBucket


class RateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str, rate: float, burst: float, now: float) -> float | None:
        """Take one request for `key` at `now`: None when allowed, else the seconds until one would be."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key] = TokenBucket(rate, now, burst)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        if bucket.available(now) >= 1:
            bucket.take(1, now)
            return None
        return bucket.wait_for_one(now)


def retry_after_header(seconds: float) -> str:
    """The Retry-After value for a refusal: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
