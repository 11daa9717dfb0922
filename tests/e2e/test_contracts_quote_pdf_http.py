"""A quote's PDF over HTTP: the quote a rep made, rendered from the default print template with
its Chinese text, lines, totals, 大写 amount and the customer's name; hidden from another team."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.e2e.test_contracts_quotes_http import catalogue, ok, opportunity, problem  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_quote_prints_with_its_lines_totals_and_amount_in_words(system, catalogue):  # noqa: F811
    mes, book = catalogue["mes"], catalogue["book"]
    opp = opportunity(system, "zhangwei")
    quote = ok(system.post("/quotes", user="zhangwei", json={
        "opportunity_id": opp["id"], "title": "MES 报价", "valid_until": "2099-12-31",
        "region": book["region"], "lines": [
            {"product_id": mes["id"], "quantity": "1", "section": "软件", "note": "含一年维护"}]}),
        201)
    customer = ok(system.get(f"/opportunities/{opp['id']}", user="zhangwei"))["customer_id"]
    name = ok(system.get(f"/customers/{customer}", user="zhangwei"))["name"]

    answer = system.get(f"/quotes/{quote['id']}/pdf", user="zhangwei")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    compact = "".join(text.split())
    assert name in compact
    assert "MES标准版" in compact and "含一年维护" in compact
    assert quote["totals"]["grand_total"] == "113000.00"  # 100000 + 13 % VAT
    assert "113000.00" in compact
    assert quote["amount_in_words"] == "壹拾壹万叁仟元整"
    assert "壹拾壹万叁仟元整" in compact
    assert "第1页" in compact

    # the manager of the team prints it too; another team's rep gets what a missing quote gets
    assert system.get(f"/quotes/{quote['id']}/pdf", user="manager").status_code == 200
    problem(system.get(f"/quotes/{quote['id']}/pdf", user="chenjing"), 404)
    problem(system.get("/quotes/00000000-0000-4000-8000-000000000000/pdf", user="zhangwei"), 404)
    bad = problem(system.get(f"/quotes/{quote['id']}/pdf", user="zhangwei",
                             params={"version": "0"}), 422)
    assert "version" in str(bad)
