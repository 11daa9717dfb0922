"""Contracts domain: numbering, transitions, plan validation, receipt matching, statuses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.contracts.domain import contracts as c
from shared.errors import Conflict, ValidationFailed

D = Decimal


def test_number_format_and_parse():
    assert c.format_number(2026, 123) == "HT-2026-000123"
    assert c.parse_number("HT-2026-000123") == (2026, 123)
    with pytest.raises(ValueError):
        c.format_number(2026, 1_000_000)
    with pytest.raises(ValueError):
        c.parse_number("HT-2026-123")


def test_transitions():
    c.check_transition("draft", "active")
    c.check_transition("active", "terminated")
    with pytest.raises(Conflict):
        c.check_transition("terminated", "active")
    with pytest.raises(Conflict):
        c.check_transition("draft", "renewed")


def test_plan_amounts_and_percentages_sorted():
    plan = c.build_plan(D("1000"), [
        {"due_date": date(2027, 3, 1), "amount": "300"},
        {"due_date": date(2027, 1, 1), "percentage": "33.333"},
    ])
    assert [(p["seq"], p["amount"]) for p in plan] == [(1, D("333.33")), (2, D("300.00"))]


def test_plan_over_contract_amount_names_field():
    with pytest.raises(ValidationFailed) as err:
        c.build_plan(D("100"), [{"due_date": date(2027, 1, 1), "percentage": "60"},
                                {"due_date": date(2027, 2, 1), "amount": "40.01"}])
    assert list(err.value.errors) == ["instalments"]


def test_plan_needs_exactly_one_of_amount_percentage():
    with pytest.raises(ValidationFailed) as err:
        c.build_plan(D("100"), [{"due_date": date(2027, 1, 1), "amount": "1",
                                 "percentage": "1"}])
    assert "instalments.0" in err.value.errors


def _inst(id_, due, amount, paid="0", status="pending"):
    return {"id": id_, "due_date": due, "amount": D(amount), "paid": D(paid), "status": status}


def test_match_oldest_due_first_partial():
    insts = [_inst("b", date(2027, 2, 1), "100"), _inst("a", date(2027, 1, 1), "100", "60")]
    assert c.match_receipt(insts, D("70")) == [("a", D("40")), ("b", D("30"))]


def test_match_explicit_then_rest_and_void_skipped():
    insts = [_inst("a", date(2027, 1, 1), "100"), _inst("v", date(2026, 1, 1), "50",
                                                           status="void"),
             _inst("b", date(2027, 2, 1), "100")]
    assert c.match_receipt(insts, D("150"), "b") == [("b", D("100")), ("a", D("50"))]
    with pytest.raises(ValidationFailed) as err:
        c.match_receipt(insts, D("1"), "v")
    assert "instalment_id" in err.value.errors


def test_overpayment_leaves_remainder_unallocated():
    insts = [_inst("a", date(2027, 1, 1), "100")]
    assert c.match_receipt(insts, D("130")) == [("a", D("100"))]


def test_instalment_statuses():
    due = date(2027, 1, 10)
    assert c.instalment_status(D(100), D(0), due, date(2027, 1, 1)) == "pending"
    assert c.instalment_status(D(100), D(10), due, date(2027, 1, 1)) == "partly_paid"
    assert c.instalment_status(D(100), D(100), due, date(2027, 2, 1)) == "paid"
    assert c.instalment_status(D(100), D(10), due, date(2027, 2, 1)) == "overdue"
    assert c.instalment_status(D(100), D(0), due, date(2027, 2, 1), void=True) == "void"


def test_receivables():
    insts = [_inst("a", date(2027, 1, 1), "100", "40", "overdue"),
             _inst("b", date(2027, 3, 1), "100")]
    r = c.receivables(D("250"), insts, D("40"), date(2027, 2, 1))
    assert r == {"contract_amount": D("250"), "received": D("40"), "outstanding": D("210"),
                 "overdue": D("60")}
