"""The service desk's numbers, pure arithmetic: periods in local time, nearest-rank
percentiles, duration buckets and distributions, attainment and rates, age bands."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.service_desk.domain import numbers
from shared.errors import ValidationFailed

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_days_weeks_and_months_are_local_and_cut_to_the_range():
    days = numbers.periods(date(2026, 3, 2), date(2026, 3, 4), "day", SHANGHAI)
    assert [p.key for p in days] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert days[0].start == datetime(2026, 3, 1, 16, tzinfo=UTC)  # local midnight
    assert days[-1].end == datetime(2026, 3, 4, 16, tzinfo=UTC)
    weeks = numbers.periods(date(2026, 3, 4), date(2026, 3, 17), "week", SHANGHAI)
    assert [(p.key, p.first.isoformat(), p.last.isoformat()) for p in weeks] == [
        ("2026-03-02", "2026-03-04", "2026-03-08"), ("2026-03-09", "2026-03-09", "2026-03-15"),
        ("2026-03-16", "2026-03-16", "2026-03-17")]
    months = numbers.periods(date(2025, 12, 15), date(2026, 2, 1), "month", SHANGHAI)
    assert [p.key for p in months] == ["2025-12", "2026-01", "2026-02"]
    assert months[0].first == date(2025, 12, 15) and months[-1].last == date(2026, 2, 1)
    assert numbers.period_named("2026-01", "month", date(2025, 12, 15), date(2026, 2, 1),
                                SHANGHAI).last == date(2026, 1, 31)


def test_bad_ranges_name_their_field():
    with pytest.raises(ValidationFailed) as backwards:
        numbers.periods(date(2026, 3, 2), date(2026, 3, 1), "day", SHANGHAI)
    assert "date_to" in backwards.value.extra["errors"]
    with pytest.raises(ValidationFailed) as many:
        numbers.periods(date(2020, 1, 1), date(2026, 1, 1), "day", SHANGHAI)
    assert "date_to" in many.value.extra["errors"]
    with pytest.raises(ValidationFailed) as interval:
        numbers.periods(date(2026, 1, 1), date(2026, 1, 2), "hour", SHANGHAI)
    assert "interval" in interval.value.extra["errors"]
    with pytest.raises(ValidationFailed) as period:
        numbers.period_named("2026-04", "month", date(2026, 1, 1), date(2026, 2, 1), SHANGHAI)
    assert "period" in period.value.extra["errors"]


def test_nearest_rank_percentiles():
    assert numbers.percentile([], 0.5) is None
    assert numbers.percentile([5], 0.9) == 5
    values = list(range(1, 11))  # 1..10
    assert numbers.percentile(values, 0.5) == 5
    assert numbers.percentile(values, 0.9) == 9
    assert numbers.percentile(list(reversed(values)), 0.91) == 10


def test_a_distribution_counts_every_bucket_in_order():
    result = numbers.distribution([1800, 7200, 60, 100_000])
    assert result["count"] == 4
    assert (result["p50_seconds"], result["p90_seconds"]) == (1800, 100_000)
    assert result["average_seconds"] == round((1800 + 7200 + 60 + 100_000) / 4)
    assert [(b["bucket"], b["count"]) for b in result["buckets"]] == [
        ("0-15m", 1), ("15m-1h", 1), ("1-4h", 1), ("4-8h", 0), ("8-24h", 0), (">24h", 1)]
    empty = numbers.distribution([])
    assert (empty["count"], empty["p50_seconds"], empty["average_seconds"]) == (0, None, None)
    assert numbers.bucket_of(3600) == "1-4h" and numbers.bucket_of(3599) == "15m-1h"
    assert numbers.bucket_bounds(">24h") == (86400, None)
    with pytest.raises(ValidationFailed):
        numbers.bucket_bounds("2h")


def test_attainment_counts_met_over_decided():
    assert numbers.outcome("achieved", False) == "met"
    assert numbers.outcome("achieved", True) == "breached"
    assert numbers.outcome("running", True) == "breached"
    assert numbers.outcome("paused", False) == "open"
    assert numbers.outcome("stopped", False) is None
    assert numbers.outcome("not_started", False) is None
    assert numbers.attainment({"met": 2, "breached": 1, "open": 4}) == {
        "met": 2, "breached": 1, "open": 4, "attainment_percent": "66.67"}
    assert numbers.attainment({"open": 1})["attainment_percent"] is None
    assert numbers.percent(1, 8) == "12.50" and numbers.percent(0, 0) is None


def test_age_bands():
    now = datetime(2026, 3, 10, tzinfo=UTC)
    assert numbers.age_band(now - timedelta(hours=3), now) == "0-1d"
    assert numbers.age_band(now - timedelta(days=1), now) == "1-3d"
    assert numbers.age_band(now - timedelta(days=29), now) == "7-30d"
    assert numbers.age_band(now - timedelta(days=30), now) == ">30d"
