"""Contract approval end to end, over HTTP with the real broker (issue 16, "no bypass" and
"escalated through the rules service's timers").

An admin defines a contract flow for big amounts (and this test's own title, so other tests'
contracts are not caught): step 1 lina (or-sign, escalated after 1 business hour to her
manager), step 2 chenjing. zhangwei's contract is submitted -> in approval -> PATCH, payment
plan, sign, terminate, receipts and another submission are all refused with the lock's 409,
the generic `submit_for_approval` RPC refuses made-up terms for the contract (422) -> both
steps approve ->
approved -> signed. A second contract's first step is left undecided: once the rules'
controllable clock passes its `escalate_at`, the shipped rule `approval-step-escalation` calls
contracts' `escalate_approval_step`, the manager sees the approval in `/approvals?box=inbox`
and gets a notification, and their answer decides the step.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def locked(response) -> dict:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["reason"] == "in_approval", body
    return body


def new_contract(system: System, title: str, amount: str) -> dict:
    customer = ok(system.post("/customers", user="zhangwei",
                              json={"name": f"无锡{tag()}精密有限公司"}), 201)
    return ok(system.post("/contracts", user="zhangwei", json={
        "title": title, "customer_id": customer["id"], "amount": amount}), 201)


@pytest.fixture
def flow(system: System):
    users = system.users
    title = f"审批合同{tag()}"
    body = {
        "record_type": "contract", "name": f"大额合同{tag()}",
        "condition": f"amount >= 1000000 and title == '{title}'",
        "steps": [
            {"name": "李娜审批", "mode": "any",
             "approvers": [{"kind": "user", "id": users["lina"]}],
             "escalate_after_hours": 1, "escalate_to": {"kind": "manager"}},
            {"name": "陈静审批", "mode": "any",
             "approvers": [{"kind": "user", "id": users["chenjing"]}]}]}
    created = ok(system.post("/approval-flows", user="admin", json=body), 201)
    yield title
    ok(system.put(f"/approval-flows/{created['id']}", user="admin",
                  json={**body, "active": False}))


def approval_of(system: System, user: str, contract_id: str) -> dict:
    items = ok(system.get("/approvals", user=user, params={"box": "inbox"}))["items"]
    found = [a for a in items if a["record_id"] == contract_id]
    assert len(found) == 1, items
    return found[0]


def test_a_contract_in_approval_refuses_every_bypass_then_is_approved_and_signed(
        system: System, flow: str) -> None:
    contract = new_contract(system, flow, "1500000")
    cid = contract["id"]
    submitted = ok(system.post(f"/contracts/{cid}/submit", user="zhangwei"))
    assert submitted["status"] == "in_approval"
    assert ok(system.get(f"/contracts/{cid}", user="zhangwei"))["status"] == "in_approval"
    approval = approval_of(system, "lina", cid)
    assert approval["record_type"] == "contract" and approval["status"] == "pending"
    # the shipped rule approval-requested-notify tells the approver
    asked = system.wait_for(
        lambda: [n for n in ok(system.get("/notifications", user="lina",
                                          params={"limit": 200}))["items"]
                 if (n.get("record_id") or "").startswith(approval["id"] + ":")],
        timeout=30, message="the approver was not notified")
    assert [n["title"] for n in asked] == ["待审批：李娜审批"]

    locked(system.patch(f"/contracts/{cid}", user="zhangwei", json={"amount": "1"}))
    locked(system.put(f"/contracts/{cid}/payment-plan", user="zhangwei", json={
        "instalments": [{"due_date": "2099-01-31", "percentage": "100"}]}))
    locked(system.post(f"/contracts/{cid}/sign", user="zhangwei"))
    locked(system.post(f"/contracts/{cid}/terminate", user="zhangwei",
                       json={"reason": "绕过"}))
    locked(system.post(f"/contracts/{cid}/receipts", user="zhangwei", json={
        "amount": "100", "received_on": "2026-12-01"}))
    locked(system.post(f"/contracts/{cid}/submit", user="zhangwei"))
    # the generic RPC (there is no HTTP route for it) takes no made-up terms for a contract
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
        for record_type in ("contract", "quote"):
            with pytest.raises(Exception) as refused:
                rpc.contracts.submit_for_approval(
                    data={"record_type": record_type, "record_id": cid,
                          "terms": {"amount": "1.00"}}, submitter=system.users["zhangwei"])
            assert "ValidationFailed" in repr(refused.value), repr(refused.value)
            assert "record_type" in str(refused.value)  # the field it names
    [still] = [a for a in ok(system.get("/approvals", user="lina"))["items"]
               if a["record_id"] == cid]
    assert still["id"] == approval["id"] and still["terms"]["amount"] == "1500000.00"
    # another team's rep does not see it at all
    assert system.post(f"/contracts/{cid}/submit", user="chenjing").status_code == 404
    assert system.patch(f"/contracts/{cid}", user="chenjing",
                        json={"title": "x"}).status_code == 404
    # nobody approves their own submission
    assert system.post(f"/approvals/{approval['id']}/approve", user="zhangwei",
                       json={}).status_code in (403, 404)

    ok(system.post(f"/approvals/{approval['id']}/approve", user="lina", json={}))
    # the next approver is told at once (one approval record per request: the rule's
    # once-per-record dedupe window does not swallow the second step's notification)
    system.wait_for(
        lambda: [n for n in ok(system.get("/notifications", user="chenjing",
                                          params={"limit": 200}))["items"]
                 if (n.get("record_id") or "").startswith(approval["id"] + ":")],
        timeout=30, message="the next approver was not notified")
    ok(system.post(f"/approvals/{approval['id']}/approve", user="chenjing", json={}))
    assert ok(system.get(f"/contracts/{cid}", user="zhangwei"))["status"] == "approved"
    past_draft = system.patch(f"/contracts/{cid}", user="zhangwei", json={"amount": "1"})
    assert past_draft.status_code == 409 and past_draft.json()["record_status"] == "approved"
    assert ok(system.post(f"/contracts/{cid}/sign", user="zhangwei"))["status"] == "active"


def test_an_undecided_step_escalates_to_the_manager_through_the_rules_timer(
        system: System, flow: str) -> None:
    contract = new_contract(system, flow, "2000000")
    cid = contract["id"]
    ok(system.post(f"/contracts/{cid}/submit", user="zhangwei"))
    approval = approval_of(system, "lina", cid)
    escalate_at = datetime.fromisoformat(approval["steps"][0]["escalate_at"])
    now = datetime.fromisoformat(ok(system.get("/system/clock", user="admin"))["now"])
    if escalate_at > now:
        items = ok(system.get("/approvals", user="manager", params={"box": "inbox"}))["items"]
        assert cid not in [a["record_id"] for a in items]
        ok(system.post("/system/clock", user="admin", json={
            "advance_seconds": int((escalate_at - now).total_seconds()) + 2}))
    escalated = system.wait_for(
        lambda: [a for a in ok(system.get("/approvals", user="manager",
                                          params={"box": "inbox"}))["items"]
                 if a["record_id"] == cid],
        timeout=30, message="the step was not escalated to the manager")
    assert escalated[0]["id"] == approval["id"]
    assert set(escalated[0]["pending_approvers"]) == {system.users["lina"],
                                                      system.users["manager"]}
    trail = ok(system.get(f"/approvals/{approval['id']}", user="manager"))["trail"]
    assert [t["to_users"] for t in trail if t["action"] == "escalated"] == [
        [system.users["manager"]]]
    notified = system.wait_for(
        lambda: [n for n in ok(system.get("/notifications", user="manager",
                                          params={"limit": 200}))["items"]
                 if (n.get("record_id") or "").startswith(approval["id"] + ":")],
        timeout=30, message="the manager was not notified")
    assert [n["title"] for n in notified] == ["审批超时，请处理：李娜审批"]

    ok(system.post(f"/approvals/{approval['id']}/approve", user="manager", json={}))
    assert approval_of(system, "chenjing", cid)["current_step"] == 1
    system.wait_for(
        lambda: [n for n in ok(system.get("/notifications", user="chenjing",
                                          params={"limit": 200}))["items"]
                 if (n.get("record_id") or "").startswith(approval["id"] + ":")],
        timeout=30, message="the next approver was not notified")
    ok(system.post(f"/approvals/{approval['id']}/approve", user="chenjing", json={}))
    assert ok(system.post(f"/contracts/{cid}/sign", user="zhangwei"))["status"] == "active"
