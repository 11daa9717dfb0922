"""Timer arithmetic: durations, dates relative to a field, cron schedules, in a time zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dateutil.relativedelta import relativedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*([smhdw])\s*)+$")
_PART = re.compile(r"(\d+)\s*([smhdw])")


def parse_duration(value: str | int | float) -> timedelta:
    """`90`, `"90s"`, `"15m"`, `"72h"`, `"30d"`, `"1w"`, `"1d12h"` -> timedelta (>= 0)."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str) or not _DURATION.match(value):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 72h, 30d, 1w, 1d12h)")
    return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value)))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_time_of_day(value: str | None) -> time:
    if not value:
        return time(9, 0)
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"not a time of day: {value!r} (use HH:MM)") from None


def parse_date(value: object) -> date | None:
    """A date field of a record: `YYYY-MM-DD` or an ISO datetime (its date); None if absent."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def anniversary(original: date, year: int) -> date:
    """The date in `year` (29 February falls on the 28th in a common year)."""
    try:
        return original.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`at` on `day` in `tz`, as UTC. A wall time skipped by a DST change moves forward."""
    local = datetime.combine(day, at, tzinfo=tz)
    return local.astimezone(UTC)


def relative_due(
    field_value: object,
    *,
    now: datetime,
    tz: ZoneInfo,
    offset_days: int = 0,
    offset_months: int = 0,
    at: time = time(9, 0),
    yearly: bool = False,
) -> datetime | None:
    """When a date-relative trigger fires next (UTC), strictly after `now`; None if never.

    "3 days before a contact's birthday" is `offset_days=-3, yearly=True`; "30 days before a
    contract ends" `offset_days=-30`; "1 month before" `offset_months=-1` (a month end stays a
    month end: 31 March - 1 month = 28/29 February).
    """
    base = parse_date(field_value)
    if base is None:
        return None
    shift = relativedelta(months=offset_months, days=offset_days)
    if not yearly:
        due = local_moment(base + shift, at, tz)
        return due if due > now else None
    local_year = now.astimezone(tz).year
    for year in range(local_year - 1, local_year + 3):
        due = local_moment(anniversary(base, year) + shift, at, tz)
        if due > now:
            return due
    return None


EXACT = "exact"  # a date trigger's `"at": "exact"`: the field holds the instant itself


def parse_instant(value: object) -> datetime | None:
    """An instant field of a record: an ISO timestamp with a time of day (`Z`, an offset, or
    none = UTC), as UTC; None if absent or not an instant (a bare date is not one)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value.strip()) > 10:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def exact_due(
    field_value: object, *, now: datetime, offset_days: int = 0, offset_months: int = 0,
    late_ok: bool = True,
) -> datetime | None:
    """When an `"at": "exact"` trigger fires (UTC): the instant in the field (shifted by the
    offsets); an instant already past fires at once (`now`) when `late_ok`, else never. None
    when the field holds no instant."""
    moment = parse_instant(field_value)
    if moment is None:
        return None
    due = moment + relativedelta(months=offset_months, days=offset_days)
    if due > now:
        return due
    return now if late_ok else None


def check_cron(expression: str) -> str | None:
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        return f"not a valid cron expression: {expression!r} (e.g. '0 9 * * 1-5')"
    return None


def next_cron(expression: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The next time the schedule fires after `after`, read in local time `tz`, as UTC."""
    local = after.astimezone(tz)
    return croniter(expression, local).get_next(datetime).astimezone(UTC)
