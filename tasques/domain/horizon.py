"""Saturating time arithmetic: no computed time goes past `MAX_TIME`, no computed wait past `MAX_DURATION`.

Input limits keep sane records sane; these helpers keep the computations safe for any record a store holds,
including ones written by older versions before the limits existed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasques.domain.duration import MAX_DURATION

# The latest time Tasques ever computes: well inside what every store holds (Elasticsearch `date_nanos`
# ends in 2262; SQLite keeps 64-bit microseconds).
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def later(at: datetime, delta: timedelta) -> datetime:
    """`at + delta`, saturated at `MAX_TIME` (never an OverflowError)."""
    if delta >= MAX_TIME - at:
        return MAX_TIME
    return at + delta


def times(delta: timedelta, n: int) -> timedelta:
    """`delta * n` for a non-negative wait, saturated at `MAX_DURATION` (never an OverflowError)."""
    if n <= 0 or delta <= timedelta(0):
        return timedelta(0)
    if delta >= MAX_DURATION or n >= MAX_DURATION / delta:
        return MAX_DURATION
    return delta * n
