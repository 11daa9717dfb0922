"""Contracts and payment collection (回款) end to end: the whole system as processes, over HTTP.

A rep makes a contract for a customer of theirs -> a payment plan of two instalments (a plan
over the contract amount is a 422 naming `instalments`) -> signed (active) -> a partial receipt
-> the receivables show what is received and outstanding. A rep of another team gets 404 for
every route of the contract, like for a missing one.
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def test_contract_plan_sign_receipt_and_receivables(system):
    customer = ok(system.post("/customers", user="zhangwei",
                              json={"name": f"常州{tag()}机电有限公司"}), 201)
    bad = problem(system.post("/contracts", user="zhangwei", json={
        "title": "x", "customer_id": customer["id"], "amount": "-1"}), 422)
    assert "amount" in str(bad)
    hidden = problem(system.post("/contracts", user="chenjing", json={
        "title": "x", "customer_id": customer["id"], "amount": "10"}), 422)
    assert "customer_id" in str(hidden)

    created = system.post("/contracts", user="zhangwei", json={
        "title": "MES 实施合同", "customer_id": customer["id"], "amount": "100000"})
    contract = ok(created, 201)
    assert created.headers["Location"] == f"/contracts/{contract['id']}"
    assert contract["status"] == "draft" and contract["amount"] == "100000.00"
    assert contract["number"].startswith("HT-") and contract["owner_id"] == system.users[
        "zhangwei"]
    cid = contract["id"]
    assert ok(system.get(f"/contracts/{cid}", user="zhangwei"))["number"] == contract["number"]
    listed = ok(system.get("/contracts", user="zhangwei",
                           params={"customer_id": customer["id"]}))
    assert [c["id"] for c in listed["items"]] == [cid]

    over = problem(system.put(f"/contracts/{cid}/payment-plan", user="zhangwei", json={
        "instalments": [{"due_date": "2027-01-31", "percentage": "60"},
                        {"due_date": "2027-06-30", "amount": "40000.01"}]}), 422)
    assert "instalments" in str(over)
    plan = ok(system.put(f"/contracts/{cid}/payment-plan", user="zhangwei", json={
        "instalments": [{"due_date": "2099-06-30", "amount": "40000"},
                        {"due_date": "2099-01-31", "percentage": "60"}]}))["items"]
    assert [(p["seq"], p["due_date"], p["amount"], p["status"]) for p in plan] == [
        (1, "2099-01-31", "60000.00", "pending"), (2, "2099-06-30", "40000.00", "pending")]

    signed = ok(system.post(f"/contracts/{cid}/sign", user="zhangwei"))
    assert signed["status"] == "active"
    again = problem(system.post(f"/contracts/{cid}/sign", user="zhangwei"), 409)
    assert "active" in str(again)

    receipt = ok(system.post(f"/contracts/{cid}/receipts", user="zhangwei", json={
        "amount": "25000", "received_on": "2027-01-20", "method": "bank",
        "reference": "TT-001"}), 201)
    assert receipt["amount"] == "25000.00"
    assert receipt["allocations"] == [{"instalment_id": plan[0]["id"], "amount": "25000.00"}]
    receipts = ok(system.get(f"/contracts/{cid}/receipts", user="zhangwei"))["items"]
    assert [(r["id"], r["reference"]) for r in receipts] == [(receipt["id"], "TT-001")]
    assert ok(system.get(f"/contracts/{cid}/receivables", user="zhangwei")) == {
        "contract_amount": "100000.00", "received": "25000.00", "outstanding": "75000.00",
        "overdue": "0.00", "invoiced": "0.00", "uninvoiced": "100000.00"}
    problem(system.post(f"/contracts/{cid}/terminate", user="zhangwei", json={}), 422)

    # another team's rep: 404 everywhere, like a missing contract; the manager of the
    # owner's team and the admin see it
    for method, path, body in (
            ("get", f"/contracts/{cid}", None), ("post", f"/contracts/{cid}/sign", None),
            ("post", f"/contracts/{cid}/terminate", {"reason": "x"}),
            ("put", f"/contracts/{cid}/payment-plan", {"instalments": []}),
            ("post", f"/contracts/{cid}/receipts", {"amount": "1", "received_on": "2027-01-01"}),
            ("get", f"/contracts/{cid}/receipts", None),
            ("get", f"/contracts/{cid}/receivables", None)):
        kwargs = {} if body is None else {"json": body}
        problem(getattr(system, method)(path, user="chenjing", **kwargs), 404)
    assert cid not in {c["id"] for c in ok(system.get("/contracts", user="chenjing"))["items"]}
    for viewer in ("manager", "admin"):
        assert ok(system.get(f"/contracts/{cid}", user=viewer))["status"] == "active"
    assert ok(system.get(f"/contracts/{cid}/receivables", user="zhangwei"))["received"] == (
        "25000.00")

    ended = ok(system.post(f"/contracts/{cid}/terminate", user="zhangwei",
                           json={"reason": "客户破产"}))
    assert ended["status"] == "terminated"
