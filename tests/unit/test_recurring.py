from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.task import Metadata

CREATED = datetime(2024, 3, 15, 12, 0, 30, tzinfo=UTC)  # a Friday
DEFAULT_RETRY = 25
DEFAULT_TIMEOUT = timedelta(minutes=30)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def recurring(
    expression: str = "@every 1m",
    created_at: datetime = CREATED,
    definition: TaskDefinition | None = None,
    rid: str = "repeat-every-minute",
) -> RecurringTask:
    return RecurringTask(
        id=rid,
        schedule_expression=expression,
        task_definition=definition or TaskDefinition(queue="q", kind="sayHello"),
        metadata=Metadata(created_at=created_at, modified_at=created_at),
    )


# --- due_slot -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (CREATED, None),  # the 12:00 slot came before creation
        (utc(2024, 3, 15, 12, 0, 59, 999_999), None),
        (utc(2024, 3, 15, 12, 1), utc(2024, 3, 15, 12, 1)),  # the first slot after created_at
        (utc(2024, 3, 15, 12, 1, 45), utc(2024, 3, 15, 12, 1)),
        (utc(2024, 3, 15, 12, 5, 10), utc(2024, 3, 15, 12, 5)),  # four missed: only the latest
        (utc(2024, 3, 16, 7, 0, 1), utc(2024, 3, 16, 7)),
        (utc(2024, 3, 15, 11, 0), None),  # a clock behind the creation time
    ],
)
def test_due_slot_every_minute(now: datetime, expected: datetime | None) -> None:
    assert recurring().due_slot(now) == expected


def test_a_slot_exactly_at_creation_is_not_due() -> None:
    rt = recurring(created_at=utc(2024, 3, 15, 12))
    assert rt.due_slot(utc(2024, 3, 15, 12)) is None
    assert rt.due_slot(utc(2024, 3, 15, 12, 0, 59)) is None
    assert rt.due_slot(utc(2024, 3, 15, 12, 1)) == utc(2024, 3, 15, 12, 1)


def test_due_slot_cron_over_a_weekend() -> None:
    rt = recurring("0 9 * * 1-5")  # created Friday 12:00:30, after Friday's slot
    assert rt.due_slot(utc(2024, 3, 16, 9)) is None  # Saturday
    assert rt.due_slot(utc(2024, 3, 18, 8, 59)) is None
    assert rt.due_slot(utc(2024, 3, 18, 9)) == utc(2024, 3, 18, 9)
    assert rt.due_slot(utc(2024, 3, 21, 10)) == utc(2024, 3, 21, 9)  # Mon..Thu missed: Thursday's


def test_handled_slots_are_not_due_again() -> None:
    rt = recurring()
    slot = rt.due_slot(utc(2024, 3, 15, 12, 5, 10))
    assert slot == utc(2024, 3, 15, 12, 5)
    handled = rt.handled(slot)
    assert handled.last_slot_at == slot
    assert handled.due_slot(utc(2024, 3, 15, 12, 5, 10)) is None
    assert handled.due_slot(utc(2024, 3, 15, 12, 5, 59, 999_999)) is None
    assert handled.due_slot(utc(2024, 3, 15, 12, 6)) == utc(2024, 3, 15, 12, 6)
    assert handled.due_slot(utc(2024, 3, 15, 13, 0, 5)) == utc(2024, 3, 15, 13)
    assert rt.last_slot_at is None  # frozen: the original is untouched


def test_handled_and_loaded_leave_the_user_metadata_alone() -> None:
    rt = recurring()
    out = rt.handled(utc(2024, 3, 15, 12, 5)).loaded(utc(2024, 3, 15, 12, 6))
    assert out.metadata == rt.metadata
    assert out.loaded_at == utc(2024, 3, 15, 12, 6)
    assert out.last_slot_at == utc(2024, 3, 15, 12, 5)


def test_due_slot_accepts_other_timezones() -> None:
    rt = recurring("@daily")
    now = utc(2024, 3, 16, 0, 30).astimezone(timezone(timedelta(hours=-5)))  # still the 15th locally
    assert rt.due_slot(now) == utc(2024, 3, 16)


@given(
    st.sampled_from(["@every 1m", "@every 90s", "*/5 * * * *", "@hourly", "0 9 * * 1-5"]),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
)
def test_due_slot_property(expression: str, after: timedelta) -> None:
    rt = recurring(expression)
    now = CREATED + after
    slot = rt.due_slot(now)
    if slot is None:
        assert rt.schedule.latest_at_or_before(now) <= CREATED
        return
    assert CREATED < slot <= now
    assert slot == rt.schedule.latest_at_or_before(now)
    assert rt.handled(slot).due_slot(now) is None


# --- task_id_for ----------------------------------------------------------------------------------------------


def test_task_id_for_is_deterministic() -> None:
    rt = recurring()
    slot = utc(2024, 3, 15, 12, 5)
    assert rt.task_id_for(slot) == "repeat-every-minute@2024-03-15T12:05:00.000000Z"
    assert rt.task_id_for(slot) == recurring().task_id_for(slot)
    assert rt.task_id_for(slot.astimezone(timezone(timedelta(hours=9)))) == rt.task_id_for(slot)


def test_task_id_for_depends_on_the_recurring_task() -> None:
    slot = utc(2024, 3, 15, 12, 5)
    assert recurring(rid="a").task_id_for(slot) != recurring(rid="b").task_id_for(slot)


instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(instants, instants)
def test_task_id_for_is_distinct_per_slot(a: datetime, b: datetime) -> None:
    rt = recurring()
    assert (rt.task_id_for(a) == rt.task_id_for(b)) == (a == b)


def test_task_id_for_consecutive_slots() -> None:
    rt = recurring("@every 1s")
    slots = [utc(2024, 3, 15, 12) + timedelta(seconds=i) for i in range(3600)]
    assert len({rt.task_id_for(s) for s in slots}) == len(slots)


# --- new_task -------------------------------------------------------------------------------------------------


def test_new_task_uses_server_defaults_when_the_definition_has_none() -> None:
    rt = recurring(definition=TaskDefinition(queue="q", kind="sayHello"))
    slot = utc(2024, 3, 15, 12, 5)
    new = rt.new_task(slot, DEFAULT_RETRY, DEFAULT_TIMEOUT)
    assert new.id == rt.task_id_for(slot)
    assert new.queue == "q"
    assert new.kind == "sayHello"
    assert new.priority == 0
    assert new.run_at == slot
    assert new.retry_times == DEFAULT_RETRY
    assert new.processing_timeout == DEFAULT_TIMEOUT
    assert new.args is None
    assert new.context is None
    assert new.recurring_task_id == rt.id


def test_new_task_keeps_what_the_definition_sets() -> None:
    definition = TaskDefinition(
        queue="emails",
        kind="send",
        priority=-3,
        retry_times=2,
        processing_timeout="45s",  # Go-style, as on the wire
        args={"to": "a@example.com"},
        context={"tenant": 7},
    )
    rt = recurring(definition=definition)
    new = rt.new_task(utc(2024, 3, 15, 12, 5), DEFAULT_RETRY, DEFAULT_TIMEOUT)
    assert new.queue == "emails"
    assert new.kind == "send"
    assert new.priority == -3
    assert new.retry_times == 2
    assert new.processing_timeout == timedelta(seconds=45)
    assert new.args == {"to": "a@example.com"}
    assert new.context == {"tenant": 7}


@pytest.mark.parametrize(
    ("retry_times", "timeout", "expected_retry", "expected_timeout"),
    [
        (None, None, DEFAULT_RETRY, DEFAULT_TIMEOUT),
        (0, None, 0, DEFAULT_TIMEOUT),  # zero is a choice, not an absence
        (None, timedelta(microseconds=1), DEFAULT_RETRY, timedelta(microseconds=1)),
        (3, timedelta(seconds=5), 3, timedelta(seconds=5)),
    ],
)
def test_new_task_defaults_only_fill_none(
    retry_times: int | None, timeout: timedelta | None, expected_retry: int, expected_timeout: timedelta
) -> None:
    definition = TaskDefinition(queue="q", kind="k", retry_times=retry_times, processing_timeout=timeout)
    new = recurring(definition=definition).new_task(utc(2024, 3, 15, 12, 5), DEFAULT_RETRY, DEFAULT_TIMEOUT)
    assert new.retry_times == expected_retry
    assert new.processing_timeout == expected_timeout


def test_negative_retry_times_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        TaskDefinition(queue="q", kind="k", retry_times=-1)


@pytest.mark.parametrize("timeout", ["0s", "-1s"])
def test_definition_rejects_non_positive_processing_timeout(timeout: str) -> None:
    with pytest.raises(ValidationError, match="processing_timeout"):
        TaskDefinition.model_validate({"queue": "q", "kind": "k", "processing_timeout": timeout})


# --- due_slots: catch-up of recently missed slots ---------------------------------------------------------------

SINCE = utc(2024, 3, 15, 12, 0, 0)
WINDOW = timedelta(minutes=5)


def secs(*offsets: int) -> list[datetime]:
    return [SINCE + timedelta(seconds=o) for o in offsets]


@pytest.mark.parametrize(
    ("expression", "now", "window", "max_slots", "expected"),
    [
        ("@every 1s", SINCE, WINDOW, 100, []),  # the slot at `since` was handled
        ("@every 1s", SINCE + timedelta(milliseconds=999), WINDOW, 100, []),
        ("@every 1s", SINCE + timedelta(seconds=1), WINDOW, 100, secs(1)),  # on time
        ("@every 1s", SINCE + timedelta(seconds=3, milliseconds=500), WINDOW, 100, secs(1, 2, 3)),  # late 2.5s
        ("@every 1s", SINCE + timedelta(seconds=3), WINDOW, 2, secs(2, 3)),  # more than max: the newest
        ("@every 1s", SINCE + timedelta(seconds=300), WINDOW, 1000, secs(*range(1, 301))),  # all within
        ("@every 1s", SINCE + timedelta(seconds=302), WINDOW, 1000, secs(302)),  # oldest beyond: collapse
        ("@every 1s", SINCE + timedelta(seconds=3), timedelta(0), 100, secs(3)),  # no window: as cron
        ("@every 1m", SINCE + timedelta(minutes=4, seconds=30), WINDOW, 100, secs(60, 120, 180, 240)),
        ("@every 1m", SINCE + timedelta(minutes=10), WINDOW, 100, secs(600)),  # a long outage
        ("*/2 * * * *", SINCE + timedelta(minutes=5), WINDOW, 100, secs(120, 240)),
        ("@hourly", SINCE + timedelta(hours=3), WINDOW, 100, secs(3 * 3600)),
        ("@every 1s", SINCE - timedelta(hours=1), WINDOW, 100, []),  # a clock behind `since`
    ],
)
def test_due_slots(expression: str, now: datetime, window: timedelta, max_slots: int, expected: list[datetime]) -> None:
    rt = recurring(expression).handled(SINCE)
    assert rt.due_slots(now, window, max_slots) == expected


def test_due_slots_with_no_window_is_due_slot() -> None:
    rt = recurring()
    for minutes in (0, 1, 5, 60):
        now = CREATED + timedelta(minutes=minutes, seconds=7)
        slot = rt.due_slot(now)
        assert rt.due_slots(now, timedelta(0), 100) == ([] if slot is None else [slot])


@given(
    st.sampled_from(["@every 1s", "@every 7s", "@every 1m", "*/5 * * * *", "@hourly", "0 9 * * 1-5"]),
    st.timedeltas(min_value=-timedelta(hours=1), max_value=timedelta(days=3)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2)),
    st.integers(min_value=1, max_value=50),
)
def test_due_slots_property(expression: str, after: timedelta, window: timedelta, max_slots: int) -> None:
    rt = recurring(expression).handled(SINCE)
    now = SINCE + after
    slots = rt.due_slots(now, window, max_slots)
    schedule = rt.schedule
    latest = schedule.latest_at_or_before(now)
    if latest <= SINCE:
        assert slots == []
        return
    # Never empty when something is due, and the latest slot is always among them.
    assert slots
    assert slots[-1] == latest
    assert len(slots) <= max_slots
    assert slots == sorted(set(slots))
    assert all(SINCE < s <= now for s in slots)
    first_missed = schedule.next_after(SINCE)
    if first_missed < now - window:
        assert slots == [latest]  # a gap longer than the window collapses
    else:
        # Consecutive slots of the schedule, none skipped, ending at the latest.
        for earlier, later_slot in itertools.pairwise(slots):
            assert schedule.next_after(earlier) == later_slot
        if len(slots) < max_slots:
            assert slots[0] == first_missed  # every missed slot, each once
    # Handling the last one leaves nothing due at the same instant.
    assert rt.handled(slots[-1]).due_slots(now, window, max_slots) == []
