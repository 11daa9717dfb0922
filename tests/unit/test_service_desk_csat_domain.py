"""CSAT's rules and figures (services/service_desk/domain/csat.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.service_desk.domain import csat
from shared.errors import ValidationFailed


def test_a_bad_answer_names_its_reason_and_a_good_one_takes_none():
    csat.check_answer("good", None)
    csat.check_answer("bad", "slow")
    with pytest.raises(ValidationFailed) as no_reason:
        csat.check_answer("bad", None)
    assert list(no_reason.value.extra["errors"]) == ["reason"]
    with pytest.raises(ValidationFailed) as reason_with_good:
        csat.check_answer("good", "slow")
    assert list(reason_with_good.value.extra["errors"]) == ["reason"]
    with pytest.raises(ValidationFailed) as rating:
        csat.check_answer("meh", None)
    assert list(rating.value.extra["errors"]) == ["rating"]


def test_tokens_are_long_random_and_url_safe():
    tokens = {csat.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) >= 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_the_answer_window_is_thirty_days():
    sent = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert (csat.expires_at(sent) - sent).days == 30


def test_figures_score_and_response_rate_round_half_up():
    figures = csat.figures(sent=3, answered=3, good=2, reasons={"slow": 1})
    assert figures == {"sent": 3, "answered": 3, "good": 2, "bad": 1, "score": "66.67",
                       "response_rate": "100.00", "reasons": {"slow": 1}}
    nothing = csat.figures(0, 0, 0, {})
    assert nothing["score"] is None and nothing["response_rate"] is None


def test_report_orders_keys_none_last_and_totals_every_row():
    out = csat.report("agent", [("wang", 4, 2, 1), (None, 1, 0, 0), ("li", 2, 2, 2)],
                      [("wang", "slow", 1)])
    assert [row["key"] for row in out["items"]] == ["li", "wang", None]
    wang = out["items"][1]
    assert (wang["sent"], wang["answered"], wang["good"], wang["bad"]) == (4, 2, 1, 1)
    assert wang["score"] == "50.00" and wang["response_rate"] == "50.00"
    assert wang["reasons"] == {"slow": 1}
    assert out["total"] == {"sent": 7, "answered": 4, "good": 3, "bad": 1, "score": "75.00",
                            "response_rate": "57.14", "reasons": {"slow": 1}}


def test_an_unknown_grouping_is_refused_naming_group_by():
    with pytest.raises(ValidationFailed) as bad:
        csat.check_grouping("weekday")
    assert list(bad.value.extra["errors"]) == ["group_by"]
