"""Sales numbers as pure rules: periods, forecast weighting, conversion, quota attainment,
forecast accuracy, RFM segments and customer health. No database here: the queries
(numbers/queries/) feed these functions with rows they read. The report ranges' limits are
part of the contract (numbers/contract.py) and checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# The report ranges' rules are the contract's (callers build payloads by them); they are
# the rules of the figures too, so they are offered here as well.
from services.sales.numbers.contract import (  # noqa: F401
    EARLIEST_DAY,
    LATEST_DAY,
    MAX_PERIODS,
    MAX_RANGE_DAYS,
    PERIOD_KINDS,
    RangeError,
    check_dates,
    check_period_start,
)

# An open opportunity in a stage at least this likely counts as "commit" in the forecast.
COMMIT_PROBABILITY = 70
CENT = Decimal("0.01")


def money(value: Decimal | int | float | str | None) -> Decimal:
    if value is None:
        return Decimal("0.00")
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# -- periods -------------------------------------------------------------------------------


def period_start(kind: str, day: date) -> date:
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    raise ValueError(f"period kind must be one of {', '.join(PERIOD_KINDS)}")


def next_period_start(kind: str, start: date) -> date:
    months = 1 if kind == "month" else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def period_end(kind: str, start: date) -> date:
    """The last day of the period that starts on `start`."""
    return next_period_start(kind, start) - timedelta(days=1)


def period_label(kind: str, start: date) -> str:
    if kind == "month":
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def periods_between(kind: str, first: date, last: date) -> list[date]:
    """Starts of every period of `kind` that overlaps [first, last]."""
    starts = []
    current = period_start(kind, first)
    while current <= last:
        starts.append(current)
        current = next_period_start(kind, current)
    return starts


# -- report limits -------------------------------------------------------------------------


def check_periods(report: str, kind: str, first: date, last: date) -> list[date]:
    """The period starts of [first, last] when there are at most MAX_PERIODS[report] of them
    (counted without building the list of a huge range); else RangeError naming date_to."""
    check_dates(first, last)
    limit = MAX_PERIODS[report]
    months = (last.year - first.year) * 12 + last.month - first.month
    count = months + 1 if kind == "month" else (
        (last.year * 12 + last.month - 1) // 3 - (first.year * 12 + first.month - 1) // 3 + 1)
    if count > limit:
        hint = " or use period_kind=quarter" if kind == "month" else ""
        raise RangeError("date_to", f"this report has at most {limit} periods of a {kind}; "
                                    f"the range has {count}: narrow it{hint}")
    return periods_between(kind, first, last)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def snapshot_due(last_taken: datetime | None, now: datetime) -> bool:
    """Weekly snapshots: due when none was taken in the ISO week of `now`."""
    return last_taken is None or iso_week(last_taken.date()) != iso_week(now.date())


# -- forecast ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastLine:
    amount: Decimal
    probability: int  # percent, from the stage
    status: str  # open / won / lost


def forecast(lines: Iterable[ForecastLine]) -> dict[str, Decimal | int]:
    """Weighted forecast of one period: open opportunities closing in it weighted by their
    stage's probability, plus what was already won in it. `commit` counts open ones at or
    above COMMIT_PROBABILITY in full; `best_case` counts every open one in full."""
    weighted_open = best_case_open = commit_open = closed_won = Decimal(0)
    open_count = won_count = 0
    for line in lines:
        amount = Decimal(line.amount or 0)
        if line.status == "won":
            closed_won += amount
            won_count += 1
        elif line.status == "open":
            open_count += 1
            weighted_open += amount * line.probability / 100
            best_case_open += amount
            if line.probability >= COMMIT_PROBABILITY:
                commit_open += amount
    return {
        "weighted": money(weighted_open + closed_won),
        "weighted_open": money(weighted_open),
        "commit": money(commit_open + closed_won),
        "best_case": money(best_case_open + closed_won),
        "closed_won": money(closed_won),
        "open_count": open_count,
        "won_count": won_count,
    }


def accuracy(forecast_amount: Decimal, actual: Decimal) -> dict[str, Any]:
    """How close a forecast came: actual / forecast and the absolute error in percent of the
    actual (None when there is nothing to divide by)."""
    forecast_amount, actual = Decimal(forecast_amount), Decimal(actual)
    ratio = (actual / forecast_amount).quantize(Decimal("0.0001")) if forecast_amount else None
    error = (
        (abs(actual - forecast_amount) / actual * 100).quantize(Decimal("0.01"))
        if actual else None
    )
    return {
        "forecast": money(forecast_amount),
        "actual": money(actual),
        "difference": money(actual - forecast_amount),
        "ratio": str(ratio) if ratio is not None else None,
        "error_percent": str(error) if error is not None else None,
    }


# -- funnel --------------------------------------------------------------------------------


def stage_conversion(stages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`stages` in pipeline order, each with `reached` (opportunities that ever entered it):
    adds `conversion_to_next` (reached next / reached this, 4 places) and
    `conversion_from_first`."""
    result = []
    first = stages[0]["reached"] if stages else 0
    open_stages = [s for s in stages if s.get("kind", "open") == "open"]
    for index, stage in enumerate(stages):
        entry = dict(stage)
        following = None
        if stage.get("kind", "open") == "open":
            position = open_stages.index(stage)
            if position + 1 < len(open_stages):
                following = open_stages[position + 1]
            else:  # the last open stage converts into the won stage
                following = next((s for s in stages[index + 1:] if s.get("kind") == "won"), None)
        entry["conversion_to_next"] = (
            _ratio(following["reached"], stage["reached"]) if following is not None else None
        )
        entry["conversion_from_first"] = _ratio(stage["reached"], first)
        result.append(entry)
    return result


def _ratio(part: int, whole: int) -> str | None:
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))) if whole else None


def win_rate(won: int, lost: int) -> str | None:
    return _ratio(won, won + lost)


def attainment(achieved: Decimal, quota: Decimal | None) -> str | None:
    """Achieved / quota in percent, two places; None without a quota."""
    if not quota:
        return None
    return str((Decimal(achieved) / Decimal(quota) * 100).quantize(CENT))


# -- RFM -----------------------------------------------------------------------------------

# Scores 5..1: recency in days since the last won deal (lower is better), frequency in won
# deals over the window, monetary as won amount over the window. Fixed thresholds rather than
# quintiles of the base, so a customer's segment does not move when other customers change.
RECENCY_DAYS = (30, 90, 180, 365)
FREQUENCY_DEALS = (5, 3, 2, 1)
MONETARY_AMOUNTS = (Decimal(1_000_000), Decimal(300_000), Decimal(100_000), Decimal(20_000))
RFM_WINDOW_DAYS = 730


def _score_low_is_good(value: float, limits: Sequence[float]) -> int:
    for index, limit in enumerate(limits):
        if value <= limit:
            return 5 - index
    return 1


def _score_high_is_good(value: Any, limits: Sequence[Any]) -> int:
    for index, limit in enumerate(limits):
        if value >= limit:
            return 5 - index
    return 1


def rfm(last_won_at: date | None, won_count: int, won_amount: Decimal, today: date) -> dict:
    """RFM scores (1-5), a segment and why, from the customer's won deals in the window."""
    if not won_count or last_won_at is None:
        return {
            "segment": "no_purchase", "r": None, "f": 0, "m": 0,
            "recency_days": None, "frequency": 0, "monetary": str(money(0)),
            "explanation": [f"no won deal in the last {RFM_WINDOW_DAYS} days"],
        }
    days = (today - last_won_at).days
    r = _score_low_is_good(days, RECENCY_DAYS)
    f = _score_high_is_good(won_count, FREQUENCY_DEALS)
    m = _score_high_is_good(Decimal(won_amount), MONETARY_AMOUNTS)
    if r >= 4 and f >= 4 and m >= 4:
        segment = "champion"
    elif r >= 4 and won_count == 1:
        segment = "new"
    elif r >= 3 and f >= 3:
        segment = "loyal"
    elif r >= 3 and m >= 4:
        segment = "big_spender"
    elif r >= 3:
        segment = "promising"
    elif f >= 3 or m >= 4:
        segment = "at_risk"
    elif r == 2:
        segment = "hibernating"
    else:
        segment = "lost"
    explanation = [
        f"recency {r}/5: last won deal {days} days ago "
        f"(5 within {RECENCY_DAYS[0]} days, 1 beyond {RECENCY_DAYS[-1]})",
        f"frequency {f}/5: {won_count} won deal(s) in {RFM_WINDOW_DAYS} days "
        f"(5 from {FREQUENCY_DEALS[0]})",
        f"monetary {m}/5: {money(won_amount)} won in {RFM_WINDOW_DAYS} days "
        f"(5 from {MONETARY_AMOUNTS[0]})",
        f"segment {segment}: {SEGMENT_RULES[segment]}",
    ]
    return {
        "segment": segment, "r": r, "f": f, "m": m, "recency_days": days,
        "frequency": won_count, "monetary": str(money(won_amount)), "explanation": explanation,
    }


SEGMENT_RULES = {
    "champion": "recency, frequency and monetary all 4 or 5",
    "new": "recent (4+) with one won deal",
    "loyal": "recency 3+ and frequency 3+",
    "big_spender": "recency 3+ and monetary 4+",
    "promising": "recency 3+",
    "at_risk": "not recent (recency 1-2) but used to buy often or much",
    "hibernating": "recency 2, bought little",
    "lost": "recency 1, bought little",
    "no_purchase": "no won deal",
}


# -- health --------------------------------------------------------------------------------


# (days since the last follow-up at most, points of 30)
RECENCY_POINTS = ((14, 30), (30, 22), (60, 12), (90, 5))


@dataclass(frozen=True)
class HealthInputs:
    days_since_followup: int | None  # None: never followed up
    followups_90d: int
    open_opportunities: int
    open_pipeline: Decimal
    won_365d: int
    lost_365d: int
    overdue_followups: int  # planned next follow-ups already past


def health(inputs: HealthInputs) -> dict[str, Any]:
    """A 0-100 score from five factors, each explained with its points."""
    factors: list[dict[str, Any]] = []

    def add(name: str, points: int, maximum: int, reason: str) -> None:
        factors.append({"factor": name, "points": points, "max": maximum, "reason": reason})

    days = inputs.days_since_followup
    if days is None:
        add("recency", 0, 30, "never followed up")
    else:
        points = next((p for limit, p in RECENCY_POINTS if days <= limit), 0)
        add("recency", points, 30, f"last follow-up {days} days ago")
    engagement = min(inputs.followups_90d, 10) * 2
    add("engagement", engagement, 20,
        f"{inputs.followups_90d} follow-ups in 90 days (2 points each, up to 10)")
    if inputs.open_opportunities:
        pipeline_points = 20 if inputs.open_pipeline >= 100_000 else 15
        add("pipeline", pipeline_points, 20,
            f"{inputs.open_opportunities} open opportunities worth {money(inputs.open_pipeline)}")
    else:
        add("pipeline", 0, 20, "no open opportunity")
    decided = inputs.won_365d + inputs.lost_365d
    if decided:
        win_points = round(20 * inputs.won_365d / decided)
        add("wins", win_points, 20,
            f"{inputs.won_365d} won of {decided} decided in 365 days")
    else:
        add("wins", 10, 20, "no deal decided in 365 days (neutral)")
    discipline = max(0, 10 - 5 * inputs.overdue_followups)
    add("discipline", discipline, 10,
        f"{inputs.overdue_followups} planned follow-ups overdue (-5 each)")
    score = sum(f["points"] for f in factors)
    band = "healthy" if score >= 70 else "watch" if score >= 40 else "at_risk"
    explanation = [f"{f['factor']}: {f['points']}/{f['max']} ({f['reason']})" for f in factors]
    return {"score": score, "band": band, "factors": factors, "explanation": explanation}
