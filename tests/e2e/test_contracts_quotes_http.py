"""Quotes end to end: the whole system as processes, over HTTP.

Products and a price book (a manager) -> an opportunity (a rep) -> a quote priced from the
book -> a revision (the old version stays readable) -> submit: no approval flow is configured,
so the draft is approved at once -> sent -> accepted: the opportunity moves to won through the
sales service with the quote's grand total as its amount. A quote whose opportunity does not
meet the exit criteria is not accepted, and the answer says what is missing.
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


def opportunity(system, user: str, ready: bool = True) -> dict:
    customer = ok(system.post("/customers", user=user,
                              json={"name": f"无锡{tag()}精密制造有限公司"}), 201)
    body = {"customer_id": customer["id"], "name": "MES 二期"}
    if ready:
        contact = ok(system.post("/contacts", user=user, json={
            "customer_id": customer["id"], "name": "王芳"}), 201)
        body.update(contact_id=contact["id"], expected_close_date="2026-12-31",
                    products=["MES"])
    opp = ok(system.post("/opportunities", user=user, json=body), 201)
    if ready:
        ok(system.post("/followups", user=user, json={
            "kind": "meeting", "opportunity_id": opp["id"], "tags": ["needs_analysis"]}), 201)
    return opp


@pytest.fixture(scope="module")
def catalogue(system) -> dict:
    mes = ok(system.post("/products", user="manager", json={
        "code": f"MES-{tag()}", "name": "MES 标准版", "unit": "套", "category": "软件",
        "tax_rate": "13"}), 201)
    day = ok(system.post("/products", user="manager", json={
        "code": f"IMPL-{tag()}", "name": "实施服务", "unit": "人天", "tax_rate": "6"}), 201)
    book = ok(system.post("/price-books", user="manager", json={
        "name": f"华东价目表{tag()}", "region": f"R{tag()}", "tiers": [
            {"product_id": mes["id"], "min_quantity": "0", "unit_price": "100000"},
            {"product_id": mes["id"], "min_quantity": "3", "unit_price": "95000"},
            {"product_id": day["id"], "min_quantity": "0", "unit_price": "2500.5"}]}), 201)
    return {"mes": mes, "day": day, "book": book}


def test_opportunity_to_accepted_quote_moves_the_opportunity_to_won(system, catalogue):
    mes, day, book = catalogue["mes"], catalogue["day"], catalogue["book"]
    opp = opportunity(system, "zhangwei")
    created = system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "title": "MES 二期报价", "valid_until": "2099-12-31",
        "region": book["region"],
        "lines": [
            {"product_id": mes["id"], "quantity": "3", "section": "软件"},
            {"product_id": day["id"], "quantity": "10.5", "section": "服务",
             "discount": {"kind": "percent", "value": "10"}},
            {"product_id": day["id"], "quantity": "2", "optional": True}]})
    quote = ok(created, 201)
    assert created.headers["Location"] == f"/quotes/{quote['id']}"
    assert quote["status"] == "draft" and quote["owner_id"] == system.users["zhangwei"]
    assert quote["lines"][0]["unit_price"] == "95000"
    assert quote["lines"][0]["price_source"]["price_book_id"] == book["id"]
    assert quote["lines"][0]["price_source"]["tier_min_quantity"] == "3"
    # 285000 + 23629.73 net; tax 37050 + 1417.78; the optional line is out of the totals
    assert quote["totals"]["grand_total"] == "347097.51"
    assert quote["amount_in_words"] == "叁拾肆万柒仟零玖拾柒元伍角壹分"

    # the manager of the team sees it, another team's rep does not
    assert ok(system.get(f"/quotes/{quote['id']}", user="manager"))["id"] == quote["id"]
    problem(system.get(f"/quotes/{quote['id']}", user="chenjing"), 404)
    listed = ok(system.get("/quotes", user="chenjing", params={"opportunity_id": opp["id"]}))
    assert listed["items"] == []

    revised = ok(system.post(f"/quotes/{quote['id']}/revise", user="zhangwei"), 201)
    assert (revised["version"], revised["status"]) == (2, "draft")
    patched = ok(system.patch(f"/quotes/{quote['id']}", user="zhangwei", json={
        "discount": {"kind": "amount", "value": "8629.73"}}))
    assert patched["totals"]["net_total"] == "300000.00"
    old = ok(system.get(f"/quotes/{quote['id']}/versions/1", user="zhangwei"))
    assert old["version"] == 1 and old["totals"]["grand_total"] == "347097.51"
    versions = ok(system.get(f"/quotes/{quote['id']}/versions", user="zhangwei"))["items"]
    assert [(v["number"], v["current"]) for v in versions] == [(1, False), (2, True)]

    # no approval flow is configured: submitting approves at once
    approved = ok(system.post(f"/quotes/{quote['id']}/submit", user="zhangwei"))
    assert approved["status"] == "approved"
    locked = problem(system.patch(f"/quotes/{quote['id']}", user="zhangwei",
                                  json={"title": "改"}), 409)
    assert "approved" in locked["detail"]
    assert ok(system.post(f"/quotes/{quote['id']}/send", user="zhangwei"))["status"] == "sent"
    accepted = ok(system.post(f"/quotes/{quote['id']}/accept", user="zhangwei",
                              json={"reason": "客户盖章确认"}))
    assert accepted["status"] == "accepted"
    moved = ok(system.get(f"/opportunities/{opp['id']}", user="zhangwei"))
    assert moved["status"] == "won" and moved["won_lost_reason"] == "客户盖章确认"
    assert moved["amount"] == accepted["totals"]["grand_total"]
    problem(system.post(f"/quotes/{quote['id']}/reject", user="zhangwei", json={}), 412)


def test_sales_refusing_the_move_refuses_the_accept_and_says_why(system, catalogue):
    opp = opportunity(system, "zhangwei", ready=False)
    quote = ok(system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "lines": [
            {"product_id": catalogue["mes"]["id"], "quantity": "1", "unit_price": "50000"}]}),
        201)
    problem(system.post(f"/quotes/{quote['id']}/accept", user="zhangwei", json={}), 412)
    ok(system.post(f"/quotes/{quote['id']}/submit", user="zhangwei"))
    refused = problem(system.post(f"/quotes/{quote['id']}/accept", user="zhangwei",
                                  json={}), 412)
    assert "sales refused" in refused["detail"]
    missing = {m.get("field") or m.get("tag") for m in refused["missing"]}
    assert "contact_id" in missing and "needs_analysis" in missing
    assert ok(system.get(f"/quotes/{quote['id']}", user="zhangwei"))["status"] == "approved"
    assert ok(system.get(f"/opportunities/{opp['id']}", user="zhangwei"))["status"] == "open"


def test_catalogue_authority_and_bad_input(system, catalogue):
    problem(system.post("/products", user="zhangwei", json={
        "code": f"X-{tag()}", "name": "x", "unit": "套", "tax_rate": "13"}), 403)
    bad_rate = problem(system.post("/products", user="manager", json={
        "code": f"X-{tag()}", "name": "x", "unit": "套", "tax_rate": "17"}), 422)
    assert "tax_rate" in bad_rate["errors"]
    duplicate = problem(system.post("/products", user="admin", json={
        "code": catalogue["mes"]["code"], "name": "x", "unit": "套", "tax_rate": "13"}), 409)
    assert duplicate["detail"]
    # everyone reads the active products; a rep may not ask for inactive ones
    codes = set()
    page = ok(system.get("/products", user="zhangwei", params={"limit": 200}))
    codes |= {p["code"] for p in page["items"]}
    assert catalogue["mes"]["code"] in codes
    problem(system.get("/products", user="zhangwei", params={"include_inactive": "true"}), 403)
    opp = opportunity(system, "zhangwei", ready=False)
    too_fine = problem(system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "lines": [
            {"product_id": catalogue["mes"]["id"], "quantity": "1.00001"}]}), 422)
    assert "lines" in too_fine["errors"]
    hidden = problem(system.post("/quotes", user="chenjing", json={
        "opportunity_id": opp["id"], "lines": []}), 422)
    assert "opportunity_id" in hidden["errors"]
