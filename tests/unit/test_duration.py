from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasques.domain.duration import MAX_DURATION, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("500ms", timedelta(milliseconds=500)),
        ("-2s", timedelta(seconds=-2)),
        ("0", timedelta(0)),
        ("1h0m0s", timedelta(hours=1)),
        ("250us", timedelta(microseconds=250)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "1", "1x", "m", "1h 2m", "h1"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(minutes=30), "30m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-3), "-3s"),
    ],
)
def test_format_like_go(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@given(st.timedeltas(min_value=timedelta(days=-1000), max_value=timedelta(days=1000)))
def test_round_trip(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("huge", ["9999999999999999h", "80000000h", "-9999999999999999h", "1" * 65 + "s"])
def test_parse_refuses_beyond_the_maximum(huge: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(huge)


def test_the_maximum_itself_parses() -> None:
    assert parse_duration("87600h") == MAX_DURATION
