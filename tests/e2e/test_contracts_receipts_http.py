"""Receipts' payer and source, contracts made from an accepted quote and one clause shape, end
to end over HTTP with the real broker (issue 16, c-receipts).

An accepted quote -> `POST /contracts` with its `quote_id` (no amount: the quote's grand
total; the quote's lines in the ERP order after signing; a rep of another team gets the 422 a
random id gets) -> a user's receipt with a trimmed payer, an ERP payment with payer, account
and reference -> both in `/receipts` with `source`, and in the collection drill-down. The
same clauses body is valid for `POST /contracts` and `PATCH /contracts/{id}`; a bad clause is
a 422 naming `clauses.0.title`. A contract in approval: the user's receipt is the lock's 409,
the ERP's payment is recorded (source erp).
"""

from __future__ import annotations

import pytest

from tests.e2e.system import System
from tests.e2e.test_contracts_contract_approval_http import flow, locked  # noqa: F401
from tests.e2e.test_contracts_erp_http import accepted_quote, ok, problem, publish_erp, tag

pytestmark = pytest.mark.e2e

CLAUSES = [{"code": "warranty", "title": "质保", "text": "质保期一年。"},
           {"code": "payment", "title": None, "text": "30 日内付款。"}]


def test_a_contract_from_a_quote_with_payers_of_users_and_the_erp(system: System) -> None:
    opp, quote = accepted_quote(system, "zhangwei")
    body = {"title": "来自报价的合同", "customer_id": opp["customer_id"],
            "quote_id": quote["id"], "clauses": CLAUSES}
    # another team's rep: the quote is hidden, answered like a random id
    hidden = problem(system.post("/contracts", user="chenjing", json=body), 422)
    assert list(hidden["errors"]) == ["quote_id"]
    contract = ok(system.post("/contracts", user="zhangwei", json=body), 201)
    cid = contract["id"]
    assert (contract["quote_id"], contract["opportunity_id"], contract["amount"]) == (
        quote["id"], opp["id"], quote["totals"]["grand_total"])
    assert contract["clauses"] == CLAUSES
    assert ok(system.get(f"/contracts/{cid}", user="zhangwei"))["quote_id"] == quote["id"]
    # the same clauses body is valid for PATCH; a bad one names the field
    patched = ok(system.patch(f"/contracts/{cid}", user="zhangwei",
                              json={"clauses": CLAUSES[::-1]}))
    assert patched["clauses"] == CLAUSES[::-1]
    bad = problem(system.patch(f"/contracts/{cid}", user="zhangwei", json={
        "clauses": [{**CLAUSES[0], "title": "长" * 201}]}), 422)
    assert list(bad["errors"]) == ["clauses.0.title"]
    bad = problem(system.post("/contracts", user="zhangwei", json={
        **body, "clauses": [{"title": "保密", "text": "x"}]}), 422)
    assert list(bad["errors"]) == ["clauses.0.code"]
    ok(system.post(f"/contracts/{cid}/sign", user="zhangwei"))
    order = ok(system.get(f"/contracts/{cid}/order", user="zhangwei"))
    assert order["source"]["kind"] == "quote" and order["source"]["quote_id"] == quote["id"]
    assert len(order["lines"]) == 2

    bad = problem(system.post(f"/contracts/{cid}/receipts", user="zhangwei", json={
        "amount": "1", "received_on": "2026-12-01", "payer": {"name": "  "}}), 422)
    assert list(bad["errors"]) == ["payer.name"]
    receipt = ok(system.post(f"/contracts/{cid}/receipts", user="zhangwei", json={
        "amount": "100", "received_on": "2026-12-01",
        "payer": {"name": " 苏州某某 ", "account": "6222 0000", "reference": "首付"}}), 201)
    assert receipt["payer"] == {"name": "苏州某某", "account": "6222 0000",
                                "reference": "首付"}
    assert receipt["source"] == "user"
    reference = f"ERP-PAY-{tag()}"
    publish_erp(system, "payment_received", {
        "contract_number": contract["number"], "amount": "200.00",
        "paid_at": "2026-12-02T15:30:00+08:00", "reference": reference,
        "payer": "苏州某某自动化有限公司", "payer_account": "31050161373600000123",
        "payer_reference": "货款"})
    system.wait_for(lambda: len(ok(system.get(f"/contracts/{cid}/receipts",
                                              user="zhangwei"))["items"]) == 2,
                    timeout=30, message="the ERP's payment never became a receipt")
    user_receipt, erp_receipt = ok(system.get(f"/contracts/{cid}/receipts",
                                              user="zhangwei"))["items"]
    assert user_receipt["id"] == receipt["id"] and user_receipt["source"] == "user"
    assert erp_receipt["source"] == "erp" and erp_receipt["payer"] == {
        "name": "苏州某某自动化有限公司", "account": "31050161373600000123",
        "reference": "货款"}
    drill = ok(system.get("/reports/collection/records", user="zhangwei", params={
        "date_from": "2026-12-01", "date_to": "2026-12-31", "customer_id": opp["customer_id"],
        "month": "2026-12", "kind": "received"}))["items"]
    assert sorted((r["source"], r["payer"]["name"]) for r in drill) == [
        ("erp", "苏州某某自动化有限公司"), ("user", "苏州某某")]


def test_an_erp_payment_during_approval_is_recorded_a_users_receipt_is_locked(
        system: System, flow: str) -> None:  # noqa: F811
    customer = ok(system.post("/customers", user="zhangwei",
                              json={"name": f"无锡{tag()}预付有限公司"}), 201)
    contract = ok(system.post("/contracts", user="zhangwei", json={
        "title": flow, "customer_id": customer["id"], "amount": "1500000"}), 201)
    cid = contract["id"]
    assert ok(system.post(f"/contracts/{cid}/submit", user="zhangwei"))["status"] == \
        "in_approval"
    locked(system.post(f"/contracts/{cid}/receipts", user="zhangwei", json={
        "amount": "100", "received_on": "2026-12-01", "payer": {"name": "某某"}}))
    publish_erp(system, "payment_received", {
        "contract_number": contract["number"], "amount": "300000.00",
        "paid_at": "2026-12-02T10:00:00+08:00", "reference": f"PRE-{tag()}",
        "payer": "无锡预付"})
    (receipt,) = system.wait_for(
        lambda: ok(system.get(f"/contracts/{cid}/receipts", user="zhangwei"))["items"] or None,
        timeout=30, message="the ERP's payment during approval was not recorded")
    assert (receipt["source"], receipt["amount"], receipt["payer"]["name"]) == (
        "erp", "300000.00", "无锡预付")
    assert ok(system.get(f"/contracts/{cid}", user="zhangwei"))["status"] == "in_approval"
    assert ok(system.get(f"/contracts/{cid}/receivables",
                         user="zhangwei"))["received"] == "300000.00"
