"""Business hours for approval escalation deadlines: Monday to Friday 09:00-18:00 in the CRM's
time zone, Chinese public holidays skipped and make-up working days (调休, a Saturday or
Sunday the State Council declares a working day) counted, from the `chinesecalendar` package
(module `chinese_calendar`). Pure Python.

For a year the package does not know (it raises for it), only weekends are days off: an
escalation deadline is a reminder, never a refusal, so it is computed rather than withheld.
The service desk keeps its own, richer business calendars (per-calendar hours and breaks);
this is the one fixed calendar approvals escalate by.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import chinese_calendar

DAY_START = time(9, 0)
DAY_END = time(18, 0)
# How far ahead a deadline is looked for (the longest Chinese holiday is about 9 days).
MAX_SCAN_DAYS = 400


def is_business_day(day: date) -> bool:
    """A working day in China: a weekday that is no public holiday, or a make-up working day."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not know: weekends only
        return day.weekday() < 5


def add_business_hours(start: datetime, hours: Decimal | int | float | str,
                       tz: ZoneInfo) -> datetime:
    """The instant (UTC) `hours` business hours after `start` (timezone-aware). Time outside
    business hours does not count: a start on Friday 17:00 plus 2 hours is Monday 10:00 (the
    next business day's). Zero hours from outside business hours is the next opening."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    left = timedelta(seconds=float(Decimal(str(hours)) * 3600))
    if left < timedelta(0):
        raise ValueError("hours cannot be negative")
    local = start.astimezone(tz)
    day = local.date()
    for _ in range(MAX_SCAN_DAYS):
        if is_business_day(day):
            opens = datetime.combine(day, DAY_START, tzinfo=tz)
            closes = datetime.combine(day, DAY_END, tzinfo=tz)
            begin = max(opens, local)
            if begin < closes:
                available = closes - begin
                if left <= available:
                    return (begin + left).astimezone(UTC)
                left -= available
        day += timedelta(days=1)
        local = datetime.combine(day, time(0, 0), tzinfo=tz)
    raise ValueError(f"no business hours within {MAX_SCAN_DAYS} days of {start.isoformat()}")
