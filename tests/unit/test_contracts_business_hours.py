"""Approval escalation deadlines in business hours (Mon-Fri 09:00-18:00 Asia/Shanghai, Chinese
public holidays skipped, make-up working days counted): issue 16, "a step not decided within N
business hours is escalated"."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.contracts.domain.business_hours import add_business_hours, is_business_day

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_within_one_day():
    assert add_business_hours(local(2026, 12, 1, 10, 0), 4, SHANGHAI) == \
        local(2026, 12, 1, 14, 0).astimezone(UTC)


def test_the_weekend_does_not_count():
    # Friday 2026-12-04 16:00 + 4 h: 2 h on Friday, 2 h on Monday 2026-12-07
    assert add_business_hours(local(2026, 12, 4, 16, 0), 4, SHANGHAI) == \
        local(2026, 12, 7, 11, 0).astimezone(UTC)


def test_a_start_outside_hours_counts_from_the_next_opening():
    assert add_business_hours(local(2026, 12, 5, 23, 0), "1.5", SHANGHAI) == \
        local(2026, 12, 7, 10, 30).astimezone(UTC)
    assert add_business_hours(local(2026, 12, 1, 7, 0), 0, SHANGHAI) == \
        local(2026, 12, 1, 9, 0).astimezone(UTC)


def test_public_holidays_are_skipped():
    # National Day 2026: 1-7 October are days off (Thursday 1st and Friday 2nd, Monday 5th to
    # Wednesday 7th on weekdays); Wednesday 30 September 17:00 + 2 h ends on Thursday 8 October.
    assert not is_business_day(date(2026, 10, 1))
    assert add_business_hours(local(2026, 9, 30, 17, 0), 2, SHANGHAI) == \
        local(2026, 10, 8, 10, 0).astimezone(UTC)


def test_a_make_up_workday_counts():
    # Saturday 10 October 2026 is a make-up working day (调休) after National Day
    assert is_business_day(date(2026, 10, 10))
    assert not is_business_day(date(2026, 10, 11))
    assert add_business_hours(local(2026, 10, 9, 17, 0), 3, SHANGHAI) == \
        local(2026, 10, 10, 11, 0).astimezone(UTC)


def test_nine_hours_is_one_whole_business_day_and_utc_in_out():
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert add_business_hours(start, 9, SHANGHAI) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert add_business_hours(start, 10, SHANGHAI) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def test_bad_input():
    with pytest.raises(ValueError):
        add_business_hours(datetime(2026, 12, 1, 9), 1, SHANGHAI)
    with pytest.raises(ValueError):
        add_business_hours(local(2026, 12, 1, 9), -1, SHANGHAI)
