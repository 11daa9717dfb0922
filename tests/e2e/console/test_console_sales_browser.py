"""The opportunity and contract pages in headless Chromium against the whole system (console-
sales): a rep opens an opportunity from the board, makes a quote from a price book and sees it
listed; opens a contract from the customer 360 and sees its payment plan; a rep of another team
gets neither. A rep sets a draft contract's payment plan (a sum over the amount refused first),
signs it, records a partial receipt and issues an invoice (console-writes). Screenshots go to
var/test-artefacts/console/ (100-110)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.console.browser import ARTEFACTS, PHONE, run_scenario
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, OTHER_TEAM_REP = "zhangwei", "chenjing"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:500])
    return response.json()


@pytest.fixture(scope="module")
def records(system: System) -> dict[str, Any]:
    """A customer of the rep with a contact, an opportunity, a product in a price book, and an
    active contract with a two-instalment plan, part of the first paid."""
    tag = secrets.token_hex(3)
    customer = _ok(system.post("/customers", user=REP,
                               json={"name": f"昆山{tag}控制台精密有限公司"}), 201)
    contact = _ok(system.post("/contacts", user=REP, json={
        "customer_id": customer["id"], "name": f"周{tag}", "role": "decision_maker"}), 201)
    opportunity = _ok(system.post("/opportunities", user=REP, json={
        "customer_id": customer["id"], "name": f"控制台商机{tag}", "contact_id": contact["id"],
        "amount": "380000.00", "expected_close_date": "2027-03-31"}), 201)
    product = _ok(system.post("/products", user="manager", json={
        "code": f"CON-{tag}", "name": f"控制台产品{tag}", "unit": "套", "tax_rate": "13"}), 201)
    book = _ok(system.post("/price-books", user="manager", json={
        "name": f"控制台价目表{tag}", "region": f"R{tag}", "tiers": [
            {"product_id": product["id"], "min_quantity": "0", "unit_price": "100000"},
            {"product_id": product["id"], "min_quantity": "3", "unit_price": "95000"}]}), 201)
    contract = _ok(system.post("/contracts", user=REP, json={
        "title": f"控制台合同{tag}", "customer_id": customer["id"],
        "opportunity_id": opportunity["id"], "amount": "100000"}), 201)
    _ok(system.put(f"/contracts/{contract['id']}/payment-plan", user=REP, json={
        "instalments": [{"due_date": "2099-01-31", "percentage": "60"},
                        {"due_date": "2099-06-30", "amount": "40000"}]}))
    _ok(system.post(f"/contracts/{contract['id']}/sign", user=REP))
    _ok(system.post(f"/contracts/{contract['id']}/receipts", user=REP, json={
        "amount": "25000", "received_on": "2027-01-20", "method": "bank",
        "reference": "TT-CONSOLE"}), 201)
    tier = next(t for t in book["tiers"] if t["min_quantity"].startswith("3"))
    return {
        "customer_id": customer["id"], "contact_name": contact["name"],
        "opportunity_id": opportunity["id"], "opportunity_name": opportunity["name"],
        "product_name": product["name"], "book_name": book["name"],
        "tier_price": tier["unit_price"], "contract_id": contract["id"],
        "contract_title": contract["title"], "markers": [
            opportunity["name"], contract["title"], contract["number"], contact["name"]],
    }


def test_rep_makes_a_quote_and_reads_the_payment_plan(system: System, chromium: str,
                                                     records: dict[str, Any]) -> None:
    result = run_scenario("rep_quote_and_contract", {
        "url": system.url, "artefacts": str(ARTEFACTS), "rep": REP, **records})
    # What the browser made is what the API now says.
    quotes = _ok(system.get("/quotes", user=REP,
                            params={"opportunity_id": records["opportunity_id"]}))["items"]
    assert len(quotes) == 1
    quote = quotes[0]
    assert quote["status"] == "draft" and quote["title"] == records["opportunity_name"]
    [line] = quote["lines"]
    assert line["product_name"] == records["product_name"]
    assert Decimal(line["quantity"]) == 3
    assert line["discount"]["kind"] == "percent" and Decimal(line["discount"]["value"]) == 5
    assert Decimal(line["unit_price"]) == Decimal(records["tier_price"])
    assert line["price_source"]["kind"] == "price_book"
    assert line["price_source"]["price_book_name"] == records["book_name"]
    assert f"{quote['totals']['grand_total']} {quote['currency']}" == result["grand_total"]
    assert result["scroll_width"] <= PHONE["width"] + 1
    for shot in ("100-opportunity-page", "101-quote-form-422", "102-quote-created",
                 "103-contract-page", "104-phone-contract-page", "105-phone-opportunity-page"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0, shot


def test_a_rep_of_another_team_gets_neither_page(system: System, chromium: str,
                                                 records: dict[str, Any]) -> None:
    run_scenario("other_team_sales_pages", {
        "url": system.url, "artefacts": str(ARTEFACTS), "rep": OTHER_TEAM_REP, **records})
    assert system.get(f"/opportunities/{records['opportunity_id']}",
                      user=OTHER_TEAM_REP).status_code == 404
    assert system.get(f"/contracts/{records['contract_id']}/payment-plan",
                      user=OTHER_TEAM_REP).status_code == 404
    assert (ARTEFACTS / "106-other-team-contract-404.png").stat().st_size > 0


def test_rep_sets_the_plan_records_a_receipt_and_issues_an_invoice(
        system: System, chromium: str, records: dict[str, Any]) -> None:
    tag = secrets.token_hex(3)
    contract = _ok(system.post("/contracts", user=REP, json={
        "title": f"控制台回款合同{tag}", "customer_id": records["customer_id"],
        "amount": "100000"}), 201)
    params = {"contract_id": contract["id"], "reference": f"TT-{tag}",
              "payer": f"昆山{tag}精密有限公司", "invoice_number": f"FP{tag}"}
    run_scenario("rep_writes_the_contract", {
        "url": system.url, "artefacts": str(ARTEFACTS), "rep": REP, **params})
    # What the browser wrote is what the API now says.
    base = f"/contracts/{contract['id']}"
    assert _ok(system.get(base, user=REP))["status"] == "active"
    plan = _ok(system.get(f"{base}/payment-plan", user=REP))["items"]
    assert [(i["due_date"], Decimal(i["amount"]), Decimal(i["paid"]), i["status"])
            for i in plan] == [
        ("2099-01-31", Decimal("60000"), Decimal("30000"), "partly_paid"),
        ("2099-06-30", Decimal("40000"), Decimal("0"), "pending")]
    [receipt] = _ok(system.get(f"{base}/receipts", user=REP))["items"]
    assert Decimal(receipt["amount"]) == 30000 and receipt["received_on"] == "2027-01-20"
    assert receipt["reference"] == params["reference"]
    assert receipt["payer"]["name"] == params["payer"]
    assert receipt["payer"]["account"] == "6222021001122334455"
    assert receipt["source"] == "user"
    assert [(a["instalment_id"], Decimal(a["amount"])) for a in receipt["allocations"]] == [
        (plan[0]["id"], Decimal("30000"))]
    [invoice] = _ok(system.get(f"{base}/invoices", user=REP))["items"]
    assert (invoice["number"], invoice["type"], invoice["status"]) == (
        params["invoice_number"], "electronic", "issued")
    assert Decimal(invoice["amount"]) == 30000 and invoice["title"] == params["payer"]
    assert invoice["receipt_id"] == receipt["id"] and invoice["issued_on"] == "2027-01-21"
    receivables = _ok(system.get(f"{base}/receivables", user=REP))
    assert Decimal(receivables["outstanding"]) == 70000
    assert Decimal(receivables["invoiced"]) == 30000
    for shot in ("107-plan-over-amount-422", "108-plan-saved", "109-receipt-recorded",
                 "110-invoice-issued"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0, shot
