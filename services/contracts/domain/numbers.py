"""The contracts' numbers, pure arithmetic (no database): periods, aging buckets, DSO, win
rate, discounts, approval step durations and their percentiles.

Definitions (the README's "Numbers" section says the same):

- **Collection by month**: per calendar month of the period, `planned` = the amounts of the
  instalments due in it (void ones left out), `received` = the receipts received in it.
- **Overdue aging** as of a day D: an instalment is overdue when its due date is before D and
  it is not fully paid (and not void); its outstanding is amount - paid (the payments
  recorded so far: allocations are not dated apart from their receipt). Days overdue = D - due
  date (1 or more); buckets 0-30, 31-60, 61-90 and >90 days.
- **DSO** (days sales outstanding) over a period [from, to] of N days:
  `receivables / billed x N`, where billed = the instalment amounts due in the period and
  receivables = the unpaid part (amount - paid, payments recorded so far) of the instalments
  due on or before `to`. No billing in the period: DSO is null. (Paid amounts are those
  recorded now, as for the aging: a `to` in the past counts later payments as made.)
- **Quote win rate**: accepted / (accepted + rejected + expired) of the quotes created in the
  period (expired as they read: not decided and past their validity); no decided quote: null.
- **Average discount**: the mean of the accepted quotes' `discount_percent` (all discounts
  over the gross of the counted lines, as the approval terms have it).
- **Approval cycle time** of a step: from the moment the step started (the submission for the
  first step, else the answer that finished the step before it) to the answer that decided it;
  per flow step the median and the 90th percentile (nearest rank) in hours.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.errors import ValidationFailed

CENT = Decimal("0.01")
BUCKETS = ("0-30", "31-60", "61-90", ">90")
# Each bucket's (fewest, most) days overdue; None: no upper bound.
BUCKET_DAYS: dict[str, tuple[int, int | None]] = {
    "0-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90), ">90": (91, None)}
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)
MAX_MONTHS = 120  # collection by month: ten years at most
MAX_RANGE_DAYS = 3660
DECIDED = ("accepted", "rejected", "expired")


def money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def check_range(date_from: date, date_to: date) -> None:
    """Both within EARLIEST_DAY..LATEST_DAY, from <= to, at most MAX_RANGE_DAYS apart."""
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if not EARLIEST_DAY <= value <= LATEST_DAY:
            raise ValidationFailed.for_fields({name: [
                f"between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"]})
    if date_from > date_to:
        raise ValidationFailed.for_fields({"date_to": ["on or after date_from"]})
    if (date_to - date_from).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed.for_fields({"date_to": [
            f"a range of at most {MAX_RANGE_DAYS} days"]})


def months(date_from: date, date_to: date) -> list[str]:
    """The months ("YYYY-MM") the period touches, in order."""
    out: list[str] = []
    year, month = date_from.year, date_from.month
    while (year, month) <= (date_to.year, date_to.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if len(out) > MAX_MONTHS:
        raise ValidationFailed.for_fields({"date_to": [f"at most {MAX_MONTHS} months"]})
    return out


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of "YYYY-MM"."""
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except (ValueError, TypeError):
        raise ValidationFailed.for_fields({"month": ["a month, YYYY-MM"]}) from None
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return first, following - timedelta(days=1)


def bucket_of(days_overdue: int) -> str:
    """The aging bucket of an instalment `days_overdue` (>= 1) days past its due date."""
    if days_overdue < 1:
        raise ValueError("not overdue")
    for name, (_, most) in BUCKET_DAYS.items():
        if most is None or days_overdue <= most:
            return name
    raise AssertionError("unreachable")


def bucket_due_range(bucket: str, as_of: date) -> tuple[date | None, date]:
    """The due dates (inclusive) of the instalments in `bucket` as of `as_of`: (earliest or
    None for no bound, latest). A due date d is `as_of - d` days overdue."""
    if bucket not in BUCKET_DAYS:
        raise ValidationFailed.for_fields({"bucket": [f"one of {', '.join(BUCKETS)}"]})
    fewest, most = BUCKET_DAYS[bucket]
    latest = as_of - timedelta(days=fewest)
    earliest = None if most is None else as_of - timedelta(days=most)
    return earliest, latest


def aging(rows: dict[str, tuple[int, Decimal]]) -> dict[str, Any]:
    """Buckets in order, each {bucket, count, outstanding}, and the totals, from the per-bucket
    (count, outstanding) sums; missing buckets are zero."""
    buckets = [{"bucket": name, "count": rows.get(name, (0, Decimal(0)))[0],
                "outstanding": str(money(rows.get(name, (0, Decimal(0)))[1]))}
               for name in BUCKETS]
    return {"buckets": buckets,
            "total": {"count": sum(b["count"] for b in buckets),
                      "outstanding": str(money(sum((Decimal(b["outstanding"])
                                                    for b in buckets), Decimal(0))))}}


def dso(receivables: Decimal, billed: Decimal, days: int) -> Decimal | None:
    """receivables / billed x days, 1 decimal place; None when nothing was billed."""
    if billed <= 0:
        return None
    return (max(receivables, Decimal(0)) / billed * days).quantize(Decimal("0.1"))


def win_rate(accepted: int, rejected: int, expired: int) -> Decimal | None:
    """accepted / (accepted + rejected + expired) in percent, 2 places; None when none."""
    decided = accepted + rejected + expired
    if not decided:
        return None
    return (Decimal(accepted) * 100 / decided).quantize(CENT)


def discount_percent(terms: dict[str, Any]) -> Decimal:
    """All discounts over the gross of the counted (non-optional) lines, in percent, 2 places:
    the `discount_percent` of the quote's approval terms."""
    counted = [line for line in terms.get("lines") or [] if not line.get("optional")]
    gross = sum((Decimal(line["gross"]) for line in counted), Decimal(0))
    if not gross:
        return Decimal("0.00")
    net_total = Decimal(terms["totals"]["net_total"])
    return ((gross - net_total) * 100 / gross).quantize(CENT)


def mean(values: list[Decimal]) -> Decimal | None:
    return (sum(values, Decimal(0)) / len(values)).quantize(CENT) if values else None


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


DECISIONS = ("approve", "reject")
# trail actions that end the pass of the current step (its last answer decided it)
STEP_ENDS = ("approved", "rejected_instance", "returned")


def step_durations(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The decided passes of an approval instance's steps, from its trail: [{step, name,
    started_at, decided_at, seconds}]. A step starts at the submission or when the step before
    it was decided (or the step after it returned to it); it is decided by its last answer
    before the next step's first answer, the instance's end or a return. Passes still open,
    recalled or voided have no decision and are left out."""
    names = {entry["index"]: entry.get("name") for entry in state.get("steps") or []}
    out: list[dict[str, Any]] = []
    started: datetime | None = None
    current: int | None = None
    last: datetime | None = None

    def close() -> None:
        nonlocal current, last, started
        if current is not None and last is not None and started is not None:
            out.append({"step": current, "name": names.get(current),
                        "started_at": started.isoformat(), "decided_at": last.isoformat(),
                        "seconds": max((last - started).total_seconds(), 0.0)})
            started = last
        current, last = None, None

    for item in state.get("trail") or []:
        at = datetime.fromisoformat(item["at"])
        action = item.get("action")
        if action == "submitted":
            started, current, last = at, None, None
        elif action in DECISIONS and item.get("step") is not None:
            if current is not None and item["step"] != current:
                close()
            current, last = item["step"], at
        elif action in STEP_ENDS:
            if action == "returned":
                current = item.get("step", current)
            close()
            started = at
        elif action in ("recalled", "voided"):
            current, last, started = None, None, None
    return out
