"""Quotes wired to the approval engine (issue 16, "Approval flows" and "No bypass"): submit
starts the matching quote flow in the same transaction, the decision moves the quote through
the approvals' per-record-type callback, and every bypass path is refused. Real migrated
databases (SQLite and PostgreSQL), the real sales worker; no broker."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contracts.models import QuoteVersion
from services.contracts.usecases import approvals
from services.contracts.usecases.pricing import today
from services.contracts.usecases.quotes import price_terms
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.service.test_contracts_quotes_service import (  # noqa: F401 (fixtures)
    REP_A,
    catalogue,
    events_of,
    make,
    new_quote,
    opportunity,
    urls,
)

FLOW = {
    "record_type": "quote", "name": "报价折扣审批", "position": 0,
    "condition": "discount_percent > 10",
    "steps": [
        {"name": "会签", "mode": "all",
         "approvers": [{"kind": "manager"}, {"kind": "user", "id": "director"}]},
        {"name": "或签", "mode": "any", "approvers": [{"kind": "role", "role": "legal"}]},
    ],
}
USERS = [("rep-a", "sales_rep", "t1"), ("manager", "manager", "t1"),
         ("director", "manager", None), ("legal-1", "legal", None), ("legal-2", "legal", None)]


def _envelope(event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()),
            "event_type": event_type, "occurred_at": "2026-12-03T00:00:00Z",
            "correlation_id": "c", "data": data}


@pytest.fixture
def world(make):  # noqa: F811
    contracts, sales = make()
    contracts.on_gateway_team_changed(_envelope("team_changed", {
        "team": {"id": "t1", "name": "华东", "manager_id": "manager"}}))
    for user_id, role, team in USERS:
        contracts.on_gateway_user_changed(_envelope("user_changed", {
            "user": {"id": user_id, "username": user_id, "role": role, "team_id": team,
                     "active": True}}))
    contracts.define_approval_flow(FLOW)
    items = catalogue(contracts)
    return contracts, sales, items


def quote_with_discount(contracts, sales, items, percent: str) -> tuple[dict, dict]:
    opp = opportunity(sales)
    quote = new_quote(contracts, opp, items, discount={"kind": "percent", "value": percent})
    return quote, opp


def approve_all(contracts, approval_id: str) -> dict:
    for user in ("manager", "director", "legal-2"):
        result = contracts.decide_approval(approval_id, user, {"decision": "approve"})
    return result


def test_a_big_discount_goes_to_approval_and_the_decisions_approve_the_quote(world, make):  # noqa: F811
    contracts, sales, items = world
    quote, opp = quote_with_discount(contracts, sales, items, "15")
    submitted = contracts.submit_quote(quote["id"], scope=REP_A)
    assert submitted["status"] == "in_approval"
    approval = contracts.current_approval("quote", quote["id"])
    assert approval["status"] == "pending" and approval["submitter"] == "rep-a"
    assert approval["terms"]["discount_percent"] == "15.99"  # (226255.25 - 190085.27) / 226255.25
    assert approval["terms"]["totals"] == quote["totals"]
    assert approval["terms"]["lines"][0]["unit_price"] == "100000"
    assert approval["terms_version"] == 1
    assert sorted(approval["pending_approvers"]) == ["director", "manager"]
    # nobody approves their own submission
    with pytest.raises(Forbidden):
        contracts.decide_approval(approval["id"], "rep-a", {"decision": "approve"})
    # somebody not asked cannot approve it
    with pytest.raises(NotFound):
        contracts.decide_approval(approval["id"], "legal-1", {"decision": "approve"})
    contracts.decide_approval(approval["id"], "manager", {"decision": "approve"})
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "in_approval"
    contracts.decide_approval(approval["id"], "director", {"decision": "approve"})
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "in_approval"
    done = contracts.decide_approval(approval["id"], "legal-1", {"decision": "approve"})
    assert done["status"] == "approved"
    read = contracts.get_quote(quote["id"], scope=REP_A)
    assert read["status"] == "approved"
    changes = [(e["data"]["from_status"], e["data"]["to_status"])
               for e in events_of(make.engine, "quote_status_changed")]
    assert changes == [("draft", "in_approval"), ("in_approval", "approved")]
    assert contracts.mark_quote_sent(quote["id"], scope=REP_A)["status"] == "sent"
    accepted = contracts.accept_quote(quote["id"], {"reason": "客户签字"}, scope=REP_A)
    assert accepted["status"] == "accepted"
    assert sales.get_opportunity(opp["id"], scope=REP_A)["status"] == "won"


def test_a_small_discount_is_approved_at_once(world):
    contracts, sales, items = world
    quote, _ = quote_with_discount(contracts, sales, items, "5")
    assert contracts.submit_quote(quote["id"], scope=REP_A)["status"] == "approved"
    assert contracts.current_approval("quote", quote["id"]) is None
    assert contracts.mark_quote_sent(quote["id"], scope=REP_A)["status"] == "sent"


def test_every_quote_write_path_is_locked_while_in_approval(world):
    contracts, sales, items = world
    quote, _ = quote_with_discount(contracts, sales, items, "15")
    contracts.submit_quote(quote["id"], scope=REP_A)
    approval_id = contracts.current_approval("quote", quote["id"])["id"]
    paths = {
        "patch": lambda: contracts.update_quote(quote["id"], {"title": "改"}, scope=REP_A),
        "price": lambda: contracts.update_quote(quote["id"], {"lines": [
            {"product_id": items["mes"]["id"], "quantity": "2", "unit_price": "1"}]},
            scope=REP_A),
        "discount": lambda: contracts.update_quote(
            quote["id"], {"discount": {"kind": "percent", "value": "1"}}, scope=REP_A),
        "reprice": lambda: contracts.update_quote(quote["id"], {"channel": "partner",
                                                                "region": "华东"},
                                                  scope=REP_A),
        "revise": lambda: contracts.revise_quote(quote["id"], scope=REP_A),
        "submit": lambda: contracts.submit_quote(quote["id"], scope=REP_A),
        "send": lambda: contracts.mark_quote_sent(quote["id"], scope=REP_A),
        "accept": lambda: contracts.accept_quote(quote["id"], {}, scope=REP_A),
        "reject": lambda: contracts.reject_quote(quote["id"], {"reason": "贵"}, scope=REP_A),
    }
    for name, call in paths.items():
        with pytest.raises(Conflict) as err:
            call()
        assert err.value.extra["reason"] == "in_approval", name
        assert err.value.extra["approval_id"] == approval_id, name
    # another approval through the generic RPC is refused before the lock is even asked
    with pytest.raises(ValidationFailed) as refused:
        contracts.submit_for_approval(
            {"record_type": "quote", "record_id": quote["id"], "terms": {"x": "1"}}, "rep-a")
    assert list(refused.value.errors) == ["record_type"]
    read = contracts.get_quote(quote["id"], scope=REP_A)
    assert read["status"] == "in_approval" and read["title"] == "MES 报价"
    assert read["totals"] == quote["totals"] and read["version"] == 1


def test_reject_and_recall_return_the_quote_to_draft(world):
    contracts, sales, items = world
    quote, _ = quote_with_discount(contracts, sales, items, "15")
    contracts.submit_quote(quote["id"], scope=REP_A)
    first = contracts.current_approval("quote", quote["id"])["id"]
    rejected = contracts.decide_approval(first, "manager",
                                         {"decision": "reject", "comment": "折扣太大"})
    assert rejected["status"] == "rejected"
    draft = contracts.get_quote(quote["id"], scope=REP_A)
    assert draft["status"] == "draft" and draft["status_reason"] == f"approval {first} rejected"
    # a draft again: editable, and resubmitted
    contracts.update_quote(quote["id"], {"title": "MES 报价 v2"}, scope=REP_A)
    assert contracts.submit_quote(quote["id"], scope=REP_A)["status"] == "in_approval"
    second = contracts.current_approval("quote", quote["id"])
    assert second["id"] != first and second["terms"]["quote_id"] == quote["id"]
    with pytest.raises(Forbidden):
        contracts.recall_approval(second["id"], "manager")
    assert contracts.recall_approval(second["id"], "rep-a")["status"] == "recalled"
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "draft"


def _tamper(contracts, quote_id: str, price: str, consistent: bool) -> None:
    """A write that skipped every use case (an import, a script): the stored terms change,
    with figures that add up (`consistent`) or without."""
    with contracts.db.begin() as session:
        assert isinstance(session, Session)
        row = session.scalars(select(QuoteVersion).where(
            QuoteVersion.quote_id == quote_id)).one()
        terms = dict(row.terms)
        terms["lines"] = [{**terms["lines"][0], "unit_price": price}, *terms["lines"][1:]]
        row.terms = price_terms(session, terms, None, today()) if consistent else terms


def test_send_and_accept_reverify_the_approved_terms(world):
    contracts, sales, items = world
    quote, opp = quote_with_discount(contracts, sales, items, "15")
    contracts.submit_quote(quote["id"], scope=REP_A)
    approval_id = contracts.current_approval("quote", quote["id"])["id"]
    approve_all(contracts, approval_id)
    _tamper(contracts, quote["id"], "1", consistent=True)
    with pytest.raises(Conflict) as err:
        contracts.mark_quote_sent(quote["id"], scope=REP_A)
    assert err.value.extra["reason"] == "approval_invalid"
    assert "terms changed after approval" in err.value.detail
    voided = contracts.current_approval("quote", quote["id"])
    assert voided["id"] == approval_id and voided["status"] == "voided"
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "draft"

    # again, through accept: refused before the opportunity moves
    contracts.submit_quote(quote["id"], scope=REP_A)
    second = contracts.current_approval("quote", quote["id"])["id"]
    approve_all(contracts, second)
    _tamper(contracts, quote["id"], "2", consistent=False)
    with pytest.raises(Conflict) as err:
        contracts.accept_quote(quote["id"], {}, scope=REP_A)
    assert err.value.extra["reason"] == "approval_invalid"
    assert "stored figures are not those its lines price to" in err.value.detail
    assert contracts.current_approval("quote", quote["id"])["status"] == "voided"
    assert sales.get_opportunity(opp["id"], scope=REP_A)["status"] == "open"
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "draft"


def test_terms_needing_approval_cannot_be_sent_without_one(world):
    """A quote approved at once whose stored terms later need a flow (tampered to a big
    discount) is refused at send."""
    contracts, sales, items = world
    quote, _ = quote_with_discount(contracts, sales, items, "5")
    contracts.submit_quote(quote["id"], scope=REP_A)
    with contracts.db.begin() as session:
        row = session.scalars(select(QuoteVersion).where(
            QuoteVersion.quote_id == quote["id"])).one()
        row.terms = price_terms(session, {**row.terms, "discount": {
            "kind": "percent", "value": "50"}}, None, today())
    with pytest.raises(Conflict) as err:
        contracts.mark_quote_sent(quote["id"], scope=REP_A)
    assert err.value.extra["reason"] == "approval_invalid"
    assert "not approved" in err.value.detail


def test_an_approval_of_other_terms_cannot_approve_the_quote(world):
    """The generic RPC refuses quotes (contract approval: made-up terms could lock the quote);
    an instance of other terms that exists anyway (written behind the service's back) cannot
    move the quote, so it cannot be approved either (both or neither)."""
    contracts, sales, items = world
    quote, _ = quote_with_discount(contracts, sales, items, "15")
    with pytest.raises(ValidationFailed) as refused:
        contracts.submit_for_approval({"record_type": "quote", "record_id": quote["id"],
                                       "terms": {"discount_percent": "50"}}, "rep-a")
    assert list(refused.value.errors) == ["record_type"]
    assert contracts.current_approval("quote", quote["id"]) is None
    with contracts.db.begin() as session:
        approval = approvals.start_in_session(contracts, session, {
            "record_type": "quote", "record_id": quote["id"],
            "terms": {"discount_percent": "50"}}, "rep-a")
    contracts.decide_approval(approval["id"], "manager", {"decision": "approve"})
    contracts.decide_approval(approval["id"], "director", {"decision": "approve"})
    with pytest.raises(Conflict):
        contracts.decide_approval(approval["id"], "legal-1", {"decision": "approve"})
    assert contracts.get_approval(approval["id"], see_all=True)["status"] == "pending"
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "draft"


def test_self_approval_only_when_the_flow_allows_it(world):
    contracts, sales, items = world
    flows = contracts.list_approval_flows("quote")
    contracts.update_approval_flow(flows[0]["id"], {
        **{k: flows[0][k] for k in ("record_type", "name", "position", "condition")},
        "allow_self_approval": True,
        "steps": [{"name": "自审", "mode": "any",
                   "approvers": [{"kind": "user", "id": "rep-a"}]}]})
    quote, _ = quote_with_discount(contracts, sales, items, "15")
    contracts.submit_quote(quote["id"], scope=REP_A)
    approval = contracts.current_approval("quote", quote["id"])
    contracts.decide_approval(approval["id"], "rep-a", {"decision": "approve"})
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "approved"
    assert datetime.fromisoformat(
        contracts.current_approval("quote", quote["id"])["finished_at"])
