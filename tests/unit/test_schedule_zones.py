"""Cron expressions with a `CRON_TZ=` / `TZ=` prefix: wall-clock times in an IANA zone, slots in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from tasques.domain.schedule import ScheduleError, parse_schedule

NY = "America/New_York"  # 2024: springs forward 03-10 02:00 -> 03:00, falls back 11-03 02:00 -> 01:00


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# (expression, at, expected next_after(at), expected latest_at_or_before(at))
TABLE: list[tuple[str, datetime, datetime, datetime]] = [
    # Paris: 09:00 is 08:00 UTC in winter, 07:00 UTC in summer.
    ("CRON_TZ=Europe/Paris 0 9 * * *", utc(2024, 1, 15), utc(2024, 1, 15, 8), utc(2024, 1, 14, 8)),
    ("TZ=Europe/Paris 0 9 * * *", utc(2024, 7, 15), utc(2024, 7, 15, 7), utc(2024, 7, 14, 7)),
    ("TZ=Europe/Paris 0 9 * * *", utc(2024, 3, 30, 9), utc(2024, 3, 31, 7), utc(2024, 3, 30, 8)),
    ("CRON_TZ=Asia/Kolkata 0 9 * * 1-5", utc(2024, 3, 15, 4), utc(2024, 3, 18, 3, 30), utc(2024, 3, 15, 3, 30)),
    ("CRON_TZ=Europe/Paris @daily", utc(2024, 7, 15, 12), utc(2024, 7, 15, 22), utc(2024, 7, 14, 22)),
    ("CRON_TZ=UTC 0 9 * * *", utc(2024, 7, 15), utc(2024, 7, 15, 9), utc(2024, 7, 14, 9)),
    # Spring forward: 02:30 does not exist on 03-10; it fires once, at the jump (03:00 EDT = 07:00 UTC).
    (f"CRON_TZ={NY} 30 2 * * *", utc(2024, 3, 9, 12), utc(2024, 3, 10, 7), utc(2024, 3, 9, 7, 30)),
    (f"CRON_TZ={NY} 30 2 * * *", utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30), utc(2024, 3, 10, 7)),
    # ... and the missing 02:00 and 02:30 of a half-hourly job collapse into that one slot.
    (f"CRON_TZ={NY} */30 * * * *", utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7), utc(2024, 3, 10, 6, 30)),
    (f"CRON_TZ={NY} */30 * * * *", utc(2024, 3, 10, 7), utc(2024, 3, 10, 7, 30), utc(2024, 3, 10, 7)),
    # Fall back: 01:30 happens twice on 11-03; it fires at the first (01:30 EDT = 05:30 UTC) only.
    (f"CRON_TZ={NY} 30 1 * * *", utc(2024, 11, 2, 12), utc(2024, 11, 3, 5, 30), utc(2024, 11, 2, 5, 30)),
    (f"CRON_TZ={NY} 30 1 * * *", utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30), utc(2024, 11, 3, 5, 30)),
    (f"CRON_TZ={NY} 30 1 * * *", utc(2024, 11, 3, 6, 40), utc(2024, 11, 4, 6, 30), utc(2024, 11, 3, 5, 30)),
    # The repeated hour has no slots of its own: 01:30 EDT, then 02:00 EST.
    (f"CRON_TZ={NY} */30 * * * *", utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 7), utc(2024, 11, 3, 5, 30)),
    (f"CRON_TZ={NY} */30 * * * *", utc(2024, 11, 3, 6, 40), utc(2024, 11, 3, 7), utc(2024, 11, 3, 5, 30)),
]


@pytest.mark.parametrize(("expression", "at", "next_after", "latest"), TABLE)
def test_zoned_slots(expression: str, at: datetime, next_after: datetime, latest: datetime) -> None:
    schedule = parse_schedule(expression)
    assert schedule.next_after(at) == next_after
    assert schedule.latest_at_or_before(at) == latest
    assert next_after.tzinfo is UTC
    assert schedule.next_after(at).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "expression", [f"CRON_TZ={NY} 30 2 * * *", f"CRON_TZ={NY} 30 1 * * *", "TZ=Europe/Paris 30 2 * * *"]
)
def test_a_daily_job_fires_once_every_local_day_through_both_changes(expression: str) -> None:
    schedule = parse_schedule(expression)
    zone = ZoneInfo(expression.split()[0].split("=")[1])
    slots = []
    at = utc(2024, 1, 1)
    while at < utc(2025, 1, 1):
        at = schedule.next_after(at)
        slots.append(at)
    days = [slot.astimezone(zone).date() for slot in slots[:-1]]
    assert days == [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("CRON_TZ=Mars/Olympus 0 9 * * *", "unknown time zone"),
        ("TZ=Europe/Pariss 0 9 * * *", "unknown time zone"),
        ("CRON_TZ=../../etc/passwd 0 9 * * *", "IANA"),
        ("CRON_TZ=/etc/localtime 0 9 * * *", "IANA"),
        ("CRON_TZ= 0 9 * * *", "IANA"),
        ("CRON_TZ=Europe/Paris", "needs a cron expression"),
        ("CRON_TZ=Europe/Paris @every 1h", "@every"),
        ("TZ=UTC @every 1m", "@every"),
        (f"CRON_TZ={'A' * 100} 0 9 * * *", "IANA"),
        ("CRON_TZ=Europe/Paris 0 9 * *", "5 fields"),
    ],
)
def test_bad_zone_prefixes_are_refused(bad: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        parse_schedule(bad)


ZONES = ["UTC", NY, "Europe/Paris", "Australia/Lord_Howe", "Australia/Sydney", "Pacific/Chatham", "Asia/Kolkata"]
CRONS = ["*/30 * * * *", "30 2 * * *", "30 1 * * *", "0 * * * *", "15,45 1-3 * * *", "0 9 * * 1-5", "0 0 1 * *"]


def _in_a_gap(slot: datetime, zone: ZoneInfo) -> bool:
    """Whether `slot` is the instant the clock jumped forward (where skipped wall times fire)."""
    return (slot - timedelta(seconds=1)).astimezone(zone).utcoffset() != slot.astimezone(zone).utcoffset()


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_zoned_slots_increase_match_the_expression_and_bracket_at(zone: str, cron: str, at: datetime) -> None:
    schedule = parse_schedule(f"CRON_TZ={zone} {cron}")
    tz = ZoneInfo(zone)
    latest = schedule.latest_at_or_before(at)
    nxt = schedule.next_after(at)
    assert latest <= at < nxt
    assert schedule.next_after(latest) == nxt  # no slot between them
    assert schedule.latest_at_or_before(nxt) == nxt
    slot = latest
    for _ in range(6):
        following = schedule.next_after(slot)
        assert following > slot
        slot = following
        assert croniter.match(cron, slot.astimezone(tz).replace(tzinfo=None)) or _in_a_gap(slot, tz)
