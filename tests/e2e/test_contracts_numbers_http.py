"""The contracts' numbers end to end over HTTP, as a rep, a manager, another team's rep and
the admin: collection by month, overdue aging, DSO, quote win rate and discount, the records
behind each figure (exactly those, paged), and the customer 360's quotes, contracts and
receivables (and what it says when the contracts service is down).

Every figure here lives in a year nobody else's test uses (chosen at random, 2150-2190), or
is narrowed to this test's own customers, so the figures are exact on a shared system.
"""

from __future__ import annotations

import random
import uuid
from datetime import date
from decimal import Decimal

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


def signed_contract(system, user: str, customer_id: str, amount: str,
                    plan: list[tuple[str, str]], receipts: list[tuple[str, str]]) -> dict:
    contract = ok(system.post("/contracts", user=user, json={
        "title": "回款测试合同", "customer_id": customer_id, "amount": amount}), 201)
    items = ok(system.put(f"/contracts/{contract['id']}/payment-plan", user=user, json={
        "instalments": [{"due_date": day, "amount": value} for day, value in plan]}))["items"]
    ok(system.post(f"/contracts/{contract['id']}/sign", user=user))
    got = [ok(system.post(f"/contracts/{contract['id']}/receipts", user=user, json={
        "amount": value, "received_on": day, "method": "bank"}), 201) for day, value in receipts]
    return {**contract, "instalments": items, "receipts": got}


def customer(system, user: str) -> dict:
    return ok(system.post("/customers", user=user, json={"name": f"苏州{tag()}回款有限公司"}), 201)


@pytest.fixture(scope="module")
def books(system):
    year = random.Random().randrange(2150, 2190)
    c1, c2, c3 = customer(system, "zhangwei"), customer(system, "lina"), customer(
        system, "chenjing")
    mine = signed_contract(system, "zhangwei", c1["id"], "1000",
                           [(f"{year}-01-15", "400"), (f"{year}-03-10", "600")],
                           [(f"{year}-01-20", "250")])
    teammate = signed_contract(system, "lina", c2["id"], "300", [(f"{year}-02-01", "300")], [])
    other = signed_contract(system, "chenjing", c3["id"], "5000", [(f"{year}-01-05", "5000")],
                            [(f"{year}-01-06", "1000")])
    return {"year": year, "c1": c1, "c2": c2, "c3": c3, "mine": mine, "teammate": teammate,
            "other": other}


def test_collection_by_month_as_each_caller(system, books):
    year = books["year"]
    period = {"date_from": f"{year}-01-01", "date_to": f"{year}-12-31"}
    expected = {"zhangwei": ("1000.00", "250.00"), "lina": ("300.00", "0.00"),
                "manager": ("1300.00", "250.00"), "chenjing": ("5000.00", "1000.00"),
                "admin": ("6300.00", "1250.00")}
    for user, (planned, received) in expected.items():
        report = ok(system.get("/reports/collection", user=user, params=period))
        assert (report["total"]["planned"], report["total"]["received"]) == (
            planned, received), user
        assert len(report["months"]) == 12
    january = ok(system.get("/reports/collection", user="zhangwei", params=period))["months"][0]
    assert january == {"month": f"{year}-01", "planned": "400.00", "planned_count": 1,
                       "received": "250.00", "received_count": 1, "gap": "150.00"}
    # a rep never sees another team's amounts, also not by naming its owner
    named = ok(system.get("/reports/collection", user="zhangwei", params={
        **period, "owner_id": system.users["chenjing"]}))
    assert named["total"] == {"planned": "0.00", "received": "0.00", "gap": "0.00"}

    # drill-down: exactly the records behind a month's figure, with the caller's scope
    planned = ok(system.get("/reports/collection/records", user="manager", params={
        **period, "month": f"{year}-01"}))
    assert [r["instalment_id"] for r in planned["items"]] == [
        books["mine"]["instalments"][0]["id"]]
    received = ok(system.get("/reports/collection/records", user="admin", params={
        **period, "month": f"{year}-01", "kind": "received"}))
    assert sorted(r["receipt_id"] for r in received["items"]) == sorted(
        [books["mine"]["receipts"][0]["id"], books["other"]["receipts"][0]["id"]])
    page = ok(system.get("/reports/collection/records", user="admin", params={
        **period, "month": f"{year}-01", "kind": "received", "limit": 1}))
    rest = ok(system.get("/reports/collection/records", user="admin", params={
        **period, "month": f"{year}-01", "kind": "received", "limit": 1,
        "cursor": page["next_cursor"]}))
    assert {page["items"][0]["receipt_id"], rest["items"][0]["receipt_id"]} == {
        r["receipt_id"] for r in received["items"]} and rest["next_cursor"] is None
    theirs = ok(system.get("/reports/collection/records", user="chenjing", params={
        **period, "month": f"{year}-01"}))
    assert [r["contract_id"] for r in theirs["items"]] == [books["other"]["id"]]
    bad = problem(system.get("/reports/collection/records", user="zhangwei",
                             params={"month": "May"}), 422)
    assert "month" in str(bad)


def test_aging_and_dso(system, books):
    year = books["year"]
    as_of = {"as_of": f"{year}-02-20"}
    mine = ok(system.get("/reports/aging", user="zhangwei", params={
        **as_of, "customer_id": books["c1"]["id"]}))
    # 150 left of the instalment due 01-15 (36 days), the 03-10 one is not due yet
    assert {b["bucket"]: b["outstanding"] for b in mine["buckets"]} == {
        "0-30": "0.00", "31-60": "150.00", "61-90": "0.00", ">90": "0.00"}
    assert mine["as_of"] == f"{year}-02-20"
    hidden = ok(system.get("/reports/aging", user="chenjing", params={
        **as_of, "customer_id": books["c1"]["id"]}))
    assert hidden["total"] == {"count": 0, "outstanding": "0.00"}
    manager = ok(system.get("/reports/aging", user="manager", params={
        **as_of, "customer_id": books["c2"]["id"]}))
    assert {b["bucket"]: b["outstanding"] for b in manager["buckets"]}["0-30"] == "300.00"
    records = ok(system.get("/reports/aging/records", user="zhangwei", params={
        **as_of, "customer_id": books["c1"]["id"], "bucket": "31-60"}))
    assert [(r["instalment_id"], r["outstanding"], r["days_overdue"]) for r in
            records["items"]] == [(books["mine"]["instalments"][0]["id"], "150.00", 36)]
    # another team's rep: their own overdue, never the rep's
    theirs = ok(system.get("/reports/aging/records", user="chenjing",
                           params={**as_of, "bucket": "31-60"}))
    contracts = {r["contract_id"] for r in theirs["items"]}
    assert books["other"]["id"] in contracts
    assert not contracts & {books["mine"]["id"], books["teammate"]["id"]}

    quarter = {"date_from": f"{year}-01-01", "date_to": f"{year}-03-31",
               "customer_id": books["c1"]["id"]}
    dso = ok(system.get("/reports/dso", user="zhangwei", params=quarter))
    # due by 03-31: 1000, received 250 -> 750 receivable; billed in the 90 days: 1000
    days = (date(year, 3, 31) - date(year, 1, 1)).days + 1  # 90, or 91 in a leap year
    assert (dso["billed"], dso["receivables"], dso["days"], dso["dso_days"]) == (
        "1000.00", "750.00", days, str((Decimal(750) / 1000 * days).quantize(Decimal("0.1"))))
    assert ok(system.get("/reports/dso", user="chenjing", params=quarter))["dso_days"] is None
    billed = ok(system.get("/reports/dso/records", user="zhangwei", params=quarter))
    assert sorted(r["instalment_id"] for r in billed["items"]) == sorted(
        i["id"] for i in books["mine"]["instalments"])


def quote_for(system, user: str, customer_id: str, product: dict, discount: str | None) -> dict:
    contact = ok(system.post("/contacts", user=user, json={
        "customer_id": customer_id, "name": "王芳"}), 201)
    opp = ok(system.post("/opportunities", user=user, json={
        "customer_id": customer_id, "name": f"项目{tag()}", "contact_id": contact["id"],
        "expected_close_date": "2026-12-31", "products": ["MES"]}), 201)
    ok(system.post("/followups", user=user, json={
        "kind": "meeting", "opportunity_id": opp["id"], "tags": ["needs_analysis"]}), 201)
    line = {"product_id": product["id"], "quantity": "1", "unit_price": "1000"}
    if discount:
        line["discount"] = {"kind": "percent", "value": discount}
    quote = ok(system.post("/quotes", user=user, json={
        "opportunity_id": opp["id"], "title": "报价", "valid_until": "2099-12-31",
        "lines": [line]}), 201)
    assert ok(system.post(f"/quotes/{quote['id']}/submit", user=user))["status"] == "approved"
    return quote


def test_quote_win_rate_and_the_customer_360(system, books):
    product = ok(system.post("/products", user="manager", json={
        "code": f"NUM-{tag()}", "name": "数据服务", "unit": "套", "tax_rate": "6"}), 201)
    c1 = books["c1"]["id"]
    won = quote_for(system, "zhangwei", c1, product, "10")
    ok(system.post(f"/quotes/{won['id']}/accept", user="zhangwei", json={"reason": "签约"}))
    lost = quote_for(system, "zhangwei", c1, product, None)
    ok(system.post(f"/quotes/{lost['id']}/reject", user="zhangwei", json={"reason": "价格"}))
    quote_for(system, "zhangwei", c1, product, None)  # approved, still open

    rate = ok(system.get("/reports/quote-win-rate", user="zhangwei",
                         params={"customer_id": c1}))
    assert [r["owner_id"] for r in rate["by_owner"]] == [system.users["zhangwei"]]
    row = rate["by_owner"][0]
    assert (row["accepted"], row["rejected"], row["expired"], row["open"]) == (1, 1, 0, 1)
    assert (row["win_rate_percent"], row["average_discount_percent"]) == ("50.00", "10.00")
    assert rate["total"]["win_rate_percent"] == "50.00"
    hidden = ok(system.get("/reports/quote-win-rate", user="chenjing",
                           params={"customer_id": c1}))
    assert hidden["by_owner"] == [] and hidden["total"]["quotes"] == 0
    decided = ok(system.get("/reports/quote-win-rate/records", user="manager", params={
        "customer_id": c1, "row_owner_id": system.users["zhangwei"]}))
    assert sorted(r["quote_id"] for r in decided["items"]) == sorted([won["id"], lost["id"]])
    accepted = ok(system.get("/reports/quote-win-rate/records", user="zhangwei", params={
        "customer_id": c1, "outcome": "accepted"}))
    assert [(r["quote_id"], r["discount_percent"]) for r in accepted["items"]] == [
        (won["id"], "10.00")]
    cycle = ok(system.get("/reports/approval-cycle-times", user="zhangwei"))
    assert isinstance(cycle["steps"], list)

    view = ok(system.get(f"/customers/{c1}/360", user="zhangwei"))
    assert view["partial"] == []
    assert len(view["quotes"]) == 3 and {q["id"] for q in view["quotes"]} >= {won["id"]}
    assert {q["status"] for q in view["quotes"]} == {"accepted", "rejected", "approved"}
    assert [c["id"] for c in view["contracts"]] == [books["mine"]["id"]]
    assert view["contracts"][0]["receivables"] == {
        "received": "250.00", "outstanding": "750.00", "overdue": "0.00"}
    assert view["receivables"] == {"received": "250.00", "outstanding": "750.00",
                                   "overdue": "0.00"}
    assert ok(system.get(f"/customers/{c1}/360", user="manager"))["receivables"][
        "received"] == "250.00"
    problem(system.get(f"/customers/{c1}/360", user="chenjing"), 404)


def test_the_360_answers_without_contracts_and_says_so(system, books):
    c1 = books["c1"]["id"]
    system.stop_service("contracts")
    try:
        view = ok(system.get(f"/customers/{c1}/360", user="zhangwei", timeout=30))
        assert view["partial"] == ["contracts"]
        assert (view["quotes"], view["contracts"], view["receivables"]) == (None, None, None)
        assert view["customer"]["id"] == c1
        problem(system.get("/reports/collection", user="zhangwei", timeout=30), 503)
    finally:
        system.start_service("contracts")
    system.wait_for(lambda: system.get(f"/customers/{c1}/360", user="zhangwei").json().get(
        "partial") == [], timeout=30, interval=0.5, message="contracts did not come back")
