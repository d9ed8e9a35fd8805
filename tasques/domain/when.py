"""When a task may first run, as producers write it: RFC 3339 with an offset, UNIX epoch milliseconds, or a
date with an explicit offset such as `Dec 12 2012 12:12:12 AM +07:00`. Pure: no clock reads.

A time without an offset is refused: it would silently mean the server's time zone. Go's zero time
(`0001-01-01T00:00:00Z`, which the original Go client sends when no time is set) means "now", as the
original server read it. Any other time must lie in [RUN_AT_MIN, RUN_AT_MAX).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from tasques.domain.limits import RUN_AT_MAX, RUN_AT_MIN

# Accepted besides RFC 3339 (strptime formats; %z takes "+07:00" and "+0700").
_TEXT_FORMATS = (
    "%b %d %Y %I:%M:%S %p %z",  # Dec 12 2012 12:12:12 AM +07:00
    "%b %d %Y %H:%M:%S %z",  # Dec 12 2012 23:12:12 +07:00
    "%d %b %Y %H:%M:%S %z",  # 12 Dec 2012 23:12:12 +07:00
    "%a, %d %b %Y %H:%M:%S %z",  # Wed, 12 Dec 2012 23:12:12 +0700 (RFC 2822)
)
_MIN_MS = int(RUN_AT_MIN.timestamp() * 1000)
_MAX_MS = int(RUN_AT_MAX.timestamp() * 1000) - 1
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
# RFC 3339 text is read by pydantic's own (lax) datetime parser, also when the request is validated strictly.
_RFC3339 = TypeAdapter(AwareDatetime)


def is_go_zero_time(value: object) -> bool:
    """Whether `value` is Go's zero `time.Time` as JSON text (with or without fractional seconds)."""
    if not isinstance(value, str) or not value.startswith("0001-01-01T00:00:00"):
        return False
    try:
        return _RFC3339.validate_python(value) == GO_ZERO_TIME
    except ValidationError:
        return False


def check_run_at(value: datetime) -> datetime:
    if not RUN_AT_MIN <= value < RUN_AT_MAX:
        raise ValueError(f"must be from {RUN_AT_MIN:%Y-%m-%d} up to (not including) {RUN_AT_MAX:%Y-%m-%d}, UTC")
    return value


def parse_run_at(value: object) -> object:
    """Epoch milliseconds, RFC 3339 and the text formats above become aware datetimes. Raises ValueError for
    what cannot be right; other types are left for the model's datetime validation to refuse."""
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
        try:
            return _RFC3339.validate_python(text)
        except ValidationError as e:
            raise ValueError(e.errors(include_url=False)[0]["msg"]) from None
    return value
