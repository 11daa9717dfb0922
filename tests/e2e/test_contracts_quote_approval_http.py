"""Quote approval end to end, over HTTP: an admin defines a flow for quotes with a condition on
the discount (`discount_percent > 10`, and this test's own region so other tests' quotes are
not caught), a 会签 step (the submitter's manager and lina) then a 或签 step (chenjing or
liuyang). A rep's quote with a 15 % discount goes to approval and is locked (PATCH 409);
both countersigners and one or-signer approve -> the quote is approved, is sent and accepted,
and the opportunity moves to won. A quote with a 5 % discount is approved at once."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def opportunity(system: System, user: str) -> dict:
    customer = ok(system.post("/customers", user=user,
                              json={"name": f"常州{tag()}自动化有限公司"}), 201)
    contact = ok(system.post("/contacts", user=user, json={
        "customer_id": customer["id"], "name": "李娜"}), 201)
    opp = ok(system.post("/opportunities", user=user, json={
        "customer_id": customer["id"], "name": "产线改造", "contact_id": contact["id"],
        "expected_close_date": "2026-12-31", "products": ["MES"]}), 201)
    ok(system.post("/followups", user=user, json={
        "kind": "meeting", "opportunity_id": opp["id"], "tags": ["needs_analysis"]}), 201)
    return opp


def test_a_discounted_quote_is_approved_by_countersign_then_or_sign(system: System) -> None:
    users = system.users
    region = f"QA{tag()}"
    mes = ok(system.post("/products", user="manager", json={
        "code": f"MES-{tag()}", "name": "MES 标准版", "unit": "套", "tax_rate": "13"}), 201)
    ok(system.post("/price-books", user="manager", json={
        "name": f"审批价目表{tag()}", "region": region, "tiers": [
            {"product_id": mes["id"], "min_quantity": "0", "unit_price": "100000"}]}), 201)
    flow = ok(system.post("/approval-flows", user="admin", json={
        "record_type": "quote", "name": f"报价折扣审批{tag()}",
        "condition": f"discount_percent > 10 and region == '{region}'",
        "steps": [
            {"name": "会签", "mode": "all", "approvers": [
                {"kind": "manager"}, {"kind": "user", "id": users["lina"]}]},
            {"name": "或签", "mode": "any", "approvers": [
                {"kind": "user", "id": users["chenjing"]},
                {"kind": "user", "id": users["liuyang"]}]}]}), 201)
    try:
        _big_discount_goes_through_the_flow(system, mes, region)
        _small_discount_is_approved_at_once(system, mes, region)
    finally:
        ok(system.put(f"/approval-flows/{flow['id']}", user="admin", json={
            **{k: flow[k] for k in ("record_type", "name", "condition", "steps")},
            "active": False}))


def _quote(system: System, mes: dict, region: str, percent: str) -> tuple[dict, dict]:
    opp = opportunity(system, "zhangwei")
    quote = ok(system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "title": "产线改造报价", "valid_until": "2099-12-31",
        "region": region, "discount": {"kind": "percent", "value": percent},
        "lines": [{"product_id": mes["id"], "quantity": "2"}]}), 201)
    assert quote["totals"]["subtotal"] == "200000.00"
    return quote, opp


def _big_discount_goes_through_the_flow(system: System, mes: dict, region: str) -> None:
    users = system.users
    quote, opp = _quote(system, mes, region, "15")

    def submitted():  # the contracts directory learns zhangwei's manager from gateway events
        response = system.post(f"/quotes/{quote['id']}/submit", user="zhangwei")
        if response.status_code == 422 and "steps.0.approvers" in response.text:
            return None
        return ok(response)

    in_approval = system.wait_for(submitted, timeout=30, interval=0.5,
                                  message="the contracts directory never learnt the manager")
    assert in_approval["status"] == "in_approval"
    mine = ok(system.get("/approvals", user="zhangwei", params={"box": "submitted"}))
    [approval] = [a for a in mine["items"] if a["record_id"] == quote["id"]]
    assert approval["record_type"] == "quote" and approval["status"] == "pending"
    assert approval["terms"]["discount_percent"] == "15.00"
    assert approval["terms"]["totals"]["grand_total"] == quote["totals"]["grand_total"]
    assert sorted(approval["pending_approvers"]) == sorted([users["manager"], users["lina"]])
    approval_id = approval["id"]

    locked = system.patch(f"/quotes/{quote['id']}", user="zhangwei", json={"title": "改"})
    assert locked.status_code == 409, locked.text
    assert "locked while in approval" in locked.json()["detail"]
    send = system.post(f"/quotes/{quote['id']}/send", user="zhangwei")
    assert send.status_code == 409, send.text
    own = system.post(f"/approvals/{approval_id}/approve", user="zhangwei", json={})
    assert own.status_code == 403, own.text

    assert approval_id in [a["id"] for a in ok(system.get("/approvals", user="lina"))["items"]]
    after = ok(system.post(f"/approvals/{approval_id}/approve", user="manager",
                           json={"comment": "同意", "terms_hash": approval["terms_hash"]}))
    assert after["pending_approvers"] == [users["lina"]]
    after = ok(system.post(f"/approvals/{approval_id}/approve", user="lina",
                           json={"comment": "可以"}))
    assert after["current_step"] == 1
    assert ok(system.get(f"/quotes/{quote['id']}", user="zhangwei"))["status"] == "in_approval"
    done = ok(system.post(f"/approvals/{approval_id}/approve", user="liuyang",
                          json={"comment": "无异议"}))
    assert done["status"] == "approved"
    read = ok(system.get(f"/quotes/{quote['id']}", user="zhangwei"))
    assert read["status"] == "approved"
    assert read["status_reason"] == f"approval {approval_id} approved"

    assert ok(system.post(f"/quotes/{quote['id']}/send", user="zhangwei"))["status"] == "sent"
    accepted = ok(system.post(f"/quotes/{quote['id']}/accept", user="zhangwei",
                              json={"reason": "客户盖章"}))
    assert accepted["status"] == "accepted"
    moved = ok(system.get(f"/opportunities/{opp['id']}", user="zhangwei"))
    assert moved["status"] == "won" and moved["amount"] == accepted["totals"]["grand_total"]


def _small_discount_is_approved_at_once(system: System, mes: dict, region: str) -> None:
    quote, _ = _quote(system, mes, region, "5")
    approved = ok(system.post(f"/quotes/{quote['id']}/submit", user="zhangwei"))
    assert approved["status"] == "approved"
    mine = ok(system.get("/approvals", user="zhangwei", params={"box": "submitted"}))
    assert quote["id"] not in [a["record_id"] for a in mine["items"]]
