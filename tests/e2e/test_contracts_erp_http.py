"""Orders to the ERP and the ERP's events end to end: the whole system as processes, over HTTP
and the real broker.

An opportunity -> a quote (accepted) -> a contract of its amount with a payment plan ->
signed: `order_created` on `contracts.events` carries the quote's lines -> the ERP publishes
`payment_received` to `erp.events` (twice: one receipt) -> the receipts and receivables over
HTTP show it -> an invoice (开票) recorded over HTTP and one from the ERP's `invoice_issued`
-> the ERP's `order_shipped` marks the order shipped. A rep of another team gets 404 on the
invoices and the order.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Connection, Exchange, Queue

pytestmark = pytest.mark.e2e

ERP = Exchange("erp.events", type="topic", durable=True)
TAX_NUMBER = "91350100M000100Y43"


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def publish_erp(system, event_type: str, data: dict, event_id: str | None = None) -> None:
    envelope = {"event_id": event_id or str(uuid.uuid4()), "event_type": event_type,
                "version": 1, "occurred_at": "2026-12-03T02:00:00+00:00", "producer": "erp",
                "data": data}
    with Connection(system.amqp_uri) as conn:
        conn.Producer().publish(json.dumps(envelope, ensure_ascii=False).encode(),
                                exchange=ERP, routing_key=event_type,
                                content_type="application/json", content_encoding="utf-8",
                                delivery_mode=2, declare=[ERP])


def accepted_quote(system, user: str) -> tuple[dict, dict]:
    customer = ok(system.post("/customers", user=user,
                              json={"name": f"苏州{tag()}自动化有限公司"}), 201)
    contact = ok(system.post("/contacts", user=user, json={
        "customer_id": customer["id"], "name": "李强"}), 201)
    opp = ok(system.post("/opportunities", user=user, json={
        "customer_id": customer["id"], "name": "产线改造", "contact_id": contact["id"],
        "expected_close_date": "2026-12-31", "products": ["MES"]}), 201)
    ok(system.post("/followups", user=user, json={
        "kind": "meeting", "opportunity_id": opp["id"], "tags": ["needs_analysis"]}), 201)
    software = ok(system.post("/products", user="manager", json={
        "code": f"ERP-SW-{tag()}", "name": "产线软件", "unit": "套", "tax_rate": "13"}), 201)
    service = ok(system.post("/products", user="manager", json={
        "code": f"ERP-SV-{tag()}", "name": "调试服务", "unit": "人天", "tax_rate": "6"}), 201)
    quote = ok(system.post("/quotes", user=user, json={
        "opportunity_id": opp["id"], "title": "产线改造报价", "valid_until": "2099-12-31",
        "lines": [
            {"product_id": software["id"], "quantity": "2", "unit_price": "3000",
             "discount": {"kind": "percent", "value": "5"}},
            {"product_id": service["id"], "quantity": "4", "unit_price": "800"}]}), 201)
    assert ok(system.post(f"/quotes/{quote['id']}/submit", user=user))["status"] == "approved"
    accepted = ok(system.post(f"/quotes/{quote['id']}/accept", user=user, json={}))
    assert accepted["status"] == "accepted"
    return opp, accepted


def test_order_lines_erp_payment_invoices_and_shipment(system):
    opp, quote = accepted_quote(system, "zhangwei")
    amount = quote["totals"]["grand_total"]  # 5700 + 741 + 3200 + 192 = 9833.00
    assert amount == "9833.00"
    contract = ok(system.post("/contracts", user="zhangwei", json={
        "title": "产线改造合同", "customer_id": opp["customer_id"],
        "opportunity_id": opp["id"], "amount": amount}), 201)
    cid = contract["id"]
    plan = ok(system.put(f"/contracts/{cid}/payment-plan", user="zhangwei", json={
        "instalments": [{"due_date": "2099-01-31", "percentage": "30"},
                        {"due_date": "2099-06-30", "percentage": "70"}]}))["items"]
    problem(system.get(f"/contracts/{cid}/order", user="zhangwei"), 404)  # not signed yet

    tap = Queue(f"tap-erp-{tag()}", Exchange("contracts.events", type="topic", durable=True),
                routing_key="order_created", durable=False, auto_delete=False)
    with Connection(system.amqp_uri) as conn:
        tap.bind(conn.default_channel).declare()
        ok(system.post(f"/contracts/{cid}/sign", user="zhangwei"))
        bound = tap.bind(conn.default_channel)

        def order_event():
            while (message := bound.get(no_ack=True)) is not None:
                body = json.loads(message.body)
                if body["data"]["order"]["contract_id"] == cid:
                    return body
            return None
        event = system.wait_for(order_event, timeout=30, message="no order_created")
        bound.delete()
    order = event["data"]["order"]
    assert order["contract_number"] == contract["number"] and order["amount"] == amount
    assert order["source"] == {"kind": "quote", "quote_id": quote["id"], "quote_version": 1}
    assert [(line["product_name"], line["unit"], line["quantity"], line["unit_price"],
             line["discount"], line["tax_rate"], line["net"], line["tax"], line["total"])
            for line in order["lines"]] == [
        ("产线软件", "套", "2", "3000", "300.00", "13", "5700.00", "741.00", "6441.00"),
        ("调试服务", "人天", "4", "800", "0.00", "6", "3200.00", "192.00", "3392.00")]
    assert ok(system.get(f"/contracts/{cid}/order", user="zhangwei"))["lines"] == \
        order["lines"]

    payment = {"order_number": order["number"], "amount": "3000.00",
               "paid_at": "2026-12-02T15:30:00+08:00", "reference": f"ERP-PAY-{tag()}",
               "payer": "苏州某某自动化有限公司"}
    message_id = str(uuid.uuid4())
    publish_erp(system, "payment_received", payment, message_id)
    publish_erp(system, "payment_received", payment, message_id)  # the ERP sent it twice
    publish_erp(system, "payment_received", payment)  # and once more under a new id
    receipts = system.wait_for(
        lambda: ok(system.get(f"/contracts/{cid}/receipts", user="zhangwei"))["items"] or None,
        timeout=30, message="the ERP's payment never became a receipt")
    # a later payment proves the duplicates before it were handled (one queue, in order)
    publish_erp(system, "payment_received", {**payment, "amount": "1.00",
                                             "reference": f"ERP-PAY-{tag()}"})
    system.wait_for(lambda: len(ok(system.get(f"/contracts/{cid}/receipts",
                                              user="zhangwei"))["items"]) == 2, timeout=30)
    receipts = ok(system.get(f"/contracts/{cid}/receipts", user="zhangwei"))["items"]
    first = receipts[0]
    assert (first["amount"], first["method"], first["reference"], first["received_on"]) == (
        "3000.00", "erp", payment["reference"], "2026-12-02")
    assert first["allocations"] == [{"instalment_id": plan[0]["id"], "amount": "2949.90"},
                                    {"instalment_id": plan[1]["id"], "amount": "50.10"}]
    figures = ok(system.get(f"/contracts/{cid}/receivables", user="zhangwei"))
    assert (figures["received"], figures["outstanding"], figures["invoiced"],
            figures["uninvoiced"]) == ("3001.00", "6832.00", "0.00", amount)

    # an invoice over HTTP, for the ERP's receipt
    body = {"title": "苏州某某自动化有限公司", "tax_number": TAX_NUMBER, "type": "special",
            "number": f"{uuid.uuid4().int % 10**8:08d}", "issued_on": "2026-12-03",
            "amount": "3000.00", "receipt_id": first["id"]}
    bad = problem(system.post(f"/contracts/{cid}/invoices", user="zhangwei",
                              json={**body, "tax_number": "91350100M000100Y44"}), 422)
    assert "tax_number" in str(bad["errors"])
    over = problem(system.post(f"/contracts/{cid}/invoices", user="zhangwei",
                               json={**body, "amount": "3000.01"}), 422)
    assert "amount" in str(over["errors"])
    invoice = ok(system.post(f"/contracts/{cid}/invoices", user="zhangwei", json=body), 201)
    assert invoice["status"] == "issued" and invoice["source"] == "user"
    taken = problem(system.post(f"/contracts/{cid}/invoices", user="zhangwei",
                                json={**body, "amount": "1", "receipt_id": None}), 409)
    assert "number" in taken["detail"]
    problem(system.get(f"/contracts/{cid}/invoices", user="chenjing"), 404)
    problem(system.post(f"/contracts/{cid}/invoices", user="chenjing",
                        json={**body, "number": "x"}), 404)
    problem(system.get(f"/contracts/{cid}/order", user="chenjing"), 404)

    # one from the ERP, for the instalment
    publish_erp(system, "invoice_issued", {
        "contract_number": contract["number"], "reference": f"ERP-INV-{tag()}",
        "title": "苏州某某自动化有限公司", "type": "electronic",
        "number": f"{uuid.uuid4().int % 10**20:020d}", "issued_on": "2026-12-04",
        "amount": "1000.00", "instalment_id": plan[1]["id"]})
    invoices = system.wait_for(
        lambda: (lambda items: items if len(items) == 2 else None)(
            ok(system.get(f"/contracts/{cid}/invoices", user="zhangwei"))["items"]),
        timeout=30, message="the ERP's invoice never arrived")
    assert [(i["source"], i["type"], i["amount"]) for i in invoices] == [
        ("user", "special", "3000.00"), ("erp", "electronic", "1000.00")]
    voided = ok(system.post(f"/contracts/{cid}/invoices/{invoice['id']}/void",
                            user="zhangwei", json={"reason": "抬头有误"}))
    assert voided["status"] == "void"
    figures = ok(system.get(f"/contracts/{cid}/receivables", user="zhangwei"))
    assert (figures["invoiced"], figures["uninvoiced"]) == ("1000.00", "8833.00")

    publish_erp(system, "order_shipped", {"order_number": order["number"],
                                          "shipped_at": "2026-12-05T09:00:00+08:00",
                                          "reference": "DN-1"})
    shipped = system.wait_for(
        lambda: (lambda o: o if o["status"] == "shipped" else None)(
            ok(system.get(f"/contracts/{cid}/order", user="zhangwei"))),
        timeout=30, message="the ERP's shipment never arrived")
    assert shipped["shipped_at"].startswith("2026-12-05T01:00:00")
