"""Business-calendar arithmetic: time zones (China and a DST zone), breaks, holidays, make-up
workdays (调休) from the chinesecalendar library, crossing midnight, unknown years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.service_desk.domain.calendar import (
    STANDARD_HOURS,
    CalendarYearUnknown,
    calendar_from_dict,
    library_years,
)
from shared.errors import ValidationFailed

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def china(**extra):
    return calendar_from_dict({"name": "cn", "hours": STANDARD_HOURS, **extra})


def local(cal, instant):
    return instant.astimezone(cal.zone).replace(tzinfo=None)


def test_library_knows_2026_and_not_2027():
    years = library_years("cn")
    assert 2026 in years
    assert 2027 not in years


def test_add_within_a_morning_and_across_the_lunch_break():
    cal = china()
    start = datetime(2026, 12, 1, 9, 0, tzinfo=SH)  # a Tuesday
    assert local(cal, cal.add(start, timedelta(hours=2))) == datetime(2026, 12, 1, 11, 0)
    # 11:00 + 2 h: one hour to 12:00, break to 13:30, one more hour
    later = datetime(2026, 12, 1, 11, 0, tzinfo=SH)
    assert local(cal, cal.add(later, timedelta(hours=2))) == datetime(2026, 12, 1, 14, 30)


def test_start_inside_the_break_or_before_opening():
    cal = china()
    assert local(cal, cal.add(datetime(2026, 12, 1, 12, 30, tzinfo=SH), timedelta(minutes=30))) == (
        datetime(2026, 12, 1, 14, 0)
    )
    assert local(cal, cal.add(datetime(2026, 12, 1, 6, 0, tzinfo=SH), timedelta(hours=1))) == (
        datetime(2026, 12, 1, 10, 0)
    )


def test_crossing_midnight_and_the_weekend():
    cal = china()
    friday_evening = datetime(2026, 12, 4, 17, 0, tzinfo=SH)
    # one hour on Friday, then Monday 09:00 + 1 h
    assert local(cal, cal.add(friday_evening, timedelta(hours=2))) == datetime(2026, 12, 7, 10, 0)
    assert cal.between(friday_evening, datetime(2026, 12, 7, 10, 0, tzinfo=SH)) == timedelta(
        hours=2
    )


def test_instants_in_another_zone_are_converted():
    cal = china()
    # 01:00 UTC is 09:00 in Shanghai
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    due = cal.add(start, timedelta(hours=1))
    assert due == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert due.tzinfo == UTC


def test_national_day_holiday_week_is_skipped():
    cal = china()
    # Wednesday 30 September 2026, 17:00: 1 h left that day, 1-7 October are holidays
    start = datetime(2026, 9, 30, 17, 0, tzinfo=SH)
    due = cal.add(start, timedelta(hours=2))
    assert local(cal, due) == datetime(2026, 10, 8, 10, 0)
    assert not cal.is_working_day(date(2026, 10, 5))  # a Monday inside the holiday
    assert cal.between(start, due) == timedelta(hours=2)


def test_make_up_saturday_is_a_working_day():
    cal = china()
    saturday = date(2026, 2, 14)  # 调休: Saturday before the Spring Festival is a workday
    assert saturday.weekday() == 5
    assert cal.is_working_day(saturday)
    friday_evening = datetime(2026, 2, 13, 17, 0, tzinfo=SH)
    assert local(cal, cal.add(friday_evening, timedelta(hours=2))) == datetime(2026, 2, 14, 10, 0)
    assert not cal.is_working_day(date(2026, 2, 21))  # an ordinary Saturday


def test_next_working_instant():
    cal = china()
    inside = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
    assert cal.next_working_instant(inside) == inside.astimezone(UTC)
    in_break = datetime(2026, 12, 1, 12, 15, tzinfo=SH)
    assert local(cal, cal.next_working_instant(in_break)) == datetime(2026, 12, 1, 13, 30)
    holiday = datetime(2026, 10, 1, 10, 0, tzinfo=SH)
    assert local(cal, cal.next_working_instant(holiday)) == datetime(2026, 10, 8, 9, 0)


def test_an_unknown_year_raises_naming_the_year():
    cal = china()
    new_year_eve = datetime(2026, 12, 31, 17, 0, tzinfo=SH)
    with pytest.raises(CalendarYearUnknown) as raised:
        cal.add(new_year_eve, timedelta(hours=3))
    assert raised.value.extra["year"] == 2027
    assert "2027" in str(raised.value)
    assert cal.coverage(date(2026, 12, 3))["missing_years"] == [2027]


def test_an_edited_year_computes_with_its_explicit_dates():
    cal = china(
        declared_years=[2027],
        holidays=["2027-01-01"],
        workdays=["2027-01-02"],  # a make-up Saturday given by hand
    )
    new_year_eve = datetime(2026, 12, 31, 17, 0, tzinfo=SH)
    # 1 h on the 31st, 1 January is a holiday, Saturday 2 January works
    assert local(cal, cal.add(new_year_eve, timedelta(hours=3))) == datetime(2027, 1, 2, 11, 0)
    assert cal.coverage(date(2026, 12, 3))["missing_years"] == []


def test_explicit_dates_override_the_library():
    cal = china(workdays=["2026-10-08"], holidays=["2026-12-01"])
    assert not cal.is_working_day(date(2026, 12, 1))
    cal2 = china(holidays=["2026-10-08"])
    assert not cal2.is_working_day(date(2026, 10, 8))


def test_dst_zone_berlin_spring_forward():
    cal = calendar_from_dict(
        {
            "time_zone": "Europe/Berlin",
            "holiday_source": "none",
            "hours": {str(d): ["08:00-17:00"] for d in range(5)},
            "holidays": ["2026-04-03"],  # Good Friday
        }
    )
    # Thursday 26 March 2026 16:00 CET; DST starts Sunday 29 March
    start = datetime(2026, 3, 26, 16, 0, tzinfo=BERLIN)
    due = cal.add(start, timedelta(hours=2))
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 27, 9, 0)
    monday = cal.add(datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN), timedelta(hours=2))
    assert monday.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 30, 9, 0)
    # 08:00 Berlin is 07:00 UTC before DST and 06:00 UTC after
    assert cal.next_working_instant(datetime(2026, 3, 27, 0, 0, tzinfo=UTC)) == datetime(
        2026, 3, 27, 7, 0, tzinfo=UTC
    )
    assert cal.next_working_instant(datetime(2026, 3, 30, 0, 0, tzinfo=UTC)) == datetime(
        2026, 3, 30, 6, 0, tzinfo=UTC
    )
    # a whole week: 5 days of 9 h minus Good Friday
    week = cal.between(
        datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN), datetime(2026, 4, 6, 0, 0, tzinfo=BERLIN)
    )
    assert week == timedelta(hours=36)


def test_night_shift_crossing_midnight():
    cal = calendar_from_dict(
        {"holiday_source": "none", "time_zone": "Asia/Shanghai", "hours": {"0": ["22:00-06:00"]}}
    )
    start = datetime(2026, 11, 30, 23, 0, tzinfo=SH)  # Monday 23:00
    assert local(cal, cal.add(start, timedelta(hours=5))) == datetime(2026, 12, 1, 4, 0)


def test_between_is_zero_backwards_and_over_a_holiday():
    cal = china()
    a = datetime(2026, 10, 2, 10, 0, tzinfo=SH)
    b = datetime(2026, 10, 4, 10, 0, tzinfo=SH)
    assert cal.between(a, b) == timedelta(0)
    assert cal.between(b, a) == timedelta(0)


def test_bad_calendars_name_their_field():
    with pytest.raises(ValidationFailed) as raised:
        calendar_from_dict({"time_zone": "Mars/Olympus"})
    assert "time_zone" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        calendar_from_dict({"hours": {"0": ["09:00-12:00", "11:00-13:00"]}})
    assert "hours" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        calendar_from_dict({"holidays": ["2027-01-01"], "workdays": ["2027-01-01"]})
    assert "workdays" in raised.value.errors
