"""Business calendars: working hours per weekday (with breaks), public holidays and extra working
days (调休 make-up days), in a time zone. Pure Python.

A day is decided in this order: an explicit holiday of the calendar, an explicit working day of
the calendar, then the holiday source. With `holiday_source="cn"` the days come from the
`chinesecalendar` library (module `chinese_calendar`) for the years it knows; for any other year
the calendar must say it has the data (`declared_years`, filled by an editor once the State
Council has published the year's schedule), otherwise every computation touching that year raises
`CalendarYearUnknown` naming it: a calendar never silently computes without its holidays.
With `holiday_source="none"` there are no public holidays beyond the explicit ones.

An extra working day that falls on a weekend uses `extra_day_hours` (default: Monday's hours).
An interval whose end is not after its start ends the next day (22:00-06:00; 00:00-00:00 is a
whole day). Instants in and out are timezone-aware; results are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.service_desk.contract import CalendarYearUnknown
from shared.errors import PreconditionFailed, ValidationFailed

HOLIDAY_SOURCES = ("cn", "none")
DEFAULT_TIME_ZONE = "Asia/Shanghai"
# How far add/next look for working time before declaring the calendar has none.
MAX_SCAN_DAYS = 3 * 366


Interval = tuple[time, time]


def parse_hhmm(text: str) -> time:
    if text == "24:00":
        return time(0, 0)
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_intervals(spec: Iterable[str]) -> tuple[Interval, ...]:
    """'09:00-12:00' strings into (start, end) pairs."""
    out = []
    for item in spec:
        start, end = item.split("-")
        out.append((parse_hhmm(start.strip()), parse_hhmm(end.strip())))
    return tuple(out)


def format_intervals(intervals: Iterable[Interval]) -> list[str]:
    def fmt(t: time, end: bool) -> str:
        return "24:00" if end and t == time(0, 0) else t.strftime("%H:%M")

    return [f"{fmt(s, False)}-{fmt(e, True)}" for s, e in intervals]


@lru_cache(maxsize=1)
def _china() -> tuple[frozenset[int], frozenset[date], frozenset[date]]:
    import chinese_calendar

    holidays = frozenset(chinese_calendar.holidays)
    workdays = frozenset(chinese_calendar.workdays)
    years = frozenset(d.year for d in holidays)
    return years, holidays, workdays


def library_years(source: str) -> frozenset[int]:
    """The years the holiday source knows."""
    return _china()[0] if source == "cn" else frozenset()


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str = DEFAULT_TIME_ZONE
    # weekday (0 = Monday) -> working intervals; a weekday absent is a day off.
    hours: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)
    holiday_source: str = "cn"
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    declared_years: frozenset[int] = frozenset()
    extra_day_hours: tuple[Interval, ...] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            ZoneInfo(self.time_zone)
        except Exception:
            errors["time_zone"] = [f"Unknown time zone {self.time_zone!r}."]
        if self.holiday_source not in HOLIDAY_SOURCES:
            errors["holiday_source"] = [f"Must be one of: {', '.join(HOLIDAY_SOURCES)}."]
        for weekday, intervals in self.hours.items():
            if weekday not in range(7):
                errors["hours"] = [f"Weekday {weekday} is not 0 (Monday) to 6 (Sunday)."]
            if _overlapping(intervals):
                errors["hours"] = [f"The intervals of weekday {weekday} overlap."]
        if self.holidays & self.workdays:
            both = ", ".join(sorted(d.isoformat() for d in self.holidays & self.workdays))
            errors["workdays"] = [f"Both a holiday and a working day: {both}."]
        if errors:
            raise ValidationFailed.for_fields(errors)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    # -- coverage ---------------------------------------------------------------------------

    def known_years(self) -> frozenset[int]:
        return library_years(self.holiday_source) | self.declared_years

    def covers(self, year: int) -> bool:
        return self.holiday_source == "none" or year in self.known_years()

    def coverage(self, today: date) -> dict:
        """What the calendar knows, and whether this year and the next are covered."""
        return {
            "library_years": sorted(library_years(self.holiday_source)),
            "declared_years": sorted(self.declared_years),
            "current_year_covered": self.covers(today.year),
            "next_year_covered": self.covers(today.year + 1),
            "missing_years": [y for y in (today.year, today.year + 1) if not self.covers(y)],
        }

    # -- days -------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return bool(self.day_intervals(day))

    def day_intervals(self, day: date) -> tuple[Interval, ...]:
        """The working intervals (local times) that start on `day`."""
        if day in self.holidays:
            return ()
        weekend_like = not self.hours.get(day.weekday())
        if day in self.workdays:
            return self._extra_hours() if weekend_like else self.hours[day.weekday()]
        if self.holiday_source == "cn":
            years, holidays, workdays = _china()
            if day.year in years:
                if day in holidays:
                    return ()
                if day in workdays and weekend_like:
                    return self._extra_hours()
            elif day.year not in self.declared_years:
                raise CalendarYearUnknown(
                    f"Calendar {self.name or self.time_zone} has no holiday data for {day.year}: "
                    f"add that year's holidays and working days and declare it.",
                    {"year": day.year, "calendar": self.name},
                )
        return self.hours.get(day.weekday(), ())

    def _extra_hours(self) -> tuple[Interval, ...]:
        if self.extra_day_hours is not None:
            return self.extra_day_hours
        for weekday in range(7):
            if self.hours.get(weekday):
                return self.hours[weekday]
        return ()

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """Working intervals starting on local `day`, as UTC instants."""
        zone = self.zone
        out = []
        for start, end in self.day_intervals(day):
            end_day = day if end > start else day + timedelta(days=1)
            out.append(
                (
                    datetime.combine(day, start, tzinfo=zone).astimezone(UTC),
                    datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC),
                )
            )
        return out

    def _local_day(self, instant: datetime) -> date:
        return _aware(instant).astimezone(self.zone).date()

    # -- arithmetic -------------------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant `duration` of working time after `start`."""
        start = _aware(start).astimezone(UTC)
        remaining = duration
        if remaining <= timedelta(0):
            return start
        first = self._local_day(start) - timedelta(days=1)
        for offset in range(MAX_SCAN_DAYS):
            for begin, end in self.intervals_on(first + timedelta(days=offset)):
                if end <= start:
                    continue
                begin = max(begin, start)
                span = end - begin
                if span >= remaining:
                    return begin + remaining
                remaining -= span
        raise PreconditionFailed(
            f"Calendar {self.name} has no working time within {MAX_SCAN_DAYS} days."
        )

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (zero when end is not after start)."""
        start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
        total = timedelta(0)
        if end <= start:
            return total
        day = self._local_day(start) - timedelta(days=1)
        last = self._local_day(end)
        while day <= last:
            for begin, finish in self.intervals_on(day):
                lo, hi = max(begin, start), min(finish, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def next_working_instant(self, instant: datetime) -> datetime:
        """`instant` itself when it is working time, else the start of the next working interval."""
        instant = _aware(instant).astimezone(UTC)
        first = self._local_day(instant) - timedelta(days=1)
        for offset in range(MAX_SCAN_DAYS):
            for begin, end in self.intervals_on(first + timedelta(days=offset)):
                if end > instant:
                    return max(begin, instant)
        raise PreconditionFailed(
            f"Calendar {self.name} has no working time within {MAX_SCAN_DAYS} days."
        )


def _overlapping(intervals: Iterable[Interval]) -> bool:
    spans = []
    for start, end in intervals:
        s = start.hour * 60 + start.minute
        e = end.hour * 60 + end.minute
        if e <= s:
            e += 24 * 60
        spans.append((s, e))
    spans.sort()
    return any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False))


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValidationFailed.for_fields({"at": ["Instants must carry a time zone."]})
    return instant


def calendar_from_dict(data: Mapping) -> BusinessCalendar:
    """A calendar from its stored/RPC form: hours as {"0": ["09:00-12:00", ...]}, dates ISO."""
    return BusinessCalendar(
        name=data.get("name", ""),
        time_zone=data.get("time_zone") or DEFAULT_TIME_ZONE,
        hours={int(k): parse_intervals(v) for k, v in (data.get("hours") or {}).items()},
        holiday_source=data.get("holiday_source", "cn"),
        holidays=frozenset(_as_date(d) for d in data.get("holidays") or ()),
        workdays=frozenset(_as_date(d) for d in data.get("workdays") or ()),
        declared_years=frozenset(int(y) for y in data.get("declared_years") or ()),
        extra_day_hours=(
            parse_intervals(data["extra_day_hours"])
            if data.get("extra_day_hours") is not None
            else None
        ),
    )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


STANDARD_HOURS: dict[str, list[str]] = {str(d): ["09:00-12:00", "13:30-18:00"] for d in range(5)}
