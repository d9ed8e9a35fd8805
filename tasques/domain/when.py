"""When a task may first run, as producers write it: RFC 3339 with an offset, UNIX epoch milliseconds, or a
date with an explicit offset such as `Dec 12 2012 12:12:12 AM +07:00`. Pure: no clock reads.

A time without an offset is refused: it would silently mean the server's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Accepted besides RFC 3339 (strptime formats; %z takes "+07:00" and "+0700").
_TEXT_FORMATS = (
    "%b %d %Y %I:%M:%S %p %z",  # Dec 12 2012 12:12:12 AM +07:00
    "%b %d %Y %H:%M:%S %z",  # Dec 12 2012 23:12:12 +07:00
    "%d %b %Y %H:%M:%S %z",  # 12 Dec 2012 23:12:12 +07:00
    "%a, %d %b %Y %H:%M:%S %z",  # Wed, 12 Dec 2012 23:12:12 +0700 (RFC 2822)
)
# 0001-01-01 .. 9999-12-31 in epoch milliseconds.
_MIN_MS = -62_135_596_800_000
_MAX_MS = 253_402_300_799_999


def parse_run_at(value: object) -> object:
    """Epoch milliseconds and the text formats above become aware datetimes; RFC 3339 text is left for the
    model's datetime validation (which refuses a missing offset). Raises ValueError for what cannot be right."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 time with an offset, or UNIX epoch milliseconds")
    if isinstance(value, int | float):
        if not _MIN_MS <= value <= _MAX_MS:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        text = " ".join(value.split())
        for fmt in _TEXT_FORMATS:
            try:
                return datetime.strptime(text, fmt).astimezone(UTC)
            except ValueError:
                continue
    return value
