"""Schedule expressions: 5-field cron, the `@yearly`…`@hourly` macros, and `@every <duration>`.

Slots are deterministic points in UTC time, so every server computes the same slot for the same instant,
which is what lets a recurring task's enqueued ids be derived from (recurring id, slot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from tasques.domain.duration import DurationError, parse_duration

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """Not a schedule expression we understand."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    _cron: str | None
    _every: timedelta | None

    def next_after(self, at: datetime) -> datetime:
        """The first slot strictly after `at`."""
        at = at.astimezone(UTC)
        if self._every is not None:
            step = self._every
            elapsed = at - _EPOCH
            return _EPOCH + step * (elapsed // step + 1)
        assert self._cron is not None
        nxt: datetime = croniter(self._cron, at).get_next(datetime)
        return nxt.astimezone(UTC)

    def latest_at_or_before(self, at: datetime) -> datetime:
        """The last slot at or before `at`."""
        at = at.astimezone(UTC)
        if self._every is not None:
            step = self._every
            return _EPOCH + step * ((at - _EPOCH) // step)
        assert self._cron is not None
        # croniter's get_prev is strict, so step just past `at` to include a slot exactly at `at`.
        prev: datetime = croniter(self._cron, at + timedelta(microseconds=1)).get_prev(datetime)
        return prev.astimezone(UTC)


def due_slots(schedule: Schedule, since: datetime, now: datetime, window: timedelta, max_slots: int) -> list[datetime]:
    """The slots in `(since, now]` to enqueue, oldest first.

    When every one of them is within the catch-up `window` before `now` (a pass that ran late, a short
    failover), each is enqueued: the newest `max_slots` of them if there are more. When the oldest is older
    than the window (a long outage), they collapse into the latest one, as cron does. Never more than
    `max_slots` (at least one), and never walks more slots than it returns.
    """
    latest = schedule.latest_at_or_before(now)
    if latest <= since:
        return []
    if schedule.next_after(since) < now - window:
        return [latest]
    slots = [latest]
    while len(slots) < max(1, max_slots):
        previous = schedule.latest_at_or_before(slots[-1] - _MICROSECOND)
        if previous <= since:
            break
        slots.append(previous)
    slots.reverse()
    return slots


def parse_schedule(expression: str) -> Schedule:
    text = expression.strip()
    if not text:
        raise ScheduleError("empty schedule expression")
    if text.lower().startswith("@every"):
        rest = text[len("@every") :].strip()
        try:
            every = parse_duration(rest)
        except DurationError as e:
            raise ScheduleError(f"@every needs a duration such as `1m` or `30s`: {e}") from e
        if every < timedelta(seconds=1):
            raise ScheduleError("@every needs a duration of at least 1s")
        return Schedule(expression, None, every)
    cron = _MACROS.get(text.lower(), text)
    if cron.startswith("@"):
        raise ScheduleError(f"unknown macro {text!r}; known: {', '.join(sorted(_MACROS))}, @every <duration>")
    if len(cron.split()) != 5:
        raise ScheduleError("a cron expression has 5 fields: minute hour day-of-month month day-of-week")
    if not croniter.is_valid(cron):
        raise ScheduleError(f"invalid cron expression {text!r}")
    try:
        croniter(cron, _EPOCH).get_next(datetime)
    except CroniterBadDateError as e:
        raise ScheduleError(f"{text!r} never fires (e.g. the 30th of February)") from e
    return Schedule(expression, cron, None)
