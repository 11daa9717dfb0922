"""The contracts service's products, price books and quotes with nameko's worker_factory: a
real migrated database (SQLite, and PostgreSQL where reachable), the real outbox recorder, and
the real sales service (its worker over its own migrated database) answering the quotes'
sales calls; no broker."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import QuoteVersion, outbox
from services.contracts.service import ContractsService
from services.contracts.usecases.pricing import today
from services.sales.events import EVENT_SCHEMAS as SALES_EVENTS
from services.sales.models import outbox as sales_outbox
from services.sales.service import SalesService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

REP_A = {"owner_ids": ["rep-a"]}
REP_B = {"owner_ids": ["rep-b"]}
MANAGER = {"owner_ids": ["manager", "rep-a", "rep-b"]}
ALL = {"all": True}


class _Reply:
    def __init__(self, method: Any, kwargs: dict[str, Any]) -> None:
        try:
            self._value, self._error = method(**kwargs), None
        except Exception as err:  # the typed error travels to the caller, as over RPC
            self._value, self._error = None, err

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class _Method:
    def __init__(self, method: Any) -> None:
        self._method = method

    def call_async(self, **kwargs: Any) -> _Reply:
        return _Reply(self._method, json.loads(json.dumps(kwargs)))


class SalesWorker:
    """The contracts service's `sales` proxy answered by a real sales worker."""

    def __init__(self, worker: SalesService) -> None:
        self.worker = worker

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.worker, name))


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request, tmp_path):
    return (migrated_database(request, tmp_path, "contracts"),
            migrated_database(request, tmp_path, "sales"))


@pytest.fixture
def make(urls):
    contracts_engine, sales_engine = get_engine(urls[0]), get_engine(urls[1])

    def build(actor: str = "rep-a") -> tuple[ContractsService, SalesService]:
        ctx = Context(correlation_id="corr-q", actor=actor)
        sales = service_worker(SalesService, sales_engine, sales_outbox, SALES_EVENTS, ctx)
        contracts = service_worker(ContractsService, contracts_engine, outbox, EVENT_SCHEMAS,
                                   ctx, sales=SalesWorker(sales))
        return contracts, sales

    build.engine = contracts_engine
    return build


def events_of(engine, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e for e in map(json.loads, rows) if e["event_type"] == event_type]


def catalogue(contracts: ContractsService) -> dict[str, Any]:
    mes = contracts.create_product({"code": "MES-STD", "name": "MES 标准版", "unit": "套",
                                    "category": "软件", "tax_rate": "13"})
    svc = contracts.create_product({"code": "IMPL-DAY", "name": "实施服务", "unit": "人天",
                                    "category": "服务", "tax_rate": "6"})
    book = contracts.create_price_book({"name": "标准价目表", "tiers": [
        {"product_id": mes["id"], "min_quantity": "0", "unit_price": "100000"},
        {"product_id": mes["id"], "min_quantity": "5", "unit_price": "90000"},
        {"product_id": svc["id"], "min_quantity": "0", "unit_price": "2500.50"},
    ]})
    partner = contracts.create_price_book({"name": "渠道价 华东", "channel": "partner",
                                           "region": "华东", "tiers": [
        {"product_id": mes["id"], "min_quantity": "0", "unit_price": "85000"}]})
    return {"mes": mes, "svc": svc, "book": book, "partner": partner}


def opportunity(sales: SalesService, scope=REP_A, ready: bool = True) -> dict[str, Any]:
    customer = sales.create_customer({"name": "苏州精工机械有限公司"}, scope=scope)
    data = {"customer_id": customer["id"], "name": "MES 一期"}
    if ready:  # every exit criterion before won holds except the amount (the quote gives it)
        contact = sales.create_contact({"customer_id": customer["id"], "name": "张伟"},
                                       scope=scope)
        data.update(contact_id=contact["id"], expected_close_date="2026-12-31",
                    products=["MES"])
    opp = sales.create_opportunity(data, scope=scope)
    if ready:
        sales.record_followup({"kind": "meeting", "opportunity_id": opp["id"],
                               "tags": ["needs_analysis"]}, scope=scope)
    return opp


def new_quote(contracts, opp, items, **terms) -> dict[str, Any]:
    return contracts.create_quote({
        "opportunity_id": opp["id"], "title": "MES 报价",
        "valid_until": (today() + timedelta(days=30)).isoformat(),
        "lines": [
            {"product_id": items["mes"]["id"], "quantity": "2", "section": "软件"},
            {"product_id": items["svc"]["id"], "quantity": "10.5", "section": "服务",
             "discount": {"kind": "percent", "value": "10"}},
            {"product_id": items["svc"]["id"], "quantity": "5", "optional": True,
             "note": "选配: 驻场"},
        ], **terms}, scope=REP_A)


# -- products and price books ----------------------------------------------------------------


def test_products_have_unique_codes_china_vat_rates_and_inactive_ones_hide(make):
    contracts, _ = make()
    items = catalogue(contracts)
    assert items["mes"]["tax_rate"] == "13" and items["svc"]["unit"] == "人天"
    with pytest.raises(Conflict) as err:
        contracts.create_product({"code": "MES-STD", "name": "x", "unit": "套",
                                  "tax_rate": "13"})
    assert err.value.extra["field"] == "code"
    with pytest.raises(ValidationFailed) as err:
        contracts.create_product({"code": "X", "name": "x", "unit": "套", "tax_rate": "17"})
    assert list(err.value.errors) == ["tax_rate"]

    contracts.update_product(items["svc"]["id"], {"active": False})
    listed = contracts.list_products()
    assert [p["code"] for p in listed["items"]] == ["MES-STD"]
    everything = contracts.list_products({"include_inactive": True}, limit=1)
    assert len(everything["items"]) == 1 and everything["next_cursor"]
    rest = contracts.list_products({"include_inactive": True},
                                   cursor=everything["next_cursor"], limit=1)
    assert {everything["items"][0]["code"], rest["items"][0]["code"]} == {"MES-STD",
                                                                           "IMPL-DAY"}
    with pytest.raises(NotFound):
        contracts.get_product(items["svc"]["id"])
    assert contracts.get_product(items["svc"]["id"], include_inactive=True)["active"] is False


def test_price_book_tiers_must_name_products_and_dates_must_be_in_order(make):
    contracts, _ = make()
    with pytest.raises(ValidationFailed) as err:
        contracts.create_price_book({"name": "x", "tiers": [
            {"product_id": "nope", "min_quantity": "0", "unit_price": "1"}]})
    assert err.value.errors == {"tiers.0.product_id": ["no such product"]}
    with pytest.raises(ValidationFailed) as err:
        contracts.create_price_book({"name": "x", "valid_from": "2026-12-03",
                                     "valid_to": "2026-12-01"})
    assert list(err.value.errors) == ["valid_to"]
    book = contracts.create_price_book({"name": "秋季", "valid_from": "2026-09-01",
                                        "customer_tier": "A"})
    assert book["valid_from"] == "2026-09-01" and book["customer_tier"] == "A"


# -- quotes ----------------------------------------------------------------------------------


def test_a_quote_is_priced_from_the_books_explained_and_totalled(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    quote = new_quote(contracts, opp, items)
    assert quote["status"] == "draft" and quote["version"] == 1
    assert quote["owner_id"] == "rep-a" and quote["customer_id"] == opp["customer_id"]
    mes, svc, extra = quote["lines"]
    assert mes["unit_price"] == "100000" and mes["price_source"] == {
        "kind": "price_book", "price_book_id": items["book"]["id"],
        "price_book_name": "标准价目表", "tier_min_quantity": "0", "unit_price": "100000"}
    assert (mes["net"], mes["tax"]) == ("200000.00", "26000.00")
    # 10.5 x 2500.50 = 26255.25, less 10 % = 23629.725 -> 23629.73; 6 % tax 1417.7838 -> 1417.78
    assert (svc["gross"], svc["net"], svc["tax"]) == ("26255.25", "23629.73", "1417.78")
    assert extra["optional"] is True and extra["net"] == "12502.50"
    assert quote["totals"] == {"subtotal": "223629.73", "discount_total": "0.00",
                               "net_total": "223629.73", "tax_total": "27417.78",
                               "grand_total": "251047.51"}
    assert quote["amount_in_words"] == "贰拾伍万壹仟零肆拾柒元伍角壹分"
    [event] = events_of(make.engine, "quote_created")
    assert event["data"]["quote"]["id"] == quote["id"]
    assert event["correlation_id"] == "corr-q"


def test_the_volume_tier_and_the_channel_book_are_chosen_and_a_given_price_is_kept(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    quote = contracts.create_quote({"opportunity_id": opp["id"], "lines": [
        {"product_id": items["mes"]["id"], "quantity": "5"},
        {"product_id": items["svc"]["id"], "quantity": "1.2345", "unit_price": "2000"},
    ]}, scope=REP_A)
    assert quote["lines"][0]["unit_price"] == "90000"
    assert quote["lines"][0]["price_source"]["tier_min_quantity"] == "5"
    assert quote["lines"][1]["price_source"] == {"kind": "given", "unit_price": "2000"}
    changed = contracts.update_quote(quote["id"], {"channel": "partner", "region": "华东"},
                                     scope=REP_A)
    assert changed["lines"][0]["unit_price"] == "85000"
    assert changed["lines"][0]["price_source"]["price_book_id"] == items["partner"]["id"]
    assert changed["lines"][1]["unit_price"] == "2000"


def test_bad_lines_are_refused_naming_the_field(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    other = contracts.create_product({"code": "HW", "name": "网关", "unit": "台",
                                      "tax_rate": "13"})
    with pytest.raises(ValidationFailed) as err:
        contracts.create_quote({"opportunity_id": opp["id"], "lines": [
            {"product_id": items["mes"]["id"], "quantity": "1.23456"},
            {"product_id": "nope", "quantity": "1"},
        ]}, scope=REP_A)
    assert "lines" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        contracts.create_quote({"opportunity_id": opp["id"], "lines": [
            {"product_id": "nope", "quantity": "1"},
            {"product_id": other["id"], "quantity": "1"},
            {"product_id": items["mes"]["id"], "quantity": "1",
             "discount": {"kind": "amount", "value": "100001"}},
        ]}, scope=REP_A)
    assert set(err.value.errors) == {"lines.0.product_id", "lines.1.unit_price"}
    with pytest.raises(ValidationFailed) as err:
        contracts.create_quote({"opportunity_id": opp["id"], "lines": [
            {"product_id": items["mes"]["id"], "quantity": "1",
             "discount": {"kind": "amount", "value": "100001"}}]}, scope=REP_A)
    assert set(err.value.errors) == {"lines.0.discount"}


def test_quotes_follow_the_opportunitys_visibility(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    with pytest.raises(ValidationFailed) as err:  # rep-b does not see rep-a's opportunity
        contracts.create_quote({"opportunity_id": opp["id"], "lines": []}, scope=REP_B)
    assert err.value.errors == {"opportunity_id": ["no such opportunity"]}
    quote = new_quote(contracts, opp, items)
    for scope in (REP_A, MANAGER, ALL):
        assert contracts.get_quote(quote["id"], scope=scope)["id"] == quote["id"]
        assert [q["id"] for q in contracts.list_quotes(scope=scope)["items"]] == [quote["id"]]
    with pytest.raises(NotFound):
        contracts.get_quote(quote["id"], scope=REP_B)
    assert contracts.list_quotes(scope=REP_B)["items"] == []
    for call in (lambda: contracts.update_quote(quote["id"], {"title": "x"}, scope=REP_B),
                 lambda: contracts.revise_quote(quote["id"], scope=REP_B),
                 lambda: contracts.submit_quote(quote["id"], scope=REP_B),
                 lambda: contracts.accept_quote(quote["id"], scope=REP_B)):
        with pytest.raises(NotFound):
            call()


def test_only_a_draft_is_edited_and_revising_keeps_the_old_version(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    quote = new_quote(contracts, opp, items)
    edited = contracts.update_quote(quote["id"], {"discount": {"kind": "amount",
                                                               "value": "3629.73"}},
                                    scope=REP_A)
    assert edited["totals"]["net_total"] == "220000.00"
    approved = contracts.submit_quote(quote["id"], scope=REP_A)
    assert approved["status"] == "approved"  # no approval flow applies
    with pytest.raises(Conflict) as err:
        contracts.update_quote(quote["id"], {"title": "改"}, scope=REP_A)
    assert err.value.extra["status"] == "approved" and "approved" in str(err.value)

    revised = contracts.revise_quote(quote["id"], scope=REP_A)
    assert (revised["version"], revised["status"]) == (2, "draft")
    contracts.update_quote(quote["id"], {"lines": [
        {"product_id": items["mes"]["id"], "quantity": "1"}], "discount": None}, scope=REP_A)
    old = contracts.get_quote(quote["id"], scope=REP_A, version=1)
    assert old["version"] == 1 and old["current_version"] == 2
    assert old["totals"]["net_total"] == "220000.00" and len(old["lines"]) == 3
    assert contracts.get_quote(quote["id"], scope=REP_A)["totals"]["grand_total"] == \
        "113000.00"
    versions = contracts.list_quote_versions(quote["id"], scope=REP_A)["items"]
    assert [(v["number"], v["current"]) for v in versions] == [(1, False), (2, True)]
    with pytest.raises(NotFound):
        contracts.get_quote(quote["id"], scope=REP_A, version=3)
    [event] = events_of(make.engine, "quote_revised")
    assert event["data"]["previous_version"] == 1 and event["data"]["quote"]["version"] == 2


def test_transitions_are_enforced_and_announced(make):
    contracts, sales = make()
    items = catalogue(contracts)
    quote = new_quote(contracts, opportunity(sales), items)
    with pytest.raises(PreconditionFailed) as err:
        contracts.mark_quote_sent(quote["id"], scope=REP_A)
    assert err.value.extra["status"] == "draft"
    with pytest.raises(PreconditionFailed) as err:
        contracts.accept_quote(quote["id"], scope=REP_A)
    assert "draft" in str(err.value)
    contracts.submit_quote(quote["id"], scope=REP_A)
    sent = contracts.mark_quote_sent(quote["id"], scope=REP_A)
    assert sent["status"] == "sent"
    rejected = contracts.reject_quote(quote["id"], {"reason": "价格高"}, scope=REP_A)
    assert rejected["status"] == "rejected" and rejected["status_reason"] == "价格高"
    with pytest.raises(PreconditionFailed):
        contracts.accept_quote(quote["id"], scope=REP_A)
    changes = [(e["data"]["from_status"], e["data"]["to_status"])
               for e in events_of(make.engine, "quote_status_changed")]
    assert changes == [("draft", "approved"), ("approved", "sent"), ("sent", "rejected")]
    snapshot = events_of(make.engine, "quote_status_changed")[-1]["data"]["quote"]
    assert snapshot["id"] == quote["id"] and snapshot["status"] == "rejected"


def test_an_expired_quote_reads_expired_and_is_not_accepted(make):
    contracts, sales = make()
    items = catalogue(contracts)
    quote = new_quote(contracts, opportunity(sales), items)
    contracts.submit_quote(quote["id"], scope=REP_A)
    # valid until yesterday: written as stored by an earlier day (a draft can not be set so)
    with make.engine.begin() as conn:
        conn.execute(QuoteVersion.__table__.update().values(
            valid_until=today() - timedelta(days=1)))
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "expired"
    with pytest.raises(PreconditionFailed) as err:
        contracts.accept_quote(quote["id"], scope=REP_A)
    assert err.value.extra["status"] == "expired"
    revised = contracts.revise_quote(quote["id"], scope=REP_A)
    assert (revised["status"], revised["valid_until"]) == ("draft", None)
    later = (today() + timedelta(days=7)).isoformat()
    assert contracts.update_quote(quote["id"], {"valid_until": later},
                                  scope=REP_A)["valid_until"] == later
    assert contracts.get_quote(quote["id"], scope=REP_A, version=1)["status"] == "draft"


def test_accepting_moves_the_opportunity_to_won_with_the_quotes_amount(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales)
    quote = new_quote(contracts, opp, items)
    contracts.submit_quote(quote["id"], scope=REP_A)
    accepted = contracts.accept_quote(quote["id"], {"reason": "客户签字"}, scope=REP_A)
    assert accepted["status"] == "accepted"
    moved = sales.get_opportunity(opp["id"], scope=REP_A)
    assert moved["status"] == "won" and moved["amount"] == "251047.51"
    assert moved["won_lost_reason"] == "客户签字"
    [event] = events_of(make.engine, "quote_accepted")
    assert event["data"]["amount"] == "251047.51"
    assert event["data"]["opportunity_id"] == opp["id"]
    with pytest.raises(PreconditionFailed):
        contracts.revise_quote(quote["id"], scope=REP_A)


def test_when_sales_refuses_the_move_the_quote_is_not_accepted_and_says_why(make):
    contracts, sales = make()
    items = catalogue(contracts)
    opp = opportunity(sales, ready=False)
    quote = new_quote(contracts, opp, items)
    contracts.submit_quote(quote["id"], scope=REP_A)
    with pytest.raises(PreconditionFailed) as err:
        contracts.accept_quote(quote["id"], scope=REP_A)
    assert "sales refused" in str(err.value)
    missing = {m.get("field") or m.get("tag") for m in err.value.extra["missing"]}
    assert {"contact_id", "expected_close_date", "needs_analysis", "products"} <= missing
    assert contracts.get_quote(quote["id"], scope=REP_A)["status"] == "approved"
    assert sales.get_opportunity(opp["id"], scope=REP_A)["status"] == "open"
    assert events_of(make.engine, "quote_accepted") == []


def test_a_quote_with_a_pending_approval_is_locked_on_every_quote_write(make):
    contracts, sales = make()
    items = catalogue(contracts)
    quote = new_quote(contracts, opportunity(sales), items)
    contracts.define_approval_flow({"record_type": "quote", "name": "报价审批", "steps": [
        {"approvers": [{"kind": "user", "id": "director"}]}]})
    # submitted by its own command (the generic RPC refuses quotes: contract approval)
    assert contracts.submit_quote(quote["id"], scope=REP_A)["status"] == "in_approval"
    for call in (lambda: contracts.update_quote(quote["id"], {"title": "改"}, scope=REP_A),
                 lambda: contracts.revise_quote(quote["id"], scope=REP_A),
                 lambda: contracts.submit_quote(quote["id"], scope=REP_A)):
        with pytest.raises(Conflict) as err:
            call()
        assert err.value.extra["reason"] == "in_approval"
    assert contracts.get_quote(quote["id"], scope=REP_A)["title"] == "MES 报价"
