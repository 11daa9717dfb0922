"""Overdue detection and renewal rules (services/contracts/domain/overdue.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.contracts.domain import overdue as o
from shared.errors import Conflict, ValidationFailed

D = Decimal
DUE = date(2027, 1, 31)


@pytest.mark.parametrize(("status", "paid", "as_of", "expected"), [
    ("pending", "0", date(2027, 1, 31), False),  # the due day itself is on time
    ("pending", "0", date(2027, 2, 1), True),
    ("partly_paid", "99.99", date(2027, 2, 1), True),
    ("paid", "100", date(2027, 3, 1), False),
    ("overdue", "100", date(2027, 3, 1), False),  # paid in full: no longer overdue
    ("void", "0", date(2027, 3, 1), False),
    ("pending", "0", date(2026, 12, 1), False),
])
def test_is_overdue(status, paid, as_of, expected):
    assert o.is_overdue(status, D("100"), D(paid), DUE, as_of) is expected


def test_days_overdue_outstanding_and_became_paid():
    assert o.days_overdue(DUE, date(2027, 2, 1)) == 1
    assert o.days_overdue(DUE, date(2027, 3, 5)) == 33
    assert o.days_overdue(DUE, date(2027, 1, 1)) == 0
    assert o.outstanding(D("100"), D("30")) == D("70")
    assert o.outstanding(D("100"), D("130")) == D("0")
    assert o.became_paid(D("30"), D("100"), D("100"))
    assert not o.became_paid(D("100"), D("100"), D("100"))  # already paid before
    assert not o.became_paid(D("0"), D("99.99"), D("100"))


def test_read_status_expires_active_contracts_only():
    today = date(2027, 6, 1)
    assert o.read_status("active", date(2027, 5, 31), today) == "expired"
    assert o.read_status("active", date(2027, 6, 1), today) == "active"  # its last day
    assert o.read_status("active", None, today) == "active"
    assert o.read_status("terminated", date(2027, 1, 1), today) == "terminated"
    assert o.read_status("renewed", date(2027, 1, 1), today) == "renewed"


OLD = {"status": "active", "renewed_by_id": None, "title": "MES 维保", "amount": "120000.00",
       "currency": "CNY", "customer_id": "cust", "opportunity_id": None,
       "parties": [{"role": "甲方", "name": "苏州精工"}], "clauses": [{"title": "保密"}],
       "start_date": date(2027, 1, 1), "end_date": date(2027, 12, 31)}


def test_renewal_starts_the_day_after_and_keeps_the_term_amount_parties_clauses():
    terms = o.renewal_terms(OLD, {})
    assert terms["start_date"] == date(2028, 1, 1)
    assert terms["end_date"] == date(2028, 12, 31)  # one year again (2028 is a leap year)
    assert terms["amount"] == D("120000.00") and terms["title"] == "MES 维保"
    assert terms["parties"] == OLD["parties"] and terms["clauses"] == OLD["clauses"]
    assert terms["parties"] is not OLD["parties"]  # a copy
    half = o.renewal_terms({**OLD, "start_date": date(2027, 1, 1),
                            "end_date": date(2027, 6, 30)}, {})
    assert (half["start_date"], half["end_date"]) == (date(2027, 7, 1), date(2027, 12, 31))


def test_renewal_takes_what_is_given():
    terms = o.renewal_terms(OLD, {"amount": D("150000"), "start_date": date(2028, 3, 1),
                                  "end_date": date(2029, 2, 28), "title": "续约"})
    assert (terms["amount"], terms["title"]) == (D("150000"), "续约")
    assert (terms["start_date"], terms["end_date"]) == (date(2028, 3, 1), date(2029, 2, 28))
    open_ended = o.renewal_terms({**OLD, "start_date": None}, {})
    assert open_ended["start_date"] == date(2028, 1, 1) and open_ended["end_date"] is None


def test_renewal_refusals():
    for status in ("draft", "in_approval", "terminated", "renewed"):
        with pytest.raises(Conflict):
            o.renewal_terms({**OLD, "status": status}, {})
    assert o.renewal_terms({**OLD, "status": "expired"}, {})["start_date"] == date(2028, 1, 1)
    with pytest.raises(Conflict) as err:
        o.renewal_terms({**OLD, "renewed_by_id": "c2"}, {})
    assert err.value.extra["reason"] == "already_renewed"
    with pytest.raises(ValidationFailed) as bad:
        o.renewal_terms({**OLD, "end_date": None}, {})
    assert list(bad.value.errors) == ["start_date"]
    with pytest.raises(ValidationFailed) as bad:
        o.renewal_terms(OLD, {"end_date": date(2027, 12, 1)})
    assert list(bad.value.errors) == ["end_date"]


def test_the_shipped_contract_rules_are_valid_and_their_keys_fit():
    from services.rules.domain.rules import validate_definition
    from services.rules.seed import SHIPPED_RULES
    from services.rules.usecases.support import check_template

    shipped = {r["key"]: r for r in SHIPPED_RULES}
    for key in ("contract-instalment-overdue", "instalment-overdue-7d-escalation",
                "contract-renewal-reminder-30d"):
        assert len(key) <= 36  # rules.id is a String(36)
        definition = {k: shipped[key][k] for k in ("trigger", "conditions", "actions")}
        assert validate_definition(definition, check_template) == {}
    assert shipped["instalment-overdue-7d-escalation"]["trigger"]["unless"] == [
        "contracts.instalment_paid"]
    reminder = shipped["contract-renewal-reminder-30d"]
    assert reminder["trigger"]["offset_days"] == -30
    assert 'status == "active"' in reminder["conditions"]
