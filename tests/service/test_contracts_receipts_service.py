"""Receipts' payer and source, contracts made from an accepted quote (`quote_id`), one clause
schema for create and update, and ERP payments while a contract is in approval (issue 16,
c-receipts). Real migrated databases (SQLite and PostgreSQL), the real sales worker; no
broker."""

from __future__ import annotations

import uuid

import pytest

from shared.consumer import Unprocessable
from shared.errors import ValidationFailed
from tests.service.test_contracts_contract_approval_service import (  # noqa: F401 (fixtures)
    in_approval_reason,
    new_contract,
    world,
)
from tests.service.test_contracts_quotes_service import (  # noqa: F401 (fixtures)
    REP_A,
    REP_B,
    catalogue,
    events_of,
    make,
    new_quote,
    opportunity,
    urls,
)

CLAUSE = {"code": "warranty", "title": "质保", "text": "质保期一年。"}


def erp_payment(contracts, data: dict) -> None:
    contracts.on_erp_payment_received({
        "event_id": str(uuid.uuid4()), "event_type": "payment_received", "version": 1,
        "occurred_at": "2026-12-03T00:00:00+00:00", "producer": "erp", "data": data})


def signed(contracts, sales, amount: str = "1000") -> dict:
    customer = sales.create_customer({"name": f"客户 {uuid.uuid4().hex[:6]}"}, scope=REP_A)
    contract = contracts.create_contract({"title": "年度服务", "customer_id": customer["id"],
                                          "amount": amount}, scope=REP_A)
    contracts.sign_contract(contract["id"], scope=REP_A)
    return contract


# --------------------------------------------------------------------------- the payer


def test_a_users_receipt_keeps_its_payer_trimmed_and_every_view_returns_it(make):  # noqa: F811
    contracts, sales = make()
    contract = signed(contracts, sales)
    receipt = contracts.record_receipt(contract["id"], {
        "amount": "300", "received_on": "2027-01-05", "method": "bank",
        "payer": {"name": "  苏州精工机械有限公司 ", "account": " 6222 0200 1234 ",
                  "reference": "  "}}, scope=REP_A)
    payer = {"name": "苏州精工机械有限公司", "account": "6222 0200 1234", "reference": None}
    assert receipt["payer"] == payer and receipt["source"] == "user"
    plain = contracts.record_receipt(contract["id"], {
        "amount": "1", "received_on": "2027-01-06"}, scope=REP_A)
    assert plain["payer"] is None and plain["source"] == "user"
    listed = contracts.list_receipts(contract["id"], scope=REP_A)["items"]
    assert [(r["payer"], r["source"]) for r in listed] == [(payer, "user"), (None, "user")]
    first, second = [e["data"] for e in events_of(make.engine, "receipt_recorded")]
    assert first["payer"] == "苏州精工机械有限公司" and first["receipt"]["payer"] == payer
    assert first["source"] == "user" and second["payer"] is None
    drill = contracts.numbers_drill_down("collection", {}, REP_A,
                                         {"month": "2027-01", "kind": "received"})["items"]
    assert [(r["receipt_id"], r["payer"], r["source"]) for r in drill] == [
        (receipt["id"], payer, "user"), (plain["id"], None, "user")]


@pytest.mark.parametrize("payer, field", [
    ({"name": "   "}, "payer.name"),
    ({"name": "x" * 201}, "payer.name"),
    ({"account": "1"}, "payer.name"),
    ({"name": "某某", "account": "1" * 65}, "payer.account"),
    ({"name": "某某", "reference": "r" * 101}, "payer.reference"),
    ({"name": "某某", "bank": "工行"}, "payer.bank"),
    ("某某", "payer._schema"),
])
def test_a_bad_payer_is_refused_naming_the_field(make, payer, field):  # noqa: F811
    contracts, sales = make()
    contract = signed(contracts, sales)
    with pytest.raises(ValidationFailed) as err:
        contracts.record_receipt(contract["id"], {"amount": "1", "received_on": "2027-01-05",
                                                  "payer": payer}, scope=REP_A)
    assert list(err.value.errors) == [field]
    assert contracts.list_receipts(contract["id"], scope=REP_A)["items"] == []


def test_an_erp_payment_stores_the_payer_its_account_and_reference(make):  # noqa: F811
    contracts, sales = make()
    contract = signed(contracts, sales)
    erp_payment(contracts, {
        "contract_number": contract["number"], "amount": "400",
        "paid_at": "2026-12-02T10:00:00+08:00", "reference": "ERP-PAY-1",
        "payer": " 苏州精工 ", "payer_account": "6222020012345678",
        "payer_reference": "HT 首付款"})
    erp_payment(contracts, {"contract_number": contract["number"], "amount": "1",
                            "paid_at": "2026-12-02T10:00:00+08:00", "reference": "ERP-PAY-2"})
    erp_payment(contracts, {"contract_number": contract["number"], "amount": "2",
                            "paid_at": "2026-12-02T10:00:00+08:00", "reference": "ERP-PAY-3",
                            "payer_account": " 6222 "})
    first, second, third = contracts.list_receipts(contract["id"], scope=REP_A)["items"]
    assert third["payer"] == {"name": None, "account": "6222", "reference": None}
    assert first["payer"] == {"name": "苏州精工", "account": "6222020012345678",
                              "reference": "HT 首付款"}
    assert first["source"] == "erp" and first["method"] == "erp"
    assert second["payer"] is None and second["source"] == "erp"
    event = events_of(make.engine, "receipt_recorded")[0]["data"]
    assert event["payer"] == "苏州精工" and event["receipt"]["source"] == "erp"


# --------------------------------------------------------------------------- ERP in approval


def test_an_erp_payment_during_approval_is_recorded_a_users_is_locked(world):  # noqa: F811
    contracts, sales = world
    contract = new_contract(contracts, sales, "1200000")
    assert contracts.submit_contract(contract["id"], scope=REP_A)["status"] == "in_approval"
    cid = contract["id"]
    in_approval_reason(lambda: contracts.record_receipt(cid, {
        "amount": "10", "received_on": "2026-12-01", "payer": {"name": "某某"}}, scope=REP_A))
    erp_payment(contracts, {"contract_number": contract["number"], "amount": "100000",
                            "paid_at": "2026-12-02T10:00:00+08:00", "reference": "PRE-1",
                            "payer": "苏州精工"})
    (receipt,) = contracts.list_receipts(cid, scope=REP_A)["items"]
    assert receipt["source"] == "erp" and receipt["amount"] == "100000.00"
    assert receipt["payer"]["name"] == "苏州精工"
    assert contracts.contract_receivables(cid, scope=REP_A)["received"] == "100000.00"
    assert contracts.get_contract(cid, scope=REP_A)["status"] == "in_approval"
    # a draft is still not a contract the ERP pays
    draft = new_contract(contracts, sales, "5000")
    with pytest.raises(Unprocessable) as err:
        erp_payment(contracts, {"contract_number": draft["number"], "amount": "1",
                                "paid_at": "2026-12-02T10:00:00+08:00", "reference": "PRE-2"})
    assert "draft" in str(err.value)
    assert contracts.list_receipts(draft["id"], scope=REP_A)["items"] == []


# --------------------------------------------------------------------------- quote_id


def accepted(contracts, sales, items: dict) -> tuple[dict, dict]:
    opp = opportunity(sales)
    quote = new_quote(contracts, opp, items)
    contracts.submit_quote(quote["id"], scope=REP_A)
    return opp, contracts.accept_quote(quote["id"], {"reason": "签字"}, scope=REP_A)


def test_a_contract_made_from_an_accepted_quote_keeps_it_and_its_lines(make):  # noqa: F811
    contracts, sales = make()
    opp, quote = accepted(contracts, sales, catalogue(contracts))
    contract = contracts.create_contract({"title": "MES 合同", "customer_id": opp["customer_id"],
                                          "quote_id": quote["id"]}, scope=REP_A)
    assert contract["quote_id"] == quote["id"] and contract["opportunity_id"] == opp["id"]
    assert contract["amount"] == quote["totals"]["grand_total"] == "251047.51"
    assert contract["currency"] == "CNY"
    assert contracts.get_contract(contract["id"], scope=REP_A)["quote_id"] == quote["id"]
    listed = contracts.list_contracts({"opportunity_id": opp["id"]}, scope=REP_A)["items"]
    assert [c["quote_id"] for c in listed] == [quote["id"]]
    (created,) = events_of(make.engine, "contract_created")
    assert created["data"]["contract"]["quote_id"] == quote["id"]
    contracts.sign_contract(contract["id"], scope=REP_A)
    order = contracts.get_contract_order(contract["id"], scope=REP_A)
    assert order["source"] == {"kind": "quote", "quote_id": quote["id"], "quote_version": 1}
    assert [line["product_code"] for line in order["lines"]] == ["MES-STD", "IMPL-DAY"]
    direct = contracts.create_contract({"title": "直签", "customer_id": opp["customer_id"],
                                        "amount": "10"}, scope=REP_A)
    assert direct["quote_id"] is None


def test_a_quote_id_must_be_an_accepted_visible_quote_of_the_customer_and_opportunity(make):  # noqa: F811
    contracts, sales = make()
    items = catalogue(contracts)
    opp, quote = accepted(contracts, sales, items)
    other_customer = sales.create_customer({"name": "别家"}, scope=REP_A)
    second_opp = sales.create_opportunity({"customer_id": opp["customer_id"], "name": "二期"},
                                          scope=REP_A)
    draft = new_quote(contracts, second_opp, items)
    base = {"title": "x", "customer_id": opp["customer_id"], "amount": "1"}
    cases = [
        ({**base, "quote_id": str(uuid.uuid4())}, REP_A, "no such quote"),
        ({**base, "quote_id": quote["id"]}, REP_B, "no such quote"),
        ({**base, "quote_id": draft["id"]}, REP_A, "not accepted"),
        ({**base, "customer_id": other_customer["id"], "quote_id": quote["id"]}, REP_A,
         "another customer"),
        ({**base, "opportunity_id": second_opp["id"], "quote_id": quote["id"]}, REP_A,
         "another opportunity"),
    ]
    for data, scope, why in cases:
        with pytest.raises(ValidationFailed) as err:
            contracts.create_contract(data, scope=scope)
        assert list(err.value.errors) == ["quote_id"], data
        assert why in err.value.errors["quote_id"][0]
    with pytest.raises(ValidationFailed) as err:  # neither an amount nor a quote
        contracts.create_contract({"title": "x", "customer_id": opp["customer_id"]},
                                  scope=REP_A)
    assert list(err.value.errors) == ["amount"]
    assert events_of(make.engine, "contract_created") == []


# --------------------------------------------------------------------------- clauses


def test_one_clause_body_is_valid_for_create_and_update(make):  # noqa: F811
    contracts, sales = make()
    customer = sales.create_customer({"name": "条款客户"}, scope=REP_A)
    body = {"title": "MES", "customer_id": customer["id"], "amount": "10",
            "clauses": [CLAUSE, {"code": "  payment ", "text": "30 日内付款"}]}
    created = contracts.create_contract(body, scope=REP_A)
    expected = [CLAUSE, {"code": "payment", "title": None, "text": "30 日内付款"}]
    assert created["clauses"] == expected
    updated = contracts.update_contract(created["id"], {"clauses": body["clauses"]},
                                        scope=REP_A)
    assert updated["clauses"] == expected
    terms = contracts.contract_approval_terms(created["id"], scope=REP_A)["terms"]
    assert terms["clauses"] == expected
    for call in (lambda clauses: contracts.create_contract({**body, "clauses": clauses},
                                                          scope=REP_A),
                 lambda clauses: contracts.update_contract(created["id"],
                                                          {"clauses": clauses}, scope=REP_A)):
        for clauses, field in (
                ([CLAUSE, {**CLAUSE, "title": "t" * 201}], "clauses.1.title"),
                ([{"title": "保密", "text": "双方保密"}], "clauses.0.code"),
                ([{**CLAUSE, "text": ""}], "clauses.0.text"),
                ([{**CLAUSE, "note": "x"}], "clauses.0.note"),
                ([CLAUSE] * 201, "clauses")):
            with pytest.raises(ValidationFailed) as err:
                call(clauses)
            assert list(err.value.errors) == [field]
    assert contracts.get_contract(created["id"], scope=REP_A)["clauses"] == expected
