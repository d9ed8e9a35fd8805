"""Go-style duration strings (`"30m"`, `"1h30m"`, `"1.5s"`), as the original Tasques API speaks them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

_UNIT_MICROS: dict[str, int] = {
    "ns": 0,  # sub-microsecond precision is dropped, as timedelta cannot hold it
    "us": 1,
    "µs": 1,
    "μs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


# No duration anywhere in Tasques may exceed this: `now + MAX_DURATION` must stay a valid datetime in every
# store (Elasticsearch `date_nanos` ends in 2262). Fields document tighter limits of their own.
MAX_DURATION = timedelta(days=3650)
# The grammar `parse_duration` reads, for the schema (lets generated clients and fuzzers write valid values).
DURATION_PATTERN = r"^[+-]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"
# Longer input text than any sane duration is refused before the regex runs over it.
_MAX_TEXT = 64


class DurationError(ValueError):
    """A string that is not a Go-style duration, or one beyond `MAX_DURATION`."""


def parse_duration(text: str, *, saturate: bool = False) -> timedelta:
    """Parse a Go `time.ParseDuration` string such as `"1h30m"` or `"-1.5s"`. With `saturate`, a value beyond
    `MAX_DURATION` becomes `±MAX_DURATION` instead of an error (for values the caller clamps anyway)."""
    s = text.strip()
    if not s:
        raise DurationError("empty duration")
    if len(s) > _MAX_TEXT:
        raise DurationError(f"invalid duration: longer than {_MAX_TEXT} characters")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    micros = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise DurationError(f"invalid duration {text!r}: expected a number and a unit (ns, us, ms, s, m, h)")
        number, unit = m.groups()
        if unit == "ns":
            micros += float(number) / 1_000
        else:
            micros += float(number) * _UNIT_MICROS[unit]
        pos = m.end()
    if micros > MAX_DURATION / timedelta(microseconds=1):
        if saturate:
            return MAX_DURATION * sign
        raise DurationError(f"duration {text!r} is longer than the maximum {format_duration(MAX_DURATION)}")
    return timedelta(microseconds=sign * round(micros))


def format_duration(value: timedelta) -> str:
    """Format like Go's `time.Duration.String()`: `"30m0s"`, `"1h30m0s"`, `"1.5s"`, `"500ms"`, `"0s"`."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        if micros < 1_000:
            return f"{sign}{micros}µs"
        return f"{sign}{_trim(micros, 1_000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim(rest, 1_000_000)}s"


def _trim(amount: int, per_unit: int) -> str:
    whole, frac = divmod(amount, per_unit)
    if not frac:
        return str(whole)
    digits = len(str(per_unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def coerce_duration(value: object, *, saturate: bool = False) -> object:
    """The wire form of a duration: a Go-style string (or a timedelta already); `saturate` as in `parse_duration`."""
    if isinstance(value, str):
        return parse_duration(value, saturate=saturate)
    if isinstance(value, timedelta):
        return value
    # A bare number is ambiguous (Go would read nanoseconds): refuse it rather than guess.
    raise DurationError("must be a Go-style duration string such as 30m or 1h30m")


# A timedelta that reads and writes Go-style strings on the wire.
Duration = Annotated[
    timedelta,
    BeforeValidator(coerce_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A Go-style duration, e.g. `30m`, `1h30m`, `1.5s`",
            "examples": ["30m"],
        }
    ),
]

PositiveDuration = Annotated[Duration, Field(gt=timedelta(0), le=MAX_DURATION)]
