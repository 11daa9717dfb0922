"""Contracts through approvals with no bypass (issue 16): submit starts the matching contract
flow in the same transaction, the decision moves the contract, every write path is refused
while in approval, signing re-verifies the approval against the stored terms, the generic
`submit_for_approval` / `verify_approval` refuse quotes and contracts, `clauses_changed`
against the standard clauses, and the escalation of an undecided step (idempotent). Real
migrated databases (SQLite and PostgreSQL), the real sales worker; no broker."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest
from sqlalchemy import update

from services.contracts.models import Contract
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service.test_contracts_quotes_service import (  # noqa: F401 (fixtures)
    REP_A,
    catalogue,
    events_of,
    make,
    new_quote,
    opportunity,
    urls,
)

BIG = {
    "record_type": "contract", "name": "大额合同审批", "position": 0,
    "condition": "amount >= 1000000",
    "steps": [
        {"name": "经理审批", "mode": "any", "approvers": [{"kind": "user", "id": "approver"}],
             "escalate_after_hours": 4, "escalate_to": {"kind": "manager"}},
        {"name": "总监", "mode": "any", "approvers": [{"kind": "user", "id": "director"}]},
    ],
}
LEGAL = {
    "record_type": "contract", "name": "条款变更法务审批", "position": 1,
    "condition": "clauses_changed",
    "steps": [{"name": "法务", "mode": "any", "approvers": [{"kind": "role", "role": "legal"}]}],
}
USERS = [("rep-a", "sales_rep", "t1"), ("approver", "manager", "t2"), ("boss", "manager", None),
         ("director", "manager", None), ("legal-1", "legal", None)]
STANDARD = [{"code": "payment", "title": "付款", "text": "买方应在合同签订后 30 日内付款。"},
            {"code": "warranty", "title": "质保", "text": "质保期一年。"}]


def _envelope(event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type,
            "occurred_at": "2026-12-03T00:00:00Z", "correlation_id": "c", "data": data}


@pytest.fixture
def world(make):  # noqa: F811
    contracts, sales = make()
    for team, manager in (("t1", "approver"), ("t2", "boss")):
        contracts.on_gateway_team_changed(_envelope("team_changed", {
            "team": {"id": team, "name": team, "manager_id": manager}}))
    for user_id, role, team in USERS:
        contracts.on_gateway_user_changed(_envelope("user_changed", {
            "user": {"id": user_id, "username": user_id, "role": role, "team_id": team,
                     "active": True}}))
    contracts.define_approval_flow(BIG)
    contracts.define_approval_flow(LEGAL)
    contracts.set_standard_clauses({"clauses": STANDARD})
    return contracts, sales


def new_contract(contracts, sales, amount: str, clauses=STANDARD) -> dict:
    customer = sales.create_customer({"name": f"客户 {uuid.uuid4().hex[:6]}"}, scope=REP_A)
    created = contracts.create_contract({"title": "MES 合同", "customer_id": customer["id"],
                                         "amount": amount}, scope=REP_A)
    return contracts.update_contract(created["id"], {"clauses": clauses}, scope=REP_A)


def in_approval_reason(call) -> dict:
    with pytest.raises(Conflict) as err:
        call()
    assert err.value.extra["reason"] == "in_approval", err.value.extra
    return err.value.extra


def test_a_big_contract_goes_through_approval_and_nothing_bypasses_it(world, make):  # noqa: F811
    contracts, sales = world
    contract = new_contract(contracts, sales, "1200000")
    terms = contracts.contract_approval_terms(contract["id"], scope=REP_A)["terms"]
    assert terms["clauses_changed"] is False and terms["amount"] == "1200000.00"
    submitted = contracts.submit_contract(contract["id"], scope=REP_A)
    assert submitted["status"] == "in_approval"
    approval = contracts.current_approval("contract", contract["id"])
    assert approval["flow_name"] == "大额合同审批" and approval["pending_approvers"] == ["approver"]
    cid = contract["id"]
    extra = in_approval_reason(lambda: contracts.update_contract(cid, {"amount": "1"},
                                                                 scope=REP_A))
    assert extra["approval_id"] == approval["id"]
    in_approval_reason(lambda: contracts.set_payment_plan(cid, {"instalments": [
        {"due_date": "2027-01-01", "percentage": "100"}]}, scope=REP_A))
    in_approval_reason(lambda: contracts.sign_contract(cid, scope=REP_A))
    in_approval_reason(lambda: contracts.terminate_contract(cid, {"reason": "x"}, scope=REP_A))
    in_approval_reason(lambda: contracts.record_receipt(cid, {
        "amount": "10", "received_on": "2026-12-01"}, scope=REP_A))
    in_approval_reason(lambda: contracts.submit_contract(cid, scope=REP_A))
    # the generic RPC can neither submit nor verify a contract (made-up terms)
    with pytest.raises(ValidationFailed) as err:
        contracts.submit_for_approval({"record_type": "contract", "record_id": cid,
                                       "terms": {"amount": "1"}}, "rep-a")
    assert list(err.value.errors) == ["record_type"]
    assert "submit_contract" in err.value.errors["record_type"][0]
    with pytest.raises(ValidationFailed):
        contracts.verify_approval("contract", cid, {"amount": "1"})
    assert contracts.current_approval("contract", cid)["status"] == "pending"

    contracts.decide_approval(approval["id"], "approver", {"decision": "approve"})
    assert contracts.get_contract(cid, scope=REP_A)["status"] == "in_approval"
    contracts.decide_approval(approval["id"], "director", {"decision": "approve"})
    assert contracts.get_contract(cid, scope=REP_A)["status"] == "approved"
    with pytest.raises(Conflict) as err:  # approved terms are not edited
        contracts.update_contract(cid, {"amount": "1"}, scope=REP_A)
    assert err.value.extra["status"] == "approved"
    signed = contracts.sign_contract(cid, scope=REP_A)
    assert signed["status"] == "active"
    changes = [(e["data"]["from_status"], e["data"]["to_status"])
               for e in events_of(make.engine, "contract_status_changed")
               if e["data"]["contract"]["id"] == cid]
    assert changes == [("draft", "in_approval"), ("in_approval", "approved")]


def test_no_matching_flow_approves_at_once_and_a_draft_under_a_flow_is_not_signed(world):
    contracts, sales = world
    small = new_contract(contracts, sales, "5000")
    assert contracts.submit_contract(small["id"], scope=REP_A)["status"] == "approved"
    assert contracts.current_approval("contract", small["id"]) is None
    assert contracts.sign_contract(small["id"], scope=REP_A)["status"] == "active"
    # a draft no flow applies to is signed directly, as before
    plain = new_contract(contracts, sales, "6000")
    assert contracts.sign_contract(plain["id"], scope=REP_A)["status"] == "active"
    big = new_contract(contracts, sales, "2000000")
    with pytest.raises(Conflict) as err:
        contracts.sign_contract(big["id"], scope=REP_A)
    assert err.value.extra["reason"] == "approval_invalid"
    with pytest.raises(PreconditionFailed):
        contracts.submit_contract(small["id"], scope=REP_A)  # active: not a draft


def test_sign_reverifies_the_approved_terms(world, make):  # noqa: F811
    contracts, sales = world
    contract = new_contract(contracts, sales, "1500000")
    contracts.submit_contract(contract["id"], scope=REP_A)
    approval = contracts.current_approval("contract", contract["id"])
    for user in ("approver", "director"):
        contracts.decide_approval(approval["id"], user, {"decision": "approve"})
    # the stored terms change behind the approval (an import, a direct write)
    with make.engine.begin() as conn:
        conn.execute(update(Contract).where(Contract.id == contract["id"])
                     .values(amount="1499999.00"))
    with pytest.raises(Conflict) as err:
        contracts.sign_contract(contract["id"], scope=REP_A)
    assert err.value.extra["reason"] == "approval_invalid"
    assert "terms changed" in err.value.detail
    assert contracts.current_approval("contract", contract["id"])["status"] == "voided"
    assert contracts.get_contract(contract["id"], scope=REP_A)["status"] == "draft"


def test_changed_clauses_route_to_legal(world):
    contracts, sales = world
    same = new_contract(contracts, sales, "1000",
                        clauses=[{**c, "text": c["text"] + "  "} for c in STANDARD])
    assert contracts.submit_contract(same["id"], scope=REP_A)["status"] == "approved"
    changed = new_contract(contracts, sales, "1000", clauses=[
        STANDARD[0], {"code": "warranty", "title": "质保", "text": "质保期三年。"}])
    terms = contracts.contract_approval_terms(changed["id"], scope=REP_A)["terms"]
    assert terms["clauses_changed"] is True and terms["changed_clause_codes"] == ["warranty"]
    assert contracts.submit_contract(changed["id"], scope=REP_A)["status"] == "in_approval"
    approval = contracts.current_approval("contract", changed["id"])
    assert approval["flow_name"] == "条款变更法务审批"
    assert approval["pending_approvers"] == ["legal-1"]


def test_made_up_terms_cannot_lock_or_approve_a_quote(world):
    contracts, sales = world
    items = catalogue(contracts)
    quote = new_quote(contracts, opportunity(sales), items)
    with pytest.raises(ValidationFailed) as err:
        contracts.submit_for_approval({"record_type": "quote", "record_id": quote["id"],
                                       "terms": {"amount": "1"}}, "rep-a")
    assert list(err.value.errors) == ["record_type"]
    assert contracts.current_approval("quote", quote["id"]) is None
    changed = contracts.update_quote(quote["id"], {"title": "仍可编辑"}, scope=REP_A)
    assert changed["title"] == "仍可编辑"


def test_an_undecided_step_escalates_once_and_a_decided_one_does_not(world, make):  # noqa: F811
    contracts, sales = world
    contract = new_contract(contracts, sales, "1100000")
    contracts.submit_contract(contract["id"], scope=REP_A)
    approval = contracts.current_approval("contract", contract["id"])
    started = [e["data"] for e in events_of(make.engine, "approval_step_started")
               if e["data"]["instance_id"] == approval["id"]]
    assert len(started) == 1
    event = started[0]
    assert event["step"] == 0 and event["approver_ids"] == ["approver"]
    assert event["approval"]["approval_id"] == approval["id"] and event["approval"]["step"] == 0
    assert event["approval"]["id"].startswith(approval["id"] + ":0:")
    assert datetime.fromisoformat(event["escalate_at"]) > datetime.fromisoformat(
        approval["submitted_at"])
    assert approval["steps"][0]["escalate_at"] == event["escalate_at"]
    [requested] = [e["data"] for e in events_of(make.engine, "approval_requested")
                   if e["data"]["instance_id"] == approval["id"]]
    assert requested["approval"] == {**event["approval"], "approver_ids": ["approver"]}
    assert requested["approval"]["escalated"] is False

    # the rules service passes the approval record's id (`<approval id>:<step>:<n>`)
    first = contracts.escalate_approval_step(event["approval"]["id"], "0",
                                             command_id="rules:r1:0")
    assert first["escalated"] is True and first["escalated_to"] == ["boss"]
    assert first["owner_id"] == "boss"
    again = contracts.escalate_approval_step(approval["id"], 0, command_id="rules:r1:0")
    other = contracts.escalate_approval_step(approval["id"], 0, command_id="rules:r2:0")
    assert (again["escalated"], other["escalated"]) == (False, False)
    after = contracts.get_approval(approval["id"], see_all=True)
    assert [t["action"] for t in after["trail"]].count("escalated") == 1
    assert after["pending_approvers"] == ["approver", "boss"]
    inbox = contracts.list_my_approvals("boss")
    assert [item["id"] for item in inbox["items"]] == [approval["id"]]
    assert len([e for e in events_of(make.engine, "approval_step_escalated")
                if e["data"]["instance_id"] == approval["id"]]) == 1
    asked = [e["data"]["approval"] for e in events_of(make.engine, "approval_requested")
             if e["data"]["instance_id"] == approval["id"]]
    assert [(a["approver_ids"], a["escalated"]) for a in asked] == [
        (["approver"], False), (["boss"], True)]
    # the escalation approver's answer decides the step; the next step does not escalate
    decided = contracts.decide_approval(approval["id"], "boss", {"decision": "approve"})
    assert decided["current_step"] == 1 and decided["pending_approvers"] == ["director"]
    late = contracts.escalate_approval_step(approval["id"], 0, command_id="rules:r3:0")
    assert late["escalated"] is False and "no longer waiting" in late["reason"]
    assert contracts.list_my_approvals("boss")["items"] == []
    with pytest.raises(NotFound):
        contracts.escalate_approval_step("nope", 0)
    with pytest.raises(ValidationFailed):
        contracts.escalate_approval_step(approval["id"], "x")


def test_an_escalation_flow_is_checked(world):
    contracts, _ = world
    bad = {**BIG, "steps": [{**BIG["steps"][0], "escalate_after_hours": None,
                             "escalate_to": {"kind": "user", "id": "boss"}}]}
    with pytest.raises(ValidationFailed) as err:
        contracts.define_approval_flow(bad)
    assert list(err.value.errors) == ["steps.0.escalate_after_hours"]
    bad = {**BIG, "steps": [{**BIG["steps"][0], "escalate_to": {"kind": "user"}}]}
    with pytest.raises(ValidationFailed) as err:
        contracts.define_approval_flow(bad)
    assert list(err.value.errors) == ["steps.0.escalate_to.id"]


def test_payment_plan_date_still_works_after_approval(world):
    contracts, sales = world
    contract = new_contract(contracts, sales, "1000")
    contracts.submit_contract(contract["id"], scope=REP_A)
    plan = contracts.set_payment_plan(contract["id"], {"instalments": [
        {"due_date": date(2027, 1, 1).isoformat(), "percentage": "100"}]}, scope=REP_A)
    assert [i["amount"] for i in plan["items"]] == ["1000.00"]


def test_concurrent_submissions_of_one_contract_leave_one_approval(world, make):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    contracts, sales = world
    contract = new_contract(contracts, sales, "3000000")

    def attempt(_):
        worker, _sales = make()
        try:
            return worker.submit_contract(contract["id"], scope=REP_A)["status"]
        except (Conflict, PreconditionFailed) as err:
            return type(err).__name__

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert outcomes.count("in_approval") == 1, outcomes
    assert contracts.get_contract(contract["id"], scope=REP_A)["status"] == "in_approval"
    assert contracts.current_approval("contract", contract["id"])["status"] == "pending"
