"""The contracts' numbers arithmetic: aging buckets, DSO, win rate, discount, percentiles and
approval step durations from a trail (services/contracts/domain/numbers.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.contracts.domain import numbers as n
from shared.errors import ValidationFailed


@pytest.mark.parametrize(("days", "bucket"), [
    (1, "0-30"), (30, "0-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"), (90, "61-90"),
    (91, ">90"), (4000, ">90")])
def test_buckets_edges(days, bucket):
    assert n.bucket_of(days) == bucket


def test_not_overdue_has_no_bucket():
    with pytest.raises(ValueError):
        n.bucket_of(0)


def test_bucket_due_ranges_agree_with_bucket_of():
    as_of = date(2027, 3, 31)
    for bucket in n.BUCKETS:
        earliest, latest = n.bucket_due_range(bucket, as_of)
        assert n.bucket_of((as_of - latest).days) == bucket
        if earliest is not None:
            assert n.bucket_of((as_of - earliest).days) == bucket
    assert n.bucket_due_range("0-30", as_of) == (date(2027, 3, 1), date(2027, 3, 30))
    assert n.bucket_due_range(">90", as_of) == (None, date(2026, 12, 30))
    with pytest.raises(ValidationFailed) as err:
        n.bucket_due_range("5-10", as_of)
    assert list(err.value.errors) == ["bucket"]


def test_aging_fills_missing_buckets_and_totals():
    result = n.aging({"31-60": (2, Decimal("100.5")), ">90": (1, Decimal("9.495"))})
    assert result["buckets"] == [
        {"bucket": "0-30", "count": 0, "outstanding": "0.00"},
        {"bucket": "31-60", "count": 2, "outstanding": "100.50"},
        {"bucket": "61-90", "count": 0, "outstanding": "0.00"},
        {"bucket": ">90", "count": 1, "outstanding": "9.50"}]
    assert result["total"] == {"count": 3, "outstanding": "110.00"}


def test_dso():
    # 45,000 outstanding on 90,000 billed in a 90-day quarter: 45 days
    assert n.dso(Decimal("45000"), Decimal("90000"), 90) == Decimal("45.0")
    assert n.dso(Decimal("1"), Decimal("3"), 31) == Decimal("10.3")
    assert n.dso(Decimal("-5"), Decimal("100"), 30) == Decimal("0.0")
    assert n.dso(Decimal("5"), Decimal("0"), 30) is None


def test_win_rate():
    assert n.win_rate(1, 1, 1) == Decimal("33.33")
    assert n.win_rate(3, 1, 0) == Decimal("75.00")
    assert n.win_rate(0, 0, 0) is None


def test_discount_percent_counts_only_non_optional_lines():
    terms = {"lines": [{"gross": "1000.00"}, {"gross": "500.00", "optional": True},
                       {"gross": "250.00"}],
             "totals": {"net_total": "1000.00"}}
    assert n.discount_percent(terms) == Decimal("20.00")
    assert n.discount_percent({"lines": [], "totals": {"net_total": "0"}}) == Decimal("0.00")
    assert n.mean([Decimal("10"), Decimal("15.005")]) == Decimal("12.50")
    assert n.mean([]) is None


def test_median_and_nearest_rank_percentile():
    values = [float(v) for v in range(1, 11)]
    assert n.median(values) == 5.5
    assert n.median([3.0, 1.0, 2.0]) == 2.0
    assert n.percentile(values, 0.9) == 9.0
    assert n.percentile([7.0], 0.9) == 7.0
    assert n.median([]) is None and n.percentile([], 0.9) is None


def test_months_and_range_limits():
    assert n.months(date(2026, 11, 15), date(2027, 2, 1)) == [
        "2026-11", "2026-12", "2027-01", "2027-02"]
    assert n.month_bounds("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    with pytest.raises(ValidationFailed) as err:
        n.check_range(date(2027, 2, 1), date(2027, 1, 1))
    assert list(err.value.errors) == ["date_to"]
    with pytest.raises(ValidationFailed) as err:
        n.check_range(date(1800, 1, 1), date(2027, 1, 1))
    assert list(err.value.errors) == ["date_from"]


def _at(hour: int, minute: int = 0) -> str:
    return f"2027-01-04T{hour:02d}:{minute:02d}:00+00:00"


def test_step_durations_sequence_countersign_and_return():
    state = {"steps": [{"index": 0, "name": "经理"}, {"index": 1, "name": "总监"}],
             "trail": [
                 {"at": _at(8), "action": "submitted", "step": None},
                 {"at": _at(9), "action": "approve", "step": 0},   # countersign: two answers
                 {"at": _at(10), "action": "approve", "step": 0},  # step 0 decided at 10:00
                 {"at": _at(11), "action": "delegated", "step": 1},
                 {"at": _at(14), "action": "reject", "step": 1},
                 {"at": _at(14), "action": "returned", "step": 1},  # back to step 0
                 {"at": _at(15, 30), "action": "approve", "step": 0},
                 {"at": _at(16), "action": "approve", "step": 1},
                 {"at": _at(16), "action": "approved", "step": None}]}
    passes = [(p["step"], p["name"], p["seconds"] / 3600) for p in n.step_durations(state)]
    assert passes == [(0, "经理", 2.0), (1, "总监", 4.0), (0, "经理", 1.5), (1, "总监", 0.5)]


def test_step_durations_leave_out_undecided_and_recalled_passes():
    state = {"steps": [{"index": 0, "name": "a"}], "trail": [
        {"at": _at(8), "action": "submitted"}, {"at": _at(9), "action": "recalled"}]}
    assert n.step_durations(state) == []
    pending = {"steps": [{"index": 0, "name": "a"}], "trail": [
        {"at": _at(8), "action": "submitted"}]}
    assert n.step_durations(pending) == []
    rejected = {"steps": [{"index": 0, "name": "a"}], "trail": [
        {"at": _at(8), "action": "submitted"}, {"at": _at(12), "action": "reject", "step": 0},
        {"at": _at(12), "action": "rejected_instance", "step": 0}]}
    assert [p["seconds"] for p in n.step_durations(rejected)] == [4 * 3600.0]
