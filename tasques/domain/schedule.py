"""Schedule expressions: 5-field cron, the `@yearly`…`@hourly` macros, and `@every <duration>`.

Slots are deterministic points in time (returned in UTC), so every server computes the same slot for the same
instant, which is what lets a recurring task's enqueued ids be derived from (recurring id, slot).

A cron expression or macro may start with `CRON_TZ=<IANA zone>` or `TZ=<IANA zone>` (as the original Go server,
via robfig/cron, accepts): its fields are then wall-clock times in that zone, otherwise in UTC. Across daylight
saving changes every matching wall-clock time fires exactly once:
- a time that occurs twice (the clock goes back) fires at its first occurrence only;
- a time that does not exist (the clock jumps forward) fires at the first instant after the jump, as ISC cron
  runs it "immediately" (robfig/cron skips it); several such times collapse into that one slot.
`@every` counts from the Unix epoch and ignores wall clocks, so a zone prefix on it is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
_ZONE_PREFIXES = ("CRON_TZ=", "TZ=")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}")
_MAX_ZONE_NAME = 64
_MICROSECOND = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """Not a schedule expression we understand."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    _cron: str | None
    _every: timedelta | None
    _zone: tzinfo = UTC

    def next_after(self, at: datetime) -> datetime:
        """The first slot strictly after `at`."""
        at = at.astimezone(UTC)
        if self._every is not None:
            step = self._every
            elapsed = at - _EPOCH
            return _EPOCH + step * (elapsed // step + 1)
        assert self._cron is not None
        # Wall-clock slots map to instants in order (see _instant), so the first one past `at` is the answer.
        walls = croniter(self._cron, _wall(at, self._zone))
        while True:
            slot = _instant(walls.get_next(datetime), self._zone)
            if slot > at:
                return slot

    def latest_at_or_before(self, at: datetime) -> datetime:
        """The last slot at or before `at`."""
        at = at.astimezone(UTC)
        if self._every is not None:
            step = self._every
            return _EPOCH + step * ((at - _EPOCH) // step)
        assert self._cron is not None
        local = at.astimezone(self._zone)
        start = local.replace(tzinfo=None)
        if local.fold:
            # In the repeated hour (second pass): wall times up to an hour later fired on the first pass.
            start += _fold_shift(local)
        # croniter's get_prev is strict, so step just past the start to include a slot exactly there.
        walls = croniter(self._cron, start + timedelta(microseconds=1))
        while True:
            slot = _instant(walls.get_prev(datetime), self._zone)
            if slot <= at:
                return slot


def _wall(at: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock time of the instant `at` in `zone`."""
    return at.astimezone(zone).replace(tzinfo=None)


def _fold_shift(local: datetime) -> timedelta:
    first = local.replace(fold=0).utcoffset()
    second = local.utcoffset()
    assert first is not None
    assert second is not None
    return max(first - second, timedelta(0))


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant a naive wall-clock slot fires at: its first occurrence, or the end of the gap it
    falls in. Non-decreasing in `wall`, which is what lets the searches above stop at the first hit."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first
    # In a gap: fold=0 reads the wall time with the offset before the jump (an instant after it), fold=1 with
    # the offset after (an instant before it). The jump lies between, on a whole second: find it.
    after = first.astimezone(zone).utcoffset()
    lo = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _split_zone(text: str) -> tuple[tzinfo | None, str]:
    """`CRON_TZ=Europe/Paris 0 9 * * *` -> (Europe/Paris, `0 9 * * *`); no prefix -> (None, text)."""
    prefix = next((p for p in _ZONE_PREFIXES if text.startswith(p)), None)
    if prefix is None:
        return None, text
    name, _, rest = text[len(prefix) :].partition(" ")
    if not name or len(name) > _MAX_ZONE_NAME or not _ZONE_NAME.fullmatch(name):
        raise ScheduleError(f"{prefix} needs an IANA time zone name such as Europe/Paris")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None
    return zone, rest.strip()


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
    zone, text = _split_zone(text)
    if zone is not None and not text:
        raise ScheduleError("a time zone prefix needs a cron expression after it")
    if text.lower().startswith("@every"):
        if zone is not None:
            raise ScheduleError("@every counts from the Unix epoch; a time zone prefix means nothing to it")
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
    return Schedule(expression, cron, None, zone or UTC)
