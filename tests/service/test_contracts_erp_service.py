"""The erp part of the contracts service with nameko's worker_factory, on SQLite and
PostgreSQL: order lines in order_created (from the accepted quote, or one line for the
amount), invoices (开票) and their limits, receivables with invoiced amounts, and the ERP's
inbound events: once per message id and per reference, Unprocessable (dead-lettered) when
malformed or naming no contract."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from sqlalchemy import func, select

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import Quote, QuoteVersion, Receipt, outbox
from services.contracts.service import ContractsService
from services.contracts.usecases import contracts as contracts_uc
from shared.consumer import Unprocessable
from shared.context import Context
from shared.db import get_engine
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}
OWN = {"owner_ids": ["rep"]}
OTHER = {"owner_ids": ["someone-else"]}
TAX_NUMBER = "91350100M000100Y43"


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request, tmp_path):
    engine = get_engine(migrated_database(request, tmp_path, "contracts"))
    worker = service_worker(ContractsService, engine, outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-1", actor="rep"))
    worker.engine = engine
    return worker


def events_of(engine, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e["data"] for e in map(json.loads, rows) if e["event_type"] == event_type]


def new_contract(service, amount="1000.00", opportunity_id=None) -> dict:
    with service.db.begin() as session:
        return contracts_uc.create_contract(session, {
            "title": "年度服务", "customer_id": "cust-1", "opportunity_id": opportunity_id,
            "amount": amount}, "rep")


def accepted_quote(service, opportunity_id: str) -> str:
    """An accepted quote with two counted lines (a line discount and a quote-level share)
    and an optional one, totalling 1130.00 + 211.90 = 1341.90."""
    quote_id = str(uuid.uuid4())
    lines = [
        {"product_id": "p1", "product_code": "SW-1", "product_name": "软件许可", "unit": "套",
         "quantity": "2", "unit_price": "500", "discount": {"kind": "percent", "value": "10"},
         "optional": False, "tax_rate": "13", "gross": "1000.00", "net": "900.00",
         "quote_discount_share": "0.00", "tax": "117.00", "total": "1017.00"},
        {"product_id": "p2", "product_code": "SV-1", "product_name": "实施服务", "unit": "人天",
         "quantity": "1", "unit_price": "200", "discount": None, "optional": False,
         "tax_rate": "6", "gross": "200.00", "net": "200.00",
         "quote_discount_share": "10.00", "tax": "11.40", "total": "201.40"},
        {"product_id": "p3", "product_code": "HW-9", "product_name": "选配硬件", "unit": "台",
         "quantity": "1", "unit_price": "999", "discount": None, "optional": True,
         "tax_rate": "13", "gross": "999.00", "net": "999.00",
         "quote_discount_share": "0.00", "tax": "129.87", "total": "1128.87"},
    ]
    terms = {"currency": "CNY", "lines": lines, "totals": {
        "subtotal": "1100.00", "discount_total": "10.00", "net_total": "1090.00",
        "tax_total": "128.40", "grand_total": "1218.40"}, "amount_in_words": "x"}
    now = utcnow()
    with service.db.begin() as session:
        session.add(Quote(id=quote_id, opportunity_id=opportunity_id, customer_id="cust-1",
                          owner_id="rep", status="accepted", version=1, created_at=now,
                          updated_at=now))
        session.add(QuoteVersion(quote_id=quote_id, number=1, terms=terms, created_at=now))
    return quote_id


def envelope(event_type: str, data: dict, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "event_type": event_type,
            "version": 1, "occurred_at": "2026-12-03T00:00:00+00:00", "producer": "erp",
            "data": data}


# --------------------------------------------------------------------------- order lines


def test_order_lines_from_the_accepted_quote(service):
    quote_id = accepted_quote(service, "opp-1")
    contract = new_contract(service, "1218.40", "opp-1")
    service.sign_contract(contract["id"], ALL)
    (order,) = [e["order"] for e in events_of(service.engine, "order_created")]
    assert order["source"] == {"kind": "quote", "quote_id": quote_id, "quote_version": 1}
    assert [(line["product_code"], line["quantity"], line["unit_price"], line["discount"],
             line["tax_rate"], line["net"], line["tax"], line["total"])
            for line in order["lines"]] == [
        ("SW-1", "2", "500", "100.00", "13", "900.00", "117.00", "1017.00"),
        ("SV-1", "1", "200", "10.00", "6", "190.00", "11.40", "201.40")]
    assert sum(float(line["total"]) for line in order["lines"]) == pytest.approx(1218.40)
    assert order["number"] == contracts_uc.order_number(contract["number"])
    assert order["amount"] == "1218.40" and order["status"] == "created"
    assert service.get_contract_order(contract["id"], OWN)["lines"] == order["lines"]


def test_a_direct_contract_is_one_line_for_its_amount(service):
    accepted_quote(service, "opp-2")  # 1218.40: not this contract's amount
    contract = new_contract(service, "5000.00", "opp-2")
    service.sign_contract(contract["id"], ALL)
    (order,) = [e["order"] for e in events_of(service.engine, "order_created")]
    assert order["source"]["kind"] == "contract"
    assert [(line["product_name"], line["quantity"], line["unit_price"], line["total"])
            for line in order["lines"]] == [("年度服务", "1", "5000.00", "5000.00")]


def test_no_order_before_signing_and_hidden_contracts(service):
    contract = new_contract(service)
    with pytest.raises(NotFound):
        service.get_contract_order(contract["id"], ALL)
    service.sign_contract(contract["id"], ALL)
    with pytest.raises(NotFound):
        service.get_contract_order(contract["id"], OTHER)


# --------------------------------------------------------------------------- invoices


def signed_with_plan(service, amount="1000.00") -> tuple[dict, list[dict]]:
    contract = new_contract(service, amount)
    service.sign_contract(contract["id"], ALL)
    plan = service.set_payment_plan(contract["id"], {"instalments": [
        {"due_date": "2027-01-01", "amount": "400"},
        {"due_date": "2027-06-01", "amount": "600"}]}, OWN)["items"]
    return contract, plan


def invoice(number: str, amount: str, **extra) -> dict:
    return {"title": "某某科技有限公司", "tax_number": TAX_NUMBER, "type": "special",
            "number": number, "issued_on": "2026-12-03", "amount": amount, **extra}


def test_invoices_limits_numbers_void_and_receivables(service):
    contract, plan = signed_with_plan(service)
    receipt = service.record_receipt(contract["id"], {"amount": "300",
                                                      "received_on": "2026-12-01"}, OWN)
    first = service.record_invoice(contract["id"], invoice("0001", "300",
                                                           receipt_id=receipt["id"]), OWN)
    assert first["status"] == "issued" and first["source"] == "user"
    with pytest.raises(ValidationFailed) as err:  # the receipt is fully invoiced
        service.record_invoice(contract["id"], invoice("0002", "0.01",
                                                       receipt_id=receipt["id"]), OWN)
    assert list(err.value.errors) == ["amount"]
    with pytest.raises(ValidationFailed) as err:  # over the instalment
        service.record_invoice(contract["id"], invoice("0002", "600.01",
                                                       instalment_id=plan[1]["id"]), OWN)
    assert list(err.value.errors) == ["amount"]
    service.record_invoice(contract["id"], invoice("0002", "600",
                                                   instalment_id=plan[1]["id"]), OWN)
    with pytest.raises(ValidationFailed) as err:  # over the contract: 300 + 600 + 100.01
        service.record_invoice(contract["id"], invoice("0003", "100.01"), OWN)
    assert list(err.value.errors) == ["amount"]
    with pytest.raises(Conflict) as err:  # the number is taken for the type
        service.record_invoice(contract["id"], invoice("0001", "1"), OWN)
    assert err.value.extra["field"] == "number"
    # the same number of another type is another invoice
    normal = service.record_invoice(contract["id"], invoice("0001", "100", type="normal",
                                                            tax_number=None), OWN)
    with pytest.raises(ValidationFailed) as err:
        service.record_invoice(contract["id"], invoice("0009", "1",
                                                       tax_number="91350100M000100Y44"), OWN)
    assert list(err.value.errors) == ["tax_number"]
    assert service.contract_receivables(contract["id"], OWN)["invoiced"] == "1000.00"
    voided = service.void_invoice(contract["id"], normal["id"], {"reason": "开错"}, OWN)
    assert voided["status"] == "void"
    with pytest.raises(PreconditionFailed):
        service.void_invoice(contract["id"], normal["id"], {"reason": "again"}, OWN)
    figures = service.contract_receivables(contract["id"], OWN)
    assert (figures["invoiced"], figures["uninvoiced"], figures["received"]) == (
        "900.00", "100.00", "300.00")
    assert [i["number"] for i in service.list_invoices(contract["id"], OWN)["items"]] == [
        "0001", "0002", "0001"]
    assert [e["invoice"]["id"] for e in events_of(service.engine, "invoice_voided")] == [
        normal["id"]]
    assert len(events_of(service.engine, "invoice_recorded")) == 3
    for call in (lambda: service.list_invoices(contract["id"], OTHER),
                 lambda: service.record_invoice(contract["id"], invoice("0100", "1"), OTHER),
                 lambda: service.void_invoice(contract["id"], first["id"], {"reason": "x"},
                                              OTHER)):
        with pytest.raises(NotFound):
            call()


def test_a_draft_contract_is_not_invoiced(service):
    contract = new_contract(service)
    with pytest.raises(Conflict):
        service.record_invoice(contract["id"], invoice("0001", "1"), OWN)


# --------------------------------------------------------------------------- inbound


def receipts(service, contract_id: str) -> int:
    with service.db.read() as session:
        return session.execute(select(func.count()).select_from(Receipt).where(
            Receipt.contract_id == contract_id)).scalar_one()


def test_erp_payment_once_per_message_and_reference(service):
    contract, plan = signed_with_plan(service)
    data = {"contract_number": contract["number"], "amount": "450.00",
            "paid_at": "2026-12-01T23:30:00+00:00", "reference": "ERP-PAY-1", "payer": "某某"}
    message = envelope("payment_received", data)
    service.on_erp_payment_received(message)
    service.on_erp_payment_received(message)  # redelivered
    service.on_erp_payment_received(envelope("payment_received", data))  # sent again
    assert receipts(service, contract["id"]) == 1
    (stored,) = service.list_receipts(contract["id"], OWN)["items"]
    # 23:30 UTC is the next day in Asia/Shanghai; matched oldest due first
    assert (stored["received_on"], stored["method"], stored["reference"]) == (
        "2026-12-02", "erp", "ERP-PAY-1")
    assert [a["amount"] for a in stored["allocations"]] == ["400.00", "50.00"]
    (event,) = events_of(service.engine, "receipt_recorded")
    assert event["source"] == "erp" and event["payer"] == "某某"
    # by the order number too
    service.on_erp_payment_received(envelope("payment_received", {
        "order_number": contracts_uc.order_number(contract["number"]), "amount": "10",
        "paid_at": "2026-12-02T10:00:00+08:00", "reference": "ERP-PAY-2"}))
    assert service.contract_receivables(contract["id"], OWN)["received"] == "460.00"


@pytest.mark.parametrize("data, why", [
    ({"amount": "1", "paid_at": "2026-12-01T10:00:00+08:00", "reference": "R"},
     "contract_number"),
    ({"contract_number": "{number}", "amount": 1.5, "paid_at": "2026-12-01T10:00:00+08:00",
      "reference": "R"}, "amount"),
    ({"contract_number": "{number}", "amount": "1", "reference": "R"}, "paid_at"),
    ({"contract_number": "HT-1999-000001", "amount": "1",
      "paid_at": "2026-12-01T10:00:00+08:00", "reference": "R"}, "no contract"),
    ({"contract_number": "{number}", "amount": "1", "paid_at": "2026-12-01T10:00:00+08:00",
      "reference": "R", "instalment_id": "nope"}, "instalment_id"),
])
def test_erp_messages_that_cannot_be_handled_are_unprocessable(service, data, why):
    contract, _ = signed_with_plan(service)
    data = {k: (v.format(number=contract["number"]) if isinstance(v, str) else v)
            for k, v in data.items()}
    with pytest.raises(Unprocessable) as err:
        service.on_erp_payment_received(envelope("payment_received", data))
    assert why in str(err.value)
    assert receipts(service, contract["id"]) == 0


def test_erp_invoice_and_shipment(service):
    contract, _ = signed_with_plan(service)
    service.on_erp_payment_received(envelope("payment_received", {
        "contract_number": contract["number"], "amount": "400",
        "paid_at": "2026-12-01T10:00:00+08:00", "reference": "ERP-PAY-9"}))
    issued = {"contract_number": contract["number"], "reference": "ERP-INV-1",
              "title": "某某科技有限公司", "tax_number": TAX_NUMBER, "type": "electronic",
              "number": "24310000000000000001", "issued_on": "2026-12-02", "amount": "400",
              "payment_reference": "ERP-PAY-9"}
    service.on_erp_invoice_issued(envelope("invoice_issued", issued))
    service.on_erp_invoice_issued(envelope("invoice_issued", issued))  # again: one invoice
    (stored,) = service.list_invoices(contract["id"], OWN)["items"]
    assert stored["source"] == "erp" and stored["receipt_id"]
    with pytest.raises(Unprocessable):  # over the receipt
        service.on_erp_invoice_issued(envelope("invoice_issued", {
            **issued, "reference": "ERP-INV-2", "number": "2", "amount": "0.01"}))
    order_number = contracts_uc.order_number(contract["number"])
    shipped = {"order_number": order_number, "shipped_at": "2026-12-03T09:00:00+08:00",
               "reference": "DN-1"}
    service.on_erp_order_shipped(envelope("order_shipped", shipped))
    service.on_erp_order_shipped(envelope("order_shipped", shipped))
    order = service.get_contract_order(contract["id"], OWN)
    assert order["status"] == "shipped" and order["shipped_at"].startswith("2026-12-03T01:00")
    assert len(events_of(service.engine, "order_shipped")) == 1
    with pytest.raises(Unprocessable):
        service.on_erp_order_shipped(envelope("order_shipped", {
            **shipped, "order_number": "SO-1999-000001"}))
    assert date.fromisoformat(stored["issued_on"]) == date(2026, 12, 2)
