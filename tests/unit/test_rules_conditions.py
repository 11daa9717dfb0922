"""Rule conditions: evaluation over event data, and errors with their position at save time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.rules.domain import conditions

LEAD = {"source": "website", "score": 85, "region": "华东", "owner_id": None,
        "product_interest": ["MES", "ERP"], "owner": {"email": "zw@example.cn"}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('source == "website" and score >= 80 and region in ["华东", "华南"]', True),
        ('source == "website" and score >= 90', False),
        ('region not in ["华北"]', True),
        ("owner_id == None", True),
        ("owner_id is None and not (score < 50)", True),
        ('"MES" in product_interest', True),
        ('contains(product_interest, "CRM")', False),
        ("len(product_interest) == 2", True),
        ('owner.email == "zw@example.cn"', True),
        ('lower(source) == "website" or score > 1000', True),
        ("", True),
        ("   ", True),
    ],
)
def test_expressions_are_evaluated_over_the_names(expression: str, expected: bool) -> None:
    assert conditions.check(expression) is None
    assert conditions.evaluate(expression, LEAD) is expected


def test_a_syntax_error_names_line_column_and_offset() -> None:
    error = conditions.check('source == "website" and score >= ')
    assert error is not None
    assert error.line == 1
    assert error.column == 33  # just after ">="
    assert error.offset == 32
    assert "line 1, column 33" in str(error)
    assert "incomplete" in error.message


def test_an_error_on_the_second_line_counts_the_offset_across_lines() -> None:
    error = conditions.check('source == "website"\nand score >=> 3')
    assert error is not None
    assert (error.line, error.column) == (2, 13)
    assert error.offset == len('source == "website"\n') + 12


def test_a_condition_may_span_lines() -> None:
    expression = 'source == "website"\nand score >= 80'
    assert conditions.check(expression) is None
    assert conditions.evaluate(expression, LEAD) is True


@pytest.mark.parametrize(
    ("expression", "column"),
    [
        ("__import__('os').system('true')", 1),
        ("score > 1 and open('x')", 15),
        ("source.__class__", 1),
        ("[x for x in range(3)]", 1),
        ("lambda: 1", 1),
        ("score := 3", None),
    ],
)
def test_anything_beyond_expressions_over_data_is_refused(
    expression: str, column: int | None
) -> None:
    error = conditions.check(expression)
    assert error is not None
    if column is not None:
        assert error.column == column


def test_evaluation_errors_are_reported_not_raised_as_crashes() -> None:
    with pytest.raises(conditions.ConditionFailed, match="unknown_field"):
        conditions.evaluate("unknown_field > 3", LEAD)
    with pytest.raises(conditions.ConditionFailed, match="TypeError"):
        conditions.evaluate("owner_id > 3", LEAD)


def test_days_since_uses_the_given_clock() -> None:
    names = {"created_at": "2026-01-01T00:00:00+00:00"}
    now = datetime(2026, 1, 11, tzinfo=UTC)
    assert conditions.evaluate("days_since(created_at) >= 10", names, now) is True
    assert conditions.evaluate("days_since(created_at) > 10", names, now) is False
