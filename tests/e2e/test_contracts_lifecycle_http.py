"""Issue 16's whole path in one run, over HTTP, the real broker and SMTP with the shipped rules:
an opportunity -> a quote with a 15 % discount -> an approval with a countersign (会签) step and
an or-sign (或签) step -> approved, sent, accepted (the opportunity won) -> a contract of the
accepted amount -> a payment plan -> signed (the ERP's order with the quote's lines) -> a
partial payment arriving as an ERP event -> the overdue sweep -> the owner's reminder e-mail at
the test SMTP server, naming the contract and what is still owed."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from kombu import Connection, Exchange, Queue

from tests.e2e import test_contracts_erp_http as erp
from tests.e2e import test_contracts_overdue_http as overdue
from tests.e2e import test_contracts_quote_approval_http as quote_approval
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

seeded = overdue.seeded  # the shipped rules installed, the rules' directory ready
CONTRACTS_EVENTS = Exchange("contracts.events", type="topic", durable=True)
ok, tag = quote_approval.ok, quote_approval.tag


def approval_flow(system: System, region: str) -> dict:
    users = system.users
    return ok(system.post("/approval-flows", user="admin", json={
        "record_type": "quote", "name": f"折扣审批{tag()}",
        "condition": f"discount_percent > 10 and region == '{region}'",
        "steps": [
            {"name": "会签", "mode": "all", "approvers": [
                {"kind": "manager"}, {"kind": "user", "id": users["lina"]}]},
            {"name": "或签", "mode": "any", "approvers": [
                {"kind": "user", "id": users["chenjing"]},
                {"kind": "user", "id": users["liuyang"]}]}]}), 201)


def approved_and_accepted(system: System, region: str, product: dict) -> tuple[dict, dict]:
    opp = quote_approval.opportunity(system, "zhangwei")
    quote = ok(system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "title": "产线改造报价", "valid_until": "2099-12-31",
        "region": region, "discount": {"kind": "percent", "value": "15"},
        "lines": [{"product_id": product["id"], "quantity": "2"}]}), 201)

    def submitted():  # the contracts directory learns zhangwei's manager from gateway events
        response = system.post(f"/quotes/{quote['id']}/submit", user="zhangwei")
        if response.status_code == 422 and "steps.0.approvers" in response.text:
            return None
        return ok(response)

    assert system.wait_for(submitted, timeout=30, interval=0.5)["status"] == "in_approval"
    mine = ok(system.get("/approvals", user="zhangwei", params={"box": "submitted"}))["items"]
    [approval] = [a for a in mine if a["record_id"] == quote["id"]]
    for approver, pending_after in (("manager", "in_approval"), ("lina", "in_approval"),
                                    ("chenjing", "approved")):
        ok(system.post(f"/approvals/{approval['id']}/approve", user=approver,
                       json={"comment": f"{approver} 同意"}))
        assert ok(system.get(f"/quotes/{quote['id']}", user="zhangwei"))["status"] == \
            pending_after
    trail = ok(system.get(f"/approvals/{approval['id']}", user="zhangwei"))
    assert trail["status"] == "approved"
    assert ok(system.post(f"/quotes/{quote['id']}/send", user="zhangwei"))["status"] == "sent"
    accepted = ok(system.post(f"/quotes/{quote['id']}/accept", user="zhangwei", json={}))
    won = ok(system.get(f"/opportunities/{opp['id']}", user="zhangwei"))
    assert won["status"] == "won" and won["amount"] == accepted["totals"]["grand_total"]
    return opp, accepted


def test_from_opportunity_to_the_overdue_reminder(seeded, mailbox) -> None:
    system = seeded
    region = f"LC{tag()}"
    product = ok(system.post("/products", user="manager", json={
        "code": f"MES-{tag()}", "name": "MES 标准版", "unit": "套", "tax_rate": "13"}), 201)
    ok(system.post("/price-books", user="manager", json={
        "name": f"价目表{tag()}", "region": region, "tiers": [
            {"product_id": product["id"], "min_quantity": "0", "unit_price": "100000"}]}), 201)
    flow = approval_flow(system, region)
    try:
        opp, quote = approved_and_accepted(system, region, product)
    finally:
        ok(system.put(f"/approval-flows/{flow['id']}", user="admin", json={
            **{k: flow[k] for k in ("record_type", "name", "condition", "steps")},
            "active": False}))
    amount = quote["totals"]["grand_total"]

    contract = ok(system.post("/contracts", user="zhangwei", json={
        "title": f"产线改造合同{tag()}", "customer_id": opp["customer_id"],
        "opportunity_id": opp["id"], "amount": amount}), 201)
    first_share = (Decimal(amount) * Decimal("0.6")).quantize(Decimal("0.01"))
    plan = ok(system.put(f"/contracts/{contract['id']}/payment-plan", user="zhangwei", json={
        "instalments": [{"due_date": "2027-01-31", "percentage": "60"},
                        {"due_date": "2099-06-30", "percentage": "40"}]}))["items"]
    assert plan[0]["amount"] == str(first_share)

    with Connection(system.amqp_uri) as conn:  # the order the ERP gets, with the quote's lines
        tap = Queue(f"lifecycle-{tag()}", CONTRACTS_EVENTS, routing_key="order_created",
                    auto_delete=True)
        bound = tap.bind(conn.default_channel)
        bound.declare()
        ok(system.post(f"/contracts/{contract['id']}/sign", user="zhangwei"))

        def order_event():
            while (message := bound.get(no_ack=True)) is not None:
                body = json.loads(message.body)
                if body["data"]["order"]["contract_id"] == contract["id"]:
                    return body["data"]["order"]
            return None
        order = system.wait_for(order_event, timeout=30, message="no order_created")
        bound.delete()
    assert order["amount"] == amount and order["source"]["quote_id"] == quote["id"]
    assert [line["product_name"] for line in order["lines"]] == ["MES 标准版"]

    paid = Decimal("50000.00")
    erp.publish_erp(system, "payment_received", {
        "contract_number": contract["number"], "amount": str(paid),
        "paid_at": "2027-01-25T10:00:00+08:00", "reference": f"ERP-{tag()}"})
    receipts = system.wait_for(
        lambda: ok(system.get(f"/contracts/{contract['id']}/receipts",
                              user="zhangwei"))["items"] or None,
        timeout=30, message="the ERP's payment never became a receipt")
    assert [r["amount"] for r in receipts] == [str(paid)]

    swept = ok(system.post("/contracts/overdue-sweeps", user="admin",
                           json={"as_of": "2027-02-10"}))
    outstanding = first_share - paid
    assert [(m["outstanding"], m["days_overdue"]) for m in swept["marked"]
            if m["contract_id"] == contract["id"]] == [(str(outstanding), 10)]
    owner = overdue.email_of(system, "zhangwei")
    reminder = mailbox.wait_for(lambda m: owner in str(m["To"])
                                and contract["number"] in str(m["Subject"]), timeout=30)
    body = reminder.get_body(("plain", "html")).get_content()
    assert contract["number"] in body and str(outstanding) in body
    now = ok(system.get(f"/contracts/{contract['id']}/payment-plan", user="zhangwei"))["items"]
    assert [(i["status"], i["paid"]) for i in now] == [("overdue", str(paid)),
                                                       ("pending", "0.00")]
    owed = ok(system.get(f"/contracts/{contract['id']}/receivables", user="zhangwei"))
    assert (owed["received"], owed["outstanding"]) == (str(paid), str(Decimal(amount) - paid))
