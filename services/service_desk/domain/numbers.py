"""The service desk's numbers, pure arithmetic (no database): the periods of a report in the
organisation's time zone, percentiles and distributions of durations, duration buckets, backlog
age bands, SLA attainment and rates.

Definitions (services/service_desk/README.md, "Numbers", says the same):

- **Periods**: days, ISO weeks (Monday first) or calendar months of local time; the first
  and the last period are cut to [date_from, date_to].
- **Durations** (first reply, resolution) are the SLA clocks' elapsed time at the moment the
  target was achieved: business time on the policy's calendar when the target is a business
  one, minus the target's pause statuses (domain/sla.py measures them; nothing here counts
  calendar time).
- **Percentiles**: nearest rank (the smallest value with at least that fraction of the values
  at or below it); the average is the arithmetic mean, rounded to whole seconds.
- **Attainment** of a target: met / (met + breached), in percent with 2 places (half up);
  `open` (running or paused, not yet breached) is counted apart and not in the rate; no
  decided clock: null.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.errors import ValidationFailed

INTERVALS = ("day", "week", "month")
MAX_PERIODS = 400  # a report's periods at most (volume; 400 days is more than a year)
MAX_BACKLOG_PERIODS = 120  # the backlog counts each period's end on its own
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)
HOUR = 3600
# Business-time buckets of a duration: (name, at least, below; None: no upper bound)
DURATION_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-15m", 0, 15 * 60), ("15m-1h", 15 * 60, HOUR), ("1-4h", HOUR, 4 * HOUR),
    ("4-8h", 4 * HOUR, 8 * HOUR), ("8-24h", 8 * HOUR, 24 * HOUR), (">24h", 24 * HOUR, None))
# Calendar age of an open ticket since its creation: (name, at least, below) in days
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1d", 0, 1), ("1-3d", 1, 3), ("3-7d", 3, 7), ("7-30d", 7, 30), (">30d", 30, None))
OPEN_STATUSES = ("new", "open", "pending", "on_hold")
OUTCOMES = ("met", "breached", "open")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Period:
    key: str  # YYYY-MM-DD of its first day (day, week) or YYYY-MM (month)
    first: date
    last: date  # inclusive
    start: datetime  # UTC, the local start of `first`
    end: datetime  # UTC, the local start of the day after `last` (exclusive)

    def view(self) -> dict[str, str]:
        return {"period": self.key, "first_day": self.first.isoformat(),
                "last_day": self.last.isoformat()}


def check_range(date_from: date, date_to: date) -> None:
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if not EARLIEST_DAY <= value <= LATEST_DAY:
            raise ValidationFailed.for_fields({name: [
                f"between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"]})
    if date_from > date_to:
        raise ValidationFailed.for_fields({"date_to": ["on or after date_from"]})


def local_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, zone).astimezone(UTC)


def _period_start(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next_start(day: date, interval: str) -> date:
    if interval == "week":
        return day + timedelta(days=7)
    if interval == "month":
        return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
    return day + timedelta(days=1)


def period_key(day: date, interval: str) -> str:
    start = _period_start(day, interval)
    return f"{start:%Y-%m}" if interval == "month" else start.isoformat()


def periods(date_from: date, date_to: date, interval: str, zone: ZoneInfo,
            most: int = MAX_PERIODS) -> list[Period]:
    """The periods touching [date_from, date_to] (local days, inclusive), in order, the first
    and last cut to the range."""
    if interval not in INTERVALS:
        raise ValidationFailed.for_fields({"interval": [f"one of {', '.join(INTERVALS)}"]})
    check_range(date_from, date_to)
    out: list[Period] = []
    begin = _period_start(date_from, interval)
    while begin <= date_to:
        following = _next_start(begin, interval)
        first, last = max(begin, date_from), min(following - timedelta(days=1), date_to)
        out.append(Period(period_key(begin, interval), first, last, local_start(first, zone),
                          local_start(last + timedelta(days=1), zone)))
        if len(out) > most:
            raise ValidationFailed.for_fields({"date_to": [
                f"at most {most} periods of a {interval}: a shorter range or a longer "
                f"interval"]})
        begin = following
    return out


def period_named(key: str, interval: str, date_from: date, date_to: date,
                 zone: ZoneInfo) -> Period:
    """The report's period called `key` (as the report names it)."""
    for item in periods(date_from, date_to, interval, zone):
        if item.key == key:
            return item
    raise ValidationFailed.for_fields({"period": [
        "not a period of the report (its `period` values, within date_from..date_to)"]})


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def bucket_of(seconds: float, buckets: Sequence[tuple[str, int, int | None]] = DURATION_BUCKETS
              ) -> str:
    for name, least, below in buckets:
        if seconds >= least and (below is None or seconds < below):
            return name
    return buckets[0][0]  # a negative duration (a clock set back) counts as the shortest


def bucket_bounds(name: str, buckets: Sequence[tuple[str, int, int | None]] = DURATION_BUCKETS,
                  field: str = "bucket") -> tuple[int, int | None]:
    for bucket, least, below in buckets:
        if bucket == name:
            return least, below
    raise ValidationFailed.for_fields({field: [
        f"one of {', '.join(b[0] for b in buckets)}"]})


def distribution(seconds: Iterable[float]) -> dict[str, Any]:
    """count, p50 / p90 / average in whole seconds (null without values), and the count per
    duration bucket (every bucket, in order)."""
    values = [float(s) for s in seconds]
    counts = dict.fromkeys((b[0] for b in DURATION_BUCKETS), 0)
    for value in values:
        counts[bucket_of(value)] += 1

    def whole(value: float | None) -> int | None:
        return None if value is None else int(Decimal(value).quantize(Decimal(1), ROUND_HALF_UP))

    return {"count": len(values),
            "p50_seconds": whole(percentile(values, 0.5)),
            "p90_seconds": whole(percentile(values, 0.9)),
            "average_seconds": whole(sum(values) / len(values)) if values else None,
            "buckets": [{"bucket": name, "count": n} for name, n in counts.items()]}


def percent(part: int, whole: int) -> str | None:
    """part / whole in percent, 2 places half up, as a decimal string; null when whole is 0."""
    if not whole:
        return None
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(CENT, ROUND_HALF_UP))


def outcome(state: str, breached: bool) -> str | None:
    """A target's clock as attainment counts it: breached (whatever its state), met (achieved
    in time), open (running or paused in time); a clock that never started or stopped
    unachieved (the ticket solved without that target) is not counted: None."""
    if breached:
        return "breached"
    if state == "achieved":
        return "met"
    if state in ("running", "paused"):
        return "open"
    return None


def attainment(counts: dict[str, int]) -> dict[str, Any]:
    met, breached = counts.get("met", 0), counts.get("breached", 0)
    return {"met": met, "breached": breached, "open": counts.get("open", 0),
            "attainment_percent": percent(met, met + breached)}


def age_band(created_at: datetime, now: datetime) -> str:
    return bucket_of((now - created_at).total_seconds() / 86400, AGE_BANDS)
