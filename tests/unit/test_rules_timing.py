"""Timer arithmetic: durations, date-relative triggers in a time zone, month ends, leap years,
cron schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.rules.domain import timing

SHANGHAI = timing.zone("Asia/Shanghai")
BERLIN = timing.zone("Europe/Berlin")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90s", 90), ("15m", 900), ("72h", 72 * 3600), ("30d", 30 * 86400),
     ("1w", 7 * 86400), ("1d12h", 36 * 3600), (" 2h 30m ", 9000)],
)
def test_durations(value: object, seconds: int) -> None:
    assert timing.parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "3 hours", "-5m", -1, "h", True, None, "1y"])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        timing.parse_duration(value)  # type: ignore[arg-type]


def test_birthday_reminder_three_days_before_at_nine_local_time() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    due = timing.relative_due("1990-05-20", now=now, tz=SHANGHAI, offset_days=-3,
                              at=time(9, 0), yearly=True)
    # 17 May 09:00 in Shanghai (UTC+8) is 01:00 UTC
    assert due == datetime(2026, 5, 17, 1, 0, tzinfo=UTC)


def test_a_birthday_already_past_this_year_is_next_year() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    due = timing.relative_due("1990-05-20", now=now, tz=SHANGHAI, offset_days=-3, yearly=True)
    assert due == datetime(2027, 5, 17, 1, 0, tzinfo=UTC)


def test_the_local_date_decides_near_midnight() -> None:
    # 16 May 20:00 UTC is already 17 May 04:00 in Shanghai: today's 09:00 is still ahead.
    now = datetime(2026, 5, 16, 20, 0, tzinfo=UTC)
    due = timing.relative_due("1990-05-20", now=now, tz=SHANGHAI, offset_days=-3, yearly=True)
    assert due == datetime(2026, 5, 17, 1, 0, tzinfo=UTC)


def test_a_29_february_birthday_falls_on_28_february_in_a_common_year() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    due = timing.relative_due("2000-02-29", now=now, tz=SHANGHAI, yearly=True)
    assert due == datetime(2027, 2, 28, 1, 0, tzinfo=UTC)
    leap = timing.relative_due("2000-02-29", now=datetime(2028, 1, 1, tzinfo=UTC), tz=SHANGHAI,
                               yearly=True)
    assert leap == datetime(2028, 2, 29, 1, 0, tzinfo=UTC)


def test_three_days_before_1_march_crosses_february_by_leap_year() -> None:
    common = timing.relative_due("2027-03-01", now=datetime(2027, 1, 1, tzinfo=UTC),
                                 tz=SHANGHAI, offset_days=-3)
    leap = timing.relative_due("2028-03-01", now=datetime(2028, 1, 1, tzinfo=UTC),
                               tz=SHANGHAI, offset_days=-3)
    assert common is not None and common.date() == date(2027, 2, 26)
    assert leap is not None and leap.date() == date(2028, 2, 27)


@pytest.mark.parametrize(
    ("ends", "expected"),
    [("2026-03-31", date(2026, 2, 28)), ("2028-03-31", date(2028, 2, 29)),
     ("2026-05-31", date(2026, 4, 30)), ("2026-01-31", date(2025, 12, 31))],
)
def test_one_month_before_a_month_end_is_the_previous_month_end(
    ends: str, expected: date
) -> None:
    due = timing.relative_due(ends, now=datetime(2025, 1, 1, tzinfo=UTC), tz=SHANGHAI,
                              offset_months=-1, at=time(12, 0))
    assert due is not None
    assert due.astimezone(SHANGHAI).date() == expected


def test_thirty_days_before_a_contract_ends_and_nothing_once_past() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    due = timing.relative_due("2026-03-31T00:00:00+08:00", now=now, tz=SHANGHAI,
                              offset_days=-30)
    assert due == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert timing.relative_due("2025-12-01", now=now, tz=SHANGHAI, offset_days=-30) is None
    assert timing.relative_due(None, now=now, tz=SHANGHAI) is None
    assert timing.relative_due("not a date", now=now, tz=SHANGHAI) is None


def test_local_time_follows_daylight_saving_in_zones_that_have_it() -> None:
    winter = timing.relative_due("2026-01-15", now=datetime(2026, 1, 1, tzinfo=UTC), tz=BERLIN)
    summer = timing.relative_due("2026-07-15", now=datetime(2026, 1, 1, tzinfo=UTC), tz=BERLIN)
    assert winter == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)


def test_cron_schedules_are_read_in_local_time() -> None:
    after = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
    nxt = timing.next_cron("0 9 * * 1-5", after, SHANGHAI)
    assert nxt == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00 Shanghai
    month_end = timing.next_cron("0 18 L * *", datetime(2026, 2, 1, tzinfo=UTC), SHANGHAI)
    assert month_end.astimezone(SHANGHAI).date() == date(2026, 2, 28)


def test_bad_cron_and_time_of_day_are_refused() -> None:
    assert timing.check_cron("0 9 * * 1-5") is None
    assert timing.check_cron("61 * * * *") is not None
    assert timing.check_cron("every day") is not None
    with pytest.raises(ValueError):
        timing.parse_time_of_day("25:99")
    with pytest.raises(ValueError):
        timing.zone("Mars/Olympus")
