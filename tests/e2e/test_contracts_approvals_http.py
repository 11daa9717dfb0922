"""Approvals end to end: an admin defines a flow over HTTP, a service submits a record of a
generic type over RPC (the real broker), a 会签 step (manager and zhangwei both) and a 或签
step (lina or chenjing, the first answer decides) are answered over HTTP by the demo users;
the trail shows every opinion on the terms' hash; those not involved get 404."""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_countersign_then_or_sign_over_http(system: System) -> None:
    users = system.users
    record_type = f"purchase_{uuid.uuid4().hex[:8]}"
    definition = {
        "record_type": record_type, "name": "采购审批", "condition": "amount >= 1000",
        "steps": [
            {"name": "会签", "mode": "all", "approvers": [
                {"kind": "user", "id": users["manager"]},
                {"kind": "user", "id": users["zhangwei"]}]},
            {"name": "或签", "mode": "any", "approvers": [
                {"kind": "user", "id": users["lina"]},
                {"kind": "user", "id": users["chenjing"]}]},
        ]}
    assert system.post("/approval-flows", user="manager", json=definition).status_code == 403
    flow = _ok(system.post("/approval-flows", user="admin", json=definition), 201)
    assert flow["record_type"] == record_type and flow["version"] == 1
    bad = system.post("/approval-flows", user="admin", json={
        "record_type": record_type, "name": "x",
        "steps": [{"mode": "quorum", "approvers": [{"kind": "user", "id": users["lina"]}]}]})
    assert bad.status_code == 422 and "steps.0.quorum" in bad.json()["errors"], bad.text

    terms = {"amount": "5000.00", "supplier": "苏州精工", "lines": [{"sku": "A-1", "qty": 2}]}
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
        instance = rpc.contracts.submit_for_approval(
            data={"record_type": record_type, "record_id": "PO-1", "terms": terms},
            submitter=users["admin"])
    approval_id = instance["id"]

    inbox = _ok(system.get("/approvals", user="manager"))
    assert approval_id in [item["id"] for item in inbox["items"]]
    assert approval_id not in [i["id"] for i in _ok(system.get("/approvals", user="lina"))["items"]]
    # lina is asked later (step 2), liuyang never: neither sees it yet
    for outsider in ("lina", "liuyang"):
        assert system.get(f"/approvals/{approval_id}", user=outsider).status_code == 404
        assert system.post(f"/approvals/{approval_id}/approve", user=outsider,
                           json={}).status_code == 404

    after = _ok(system.post(f"/approvals/{approval_id}/approve", user="manager",
                            json={"comment": "同意", "terms_hash": instance["terms_hash"]}))
    assert after["pending_approvers"] == [users["zhangwei"]] and after["current_step"] == 0
    stale = system.post(f"/approvals/{approval_id}/approve", user="zhangwei",
                        json={"terms_hash": "0" * 64})
    assert stale.status_code == 409, stale.text
    after = _ok(system.post(f"/approvals/{approval_id}/approve", user="zhangwei",
                            json={"comment": "可以"}))
    assert after["current_step"] == 1
    assert sorted(after["pending_approvers"]) == sorted([users["lina"], users["chenjing"]])
    assert approval_id in [i["id"] for i in _ok(system.get("/approvals", user="chenjing"))["items"]]

    done = _ok(system.post(f"/approvals/{approval_id}/approve", user="chenjing",
                           json={"comment": "法务无异议"}))
    assert done["status"] == "approved" and done["pending_approvers"] == []
    late = system.post(f"/approvals/{approval_id}/approve", user="lina", json={})
    assert late.status_code == 412, late.text

    seen = _ok(system.get(f"/approvals/{approval_id}", user="zhangwei"))
    assert [(t["actor"], t["action"], t["comment"]) for t in seen["trail"]] == [
        (users["admin"], "submitted", None), (users["manager"], "approve", "同意"),
        (users["zhangwei"], "approve", "可以"), (users["chenjing"], "approve", "法务无异议"),
        (None, "approved", None)]
    assert {t["terms_hash"] for t in seen["trail"]} == {instance["terms_hash"]}
    assert _ok(system.get(f"/approvals/{approval_id}", user="admin"))["status"] == "approved"
    assert system.get(f"/approvals/{approval_id}", user="liuyang").status_code == 404

    # the approved terms changed: the approval is void and says why
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
        verdict = rpc.contracts.verify_approval(
            record_type=record_type, record_id="PO-1",
            current_terms={**terms, "amount": "4000.00"})
    assert verdict["valid"] is False and "changed after approval" in verdict["reason"]
    assert _ok(system.get(f"/approvals/{approval_id}", user="manager"))["status"] == "voided"


def test_manager_from_the_directory_delegate_reject_to_previous_and_recall(system: System):
    """The submitter's manager comes from the gateway's directory events; the manager delegates,
    the next step sends the approval back to the previous one, the submitter recalls."""
    users = system.users
    record_type = f"expense_{uuid.uuid4().hex[:8]}"
    _ok(system.post("/approval-flows", user="admin", json={
        "record_type": record_type, "name": "报销",
        "steps": [{"name": "主管", "approvers": [{"kind": "manager"}]},
                  {"name": "管理员", "approvers": [{"kind": "user", "id": users["admin"]}],
                   "on_reject": "previous"}]}), 201)

    def submitted():
        with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
            try:
                return rpc.contracts.submit_for_approval(
                    data={"record_type": record_type, "record_id": "EX-1",
                          "terms": {"amount": "88.00"}}, submitter=users["lina"])
            except Exception as exc:  # the directory projection not there yet: 422
                if "steps.0.approvers" not in str(exc.args):
                    raise
                return None

    instance = system.wait_for(submitted, timeout=30, interval=0.5,
                               message="the contracts directory never learnt lina's manager")
    approval_id = instance["id"]
    assert instance["pending_approvers"] == [users["manager"]]

    bad = system.post(f"/approvals/{approval_id}/delegate", user="manager",
                      json={"to_user": "x" * 37})
    assert bad.status_code == 422 and "to_user" in bad.json()["errors"], bad.text
    delegated = _ok(system.post(f"/approvals/{approval_id}/delegate", user="manager",
                                json={"to_user": users["zhangwei"], "comment": "请代批"}))
    assert delegated["pending_approvers"] == [users["zhangwei"]]
    assert system.post(f"/approvals/{approval_id}/approve", user="manager",
                       json={}).status_code == 404
    _ok(system.post(f"/approvals/{approval_id}/approve", user="zhangwei", json={}))
    back = _ok(system.post(f"/approvals/{approval_id}/reject", user="admin",
                           json={"comment": "请主管复核"}))
    assert back["status"] == "pending" and back["current_step"] == 0
    assert back["pending_approvers"] == [users["zhangwei"]]

    assert system.post(f"/approvals/{approval_id}/recall", user="zhangwei",
                       json={}).status_code == 403
    assert system.post(f"/approvals/{approval_id}/recall", user="liuyang",
                       json={}).status_code == 404
    recalled = _ok(system.post(f"/approvals/{approval_id}/recall", user="lina",
                               json={"comment": "重新提交"}))
    assert recalled["status"] == "recalled"
    assert [t["action"] for t in recalled["trail"]] == [
        "submitted", "delegated", "approve", "reject", "returned", "recalled"]
    handed = recalled["trail"][1]
    assert (handed["actor"], handed["to_user"], handed["comment"]) == (
        users["manager"], users["zhangwei"], "请代批")
    assert "to_user" not in recalled["trail"][0]

    # 我提交的: the submitter's own, whatever the status; not the approvers', not another team's
    mine = _ok(system.get("/approvals", user="lina", params={"box": "submitted"}))
    assert approval_id in [item["id"] for item in mine["items"]]
    assert all(item["submitter"] == users["lina"] for item in mine["items"])
    assert [i for i in mine["items"] if i["id"] == approval_id][0]["status"] == "recalled"
    first = _ok(system.get("/approvals", user="lina", params={"box": "submitted", "limit": 1}))
    assert len(first["items"]) == 1
    for other in ("manager", "zhangwei", "chenjing"):
        theirs = _ok(system.get("/approvals", user=other, params={"box": "submitted"}))
        assert approval_id not in [item["id"] for item in theirs["items"]], other
    assert approval_id not in [
        i["id"] for i in _ok(system.get("/approvals", user="lina"))["items"]]
    bad_box = system.get("/approvals", user="lina", params={"box": "all"})
    assert bad_box.status_code == 422 and "box" in bad_box.json()["errors"], bad_box.text
