"""`"at": "exact"` date triggers: the instant in a record's field, parsed and validated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.rules.domain import timing
from services.rules.domain.rules import validate_definition
from services.rules.notify.templates import check_template
from services.rules.usecases.timers import exact_value

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def exact_rule(**trigger: object) -> dict:
    return {"trigger": {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
                        "field": "next_check_at", "at": "exact", "record": "ticket",
                        **trigger},
            "actions": [{"type": "notify", "to": ["owner"], "title": "SLA"}]}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-12-03T08:00:30+00:00", datetime(2026, 12, 3, 8, 0, 30, tzinfo=UTC)),
    ("2026-12-03T08:00:30Z", datetime(2026, 12, 3, 8, 0, 30, tzinfo=UTC)),
    ("2026-12-03T16:00:30.250+08:00", datetime(2026, 12, 3, 8, 0, 30, 250000, tzinfo=UTC)),
    ("2026-12-03T08:00:30", datetime(2026, 12, 3, 8, 0, 30, tzinfo=UTC)),  # naive = UTC
    (datetime(2026, 12, 3, 16, 0, tzinfo=timezone(timedelta(hours=8))),
     datetime(2026, 12, 3, 8, 0, tzinfo=UTC)),
])
def test_an_instant_is_read_as_utc(value: object, expected: datetime) -> None:
    parsed = timing.parse_instant(value)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "2026-12-03", "tomorrow", "2026-13-40T08:00:00Z",
                                   12345, {"at": "x"}])
def test_a_missing_or_unparsable_instant_is_none(value: object) -> None:
    assert timing.parse_instant(value) is None
    assert timing.exact_due(value, now=NOW) is None


def test_exact_due_is_the_instant_to_the_microsecond() -> None:
    due = timing.exact_due("2026-12-03T08:00:07.5Z", now=NOW)
    assert due == NOW + timedelta(seconds=7.5)


def test_offsets_shift_the_instant() -> None:
    # a day before is already past: at once
    assert timing.exact_due("2026-12-03T10:00:00Z", now=NOW, offset_days=-1) == NOW
    assert timing.exact_due("2026-12-05T10:00:00Z", now=NOW, offset_days=-1) == datetime(
        2026, 12, 4, 10, 0, tzinfo=UTC)
    assert timing.exact_due("2027-03-31T10:00:00Z", now=NOW, offset_months=-1) == datetime(
        2027, 2, 28, 10, 0, tzinfo=UTC)


def test_a_past_instant_fires_at_once_only_when_late_is_allowed() -> None:
    past = "2026-12-03T07:59:00Z"
    assert timing.exact_due(past, now=NOW) == NOW
    assert timing.exact_due(past, now=NOW, late_ok=False) is None
    assert timing.exact_due(NOW.isoformat(), now=NOW, late_ok=False) is None


def test_the_event_data_wins_over_the_record() -> None:
    record = {"id": "t1", "next_check_at": "2026-12-03T09:00:00Z"}
    assert exact_value("next_check_at", record, None) == "2026-12-03T09:00:00Z"
    assert exact_value("next_check_at", record, {"ticket_id": "t1"}) == "2026-12-03T09:00:00Z"
    assert exact_value("next_check_at", record, {"ticket_id": "t1",
                                                 "next_check_at": "2026-12-03T10:00:00Z"}
                       ) == "2026-12-03T10:00:00Z"
    assert exact_value("next_check_at", record, {"next_check_at": None}) is None


def test_an_exact_trigger_is_valid() -> None:
    assert validate_definition(exact_rule(), check_template) == {}
    assert validate_definition(exact_rule(offset_days=-1), check_template) == {}
    assert validate_definition(exact_rule(yearly=False), check_template) == {}


@pytest.mark.parametrize("at", ["Exact", "precise", "25:00", 9, True, ["exact"]])
def test_a_bad_at_is_refused_naming_trigger_at(at: object) -> None:
    problems = validate_definition(exact_rule(at=at), check_template)
    assert list(problems) == ["trigger.at"]
    assert "exact" in problems["trigger.at"][0]


def test_exact_is_not_yearly() -> None:
    problems = validate_definition(exact_rule(yearly=True), check_template)
    assert list(problems) == ["trigger.yearly"]


def test_a_time_of_day_still_works_as_before() -> None:
    rule = exact_rule(at="09:30")
    assert validate_definition(rule, check_template) == {}
    assert validate_definition(exact_rule(at=None), check_template) == {}
