from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasques.domain.schedule import ScheduleError, parse_schedule


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


# 2024-03-15 is a Friday; 2024 is a leap year.
FRI = utc(2024, 3, 15, 9, 2, 30)

# (expression, at, expected next_after(at), expected latest_at_or_before(at))
TABLE: list[tuple[str, datetime, datetime, datetime]] = [
    ("@every 1m", FRI, utc(2024, 3, 15, 9, 3), utc(2024, 3, 15, 9, 2)),
    ("@every 1m", utc(2024, 3, 15, 9, 2), utc(2024, 3, 15, 9, 3), utc(2024, 3, 15, 9, 2)),
    ("@every 1m", utc(2024, 3, 15, 9, 1, 59, 999_999), utc(2024, 3, 15, 9, 2), utc(2024, 3, 15, 9, 1)),
    ("@every 60s", FRI, utc(2024, 3, 15, 9, 3), utc(2024, 3, 15, 9, 2)),
    # @every slots are multiples of the step counted from the Unix epoch, in UTC
    ("@every 90s", FRI, utc(2024, 3, 15, 9, 3), utc(2024, 3, 15, 9, 1, 30)),
    ("@every 90s", utc(2024, 3, 15, 9, 1, 30), utc(2024, 3, 15, 9, 3), utc(2024, 3, 15, 9, 1, 30)),
    ("@every 90s", utc(1970, 1, 1, 0, 0, 45), utc(1970, 1, 1, 0, 1, 30), utc(1970, 1, 1)),
    ("@every 1h30m", FRI, utc(2024, 3, 15, 10, 30), utc(2024, 3, 15, 9)),
    ("@every 1h30m", utc(2024, 3, 15, 10, 30), utc(2024, 3, 15, 12), utc(2024, 3, 15, 10, 30)),
    ("@every 1h30m", utc(2024, 3, 15, 23, 59), utc(2024, 3, 16), utc(2024, 3, 15, 22, 30)),
    ("*/5 * * * *", FRI, utc(2024, 3, 15, 9, 5), utc(2024, 3, 15, 9)),
    ("*/5 * * * *", utc(2024, 3, 15, 9, 5), utc(2024, 3, 15, 9, 10), utc(2024, 3, 15, 9, 5)),
    ("*/5 * * * *", utc(2024, 3, 15, 9, 4, 59, 999_999), utc(2024, 3, 15, 9, 5), utc(2024, 3, 15, 9)),
    ("*/5 * * * *", utc(2024, 3, 15, 9, 5, 0, 1), utc(2024, 3, 15, 9, 10), utc(2024, 3, 15, 9, 5)),
    ("*/5 * * * *", utc(2024, 12, 31, 23, 58), utc(2025, 1, 1), utc(2024, 12, 31, 23, 55)),
    ("0 9 * * 1-5", FRI, utc(2024, 3, 18, 9), utc(2024, 3, 15, 9)),  # Friday -> Monday
    ("0 9 * * 1-5", utc(2024, 3, 16, 12), utc(2024, 3, 18, 9), utc(2024, 3, 15, 9)),  # Saturday
    ("0 9 * * 1-5", utc(2024, 3, 18, 9), utc(2024, 3, 19, 9), utc(2024, 3, 18, 9)),  # Monday, on the slot
    ("0 9 * * 1-5", utc(2024, 3, 14, 8, 59, 59), utc(2024, 3, 14, 9), utc(2024, 3, 13, 9)),  # Thursday
    ("@hourly", FRI, utc(2024, 3, 15, 10), utc(2024, 3, 15, 9)),
    ("@hourly", utc(2024, 3, 15, 10), utc(2024, 3, 15, 11), utc(2024, 3, 15, 10)),
    ("@daily", FRI, utc(2024, 3, 16), utc(2024, 3, 15)),
    ("@daily", utc(2024, 3, 16), utc(2024, 3, 17), utc(2024, 3, 16)),
    ("@daily", utc(2024, 2, 28, 12), utc(2024, 2, 29), utc(2024, 2, 28)),
    ("@midnight", FRI, utc(2024, 3, 16), utc(2024, 3, 15)),
    ("@weekly", FRI, utc(2024, 3, 17), utc(2024, 3, 10)),  # Sundays
    ("@weekly", utc(2024, 3, 17), utc(2024, 3, 24), utc(2024, 3, 17)),
    ("@monthly", FRI, utc(2024, 4, 1), utc(2024, 3, 1)),
    ("@monthly", utc(2024, 2, 29, 12), utc(2024, 3, 1), utc(2024, 2, 1)),
    ("@monthly", utc(2024, 4, 1), utc(2024, 5, 1), utc(2024, 4, 1)),
    ("@yearly", FRI, utc(2025, 1, 1), utc(2024, 1, 1)),
    ("@yearly", utc(2025, 1, 1), utc(2026, 1, 1), utc(2025, 1, 1)),
    ("@yearly", utc(2024, 12, 31, 23, 59, 59, 999_999), utc(2025, 1, 1), utc(2024, 1, 1)),
    ("@annually", FRI, utc(2025, 1, 1), utc(2024, 1, 1)),
    ("@DAILY", FRI, utc(2024, 3, 16), utc(2024, 3, 15)),
    ("  @hourly  ", FRI, utc(2024, 3, 15, 10), utc(2024, 3, 15, 9)),
]


@pytest.mark.parametrize(("expression", "at", "next_after", "latest"), TABLE)
def test_slots(expression: str, at: datetime, next_after: datetime, latest: datetime) -> None:
    schedule = parse_schedule(expression)
    assert schedule.expression == expression
    got_next, got_latest = schedule.next_after(at), schedule.latest_at_or_before(at)
    assert got_next == next_after
    assert got_latest == latest
    assert got_next.utcoffset() == timedelta(0)
    assert got_latest.utcoffset() == timedelta(0)


@pytest.mark.parametrize("expression", sorted({row[0] for row in TABLE}))
def test_a_slot_exactly_at_at(expression: str) -> None:
    schedule = parse_schedule(expression)
    slot = schedule.next_after(FRI)
    assert schedule.latest_at_or_before(slot) == slot  # included
    assert schedule.next_after(slot) > slot  # excluded
    assert schedule.latest_at_or_before(slot - timedelta(microseconds=1)) < slot


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "* * * * * *",  # 6 fields (seconds)
        "0 0 * * * 2024",
        "* * * *",
        "@every",
        "@every ",
        "@every 0s",
        "@every 0",
        "@every 100ms",
        "@every 999ms",
        "@every -1m",
        "@every 1x",
        "@everyday",
        "@fortnightly",
        "@",
        "99 * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "not a schedule",
    ],
)
def test_invalid_expressions(bad: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(bad)


@pytest.mark.parametrize("never", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_expressions_that_never_fire_are_invalid(never: str) -> None:
    # Valid syntax, but no such date: accepting it makes every slot computation raise croniter's own
    # CroniterBadDateError (not a ScheduleError) later, inside the scheduler.
    with pytest.raises(ScheduleError):
        parse_schedule(never)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize("ok", ["@every 1s", "@every 1.5s", "@every 1h", "@every 24h", "0 0 29 2 *", "0-59/15 * * * *"])
def test_valid_edge_expressions(ok: str) -> None:
    schedule = parse_schedule(ok)
    assert schedule.latest_at_or_before(FRI) <= FRI < schedule.next_after(FRI)


EXPRESSIONS = sorted({row[0] for row in TABLE} | {"@every 1s", "@every 7m13s", "0 0 29 2 *", "15,45 3-5 * 1,7 *"})
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)


@settings(max_examples=300)
@given(st.sampled_from(EXPRESSIONS), instants)
def test_slots_bracket_at(expression: str, at: datetime) -> None:
    schedule = parse_schedule(expression)
    latest = schedule.latest_at_or_before(at)
    nxt = schedule.next_after(at)
    assert latest <= at < nxt
    assert schedule.next_after(latest) > at
    # and they are adjacent: no slot lies between them
    assert schedule.next_after(latest) == nxt
    assert schedule.latest_at_or_before(nxt - timedelta(microseconds=1)) == latest
    assert schedule.latest_at_or_before(nxt) == nxt


@settings(max_examples=200)
@given(st.sampled_from(EXPRESSIONS), instants, offsets)
def test_other_timezones_give_the_utc_slots(expression: str, at: datetime, tz: timezone) -> None:
    schedule = parse_schedule(expression)
    local = at.astimezone(tz)
    assert local == at
    assert schedule.next_after(local) == schedule.next_after(at)
    assert schedule.latest_at_or_before(local) == schedule.latest_at_or_before(at)
    assert schedule.next_after(local).utcoffset() == timedelta(0)
    assert schedule.latest_at_or_before(local).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "tz", [timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), timezone(timedelta(hours=14))]
)
@pytest.mark.parametrize("expression", ["@daily", "0 9 * * 1-5", "@every 1h30m", "@monthly"])
def test_cron_fields_are_read_in_utc(tz: timezone, expression: str) -> None:
    # 09:02:30 UTC on Friday, written in another zone: same slots, as UTC.
    schedule = parse_schedule(expression)
    local = FRI.astimezone(tz)
    row = next(r for r in TABLE if r[0] == expression and r[1] == FRI)
    assert schedule.next_after(local) == row[2]
    assert schedule.latest_at_or_before(local) == row[3]
    assert schedule.next_after(local).tzinfo == UTC
