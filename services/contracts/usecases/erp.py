"""Orders to the ERP (with their lines) and the ERP's inbound events.

Outbound: signing a contract stores its order (`contract_orders`) and records `order_created`
with the order's lines: the accepted quote's non-optional lines when the contract's
opportunity has an accepted quote of the contract's currency whose grand total is the
contract amount (so the lines always sum to the order amount), else one line for the
contract amount.

Inbound (exchange `erp.events`, routing key = event type, body = the CRM envelope with the
ERP's message id as `event_id`; `data` has the schema of contract.INBOUND_EVENT_SCHEMAS):
- a message that cannot be an envelope is dead-lettered by the consumer itself
  (shared/consumer.py);
- `data` that does not fit its schema, an unknown contract or order, an amount over what the
  contract allows: `Unprocessable`, dead-lettered at once with the reason (a retry cannot fix
  it);
- each message is handled once: its `event_id` is recorded in the inbox in the transaction of
  its effect (a redelivery after a crash between commit and ack is skipped), and so is its
  ERP `reference` (the same payment sent again under another message id is one receipt).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as contract_rules
from services.contracts.models import Contract, Order, Quote, QuoteVersion, Receipt
from services.contracts.models import inbox as inbox_table
from services.contracts.usecases import contracts as contracts_uc
from services.contracts.usecases import invoices as invoices_uc
from shared import config
from shared.consumer import Unprocessable
from shared.envelope import utcnow
from shared.errors import CrmError
from shared.inbox import command_id, first_delivery

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")


# --------------------------------------------------------------------------- orders


def _accepted_quote(session: Session, contract: Contract) -> tuple[Quote, QuoteVersion] | None:
    """The quote of the contract's order lines: the one it was made from (`quote_id`), else
    (a contract made before quote_id was kept, or without one) the opportunity's newest
    accepted quote."""
    if contract.quote_id:
        quote = session.get(Quote, contract.quote_id)
        if quote is None or quote.status != "accepted":
            return None
        version = session.get(QuoteVersion, (quote.id, quote.version))
        return (quote, version) if version is not None else None
    if not contract.opportunity_id:
        return None
    quote = session.execute(
        select(Quote).where(Quote.opportunity_id == contract.opportunity_id,
                            Quote.status == "accepted")
        .order_by(Quote.updated_at.desc(), Quote.id).limit(1)).scalar_one_or_none()
    if quote is None:
        return None
    version = session.get(QuoteVersion, (quote.id, quote.version))
    return (quote, version) if version is not None else None


def quote_order_lines(terms: dict[str, Any]) -> list[dict[str, Any]]:
    """The order lines of a quote version's terms: its non-optional lines, each net of every
    discount (its own and its share of the quote's)."""
    lines = []
    for line in terms["lines"]:
        if line.get("optional"):
            continue
        net = Decimal(line["net"]) - Decimal(line.get("quote_discount_share") or 0)
        lines.append({
            "seq": len(lines) + 1, "product_id": line.get("product_id"),
            "product_code": line.get("product_code"),
            "product_name": line.get("product_name") or line.get("product_code") or "",
            "unit": line.get("unit"), "quantity": str(line["quantity"]),
            "unit_price": str(line["unit_price"]),
            "discount": str(contract_rules.money(Decimal(line["gross"]) - net)),
            "tax_rate": None if line.get("tax_rate") is None else str(line["tax_rate"]),
            "net": str(contract_rules.money(net)), "tax": str(line["tax"]),
            "total": str(line["total"])})
    return lines


def amount_line(contract: Contract) -> dict[str, Any]:
    amount = str(contract_rules.money(contract.amount))
    return {"seq": 1, "product_id": None, "product_code": None, "product_name": contract.title,
            "unit": None, "quantity": "1", "unit_price": amount, "discount": str(ZERO),
            "tax_rate": None, "net": amount, "tax": str(ZERO), "total": amount}


def order_lines(session: Session, contract: Contract) -> tuple[list[dict], dict[str, Any]]:
    """(lines, source) of a contract's order."""
    found = _accepted_quote(session, contract)
    if found is not None:
        quote, version = found
        terms = version.terms
        if (terms.get("currency") == contract.currency
                and contract_rules.money(terms["totals"]["grand_total"])
                == contract_rules.money(contract.amount)):
            lines = quote_order_lines(terms)
            if lines:
                return lines, {"kind": "quote", "quote_id": quote.id,
                               "quote_version": version.number}
    return [amount_line(contract)], {"kind": "contract", "quote_id": None,
                                     "quote_version": None}


def order_data(order: Order, contract_number: str) -> dict[str, Any]:
    return {"number": order.number, "contract_id": order.contract_id,
            "contract_number": contract_number, "customer_id": order.customer_id,
            "amount": order.amount, "currency": order.currency, "lines": order.lines,
            "source": order.source, "status": order.status}


def create_order(session: Session, events: Any, contract: Contract) -> dict[str, Any]:
    """The order of a contract just signed, stored and published (`order_created`)."""
    lines, source = order_lines(session, contract)
    now = utcnow()
    order = Order(id=str(uuid.uuid4()), number=contracts_uc.order_number(contract.number),
                  contract_id=contract.id, customer_id=contract.customer_id,
                  amount=str(contract_rules.money(contract.amount)),
                  currency=contract.currency, lines=lines, source=source, status="created",
                  created_at=now, updated_at=now)
    session.add(order)
    session.flush()
    data = order_data(order, contract.number)
    events.record(session, "order_created", {"order": data})
    return data


# --------------------------------------------------------------------------- events


def receipt_recorded(session: Session, events: Any, contract: Contract, receipt_id: str,
                     source: str, payer: str | None = None) -> dict[str, Any]:
    """Record `receipt_recorded` for a receipt just stored; returns the receipt's view (with
    `payer` {name, account, reference} and `source`); `payer` of the event is the name."""
    listed = contracts_uc.list_receipts(session, contract.id)["items"]
    receipt = next(r for r in listed if r["id"] == receipt_id)
    events.record(session, "receipt_recorded", {
        "receipt": receipt, "contract": contracts_uc.snapshot(contract), "source": source,
        "payer": payer})
    return receipt


def invoice_event(session: Session, events: Any, event_type: str, contract: Contract,
                  invoice: dict[str, Any]) -> dict[str, Any]:
    events.record(session, event_type, {"invoice": invoice,
                                        "contract": contracts_uc.snapshot(contract)})
    return invoice


# --------------------------------------------------------------------------- inbound


def handle_inbound(worker: Any, event_type: str, envelope: dict[str, Any],
                   schema: type[Schema]) -> str:
    """Handle one ERP message; what it did ("recorded", "duplicate", ...). Raises
    `Unprocessable` (dead-lettered at once) for what no retry can fix; anything else (the
    database away) is retried by the consumer."""
    try:
        data = schema().load(envelope["data"])
    except ValidationError as err:
        raise Unprocessable(f"erp.{event_type}: data does not fit its schema: "
                            f"{err.messages}") from None
    handler = f"contracts.erp.{event_type}"
    try:
        with worker.db.begin() as session:
            if not first_delivery(session, inbox_table, envelope["event_id"], handler):
                return "duplicate message"
            reference = data.get("reference") if event_type in ONCE_PER_REFERENCE else None
            if reference and not first_delivery(
                    session, inbox_table, command_id(f"erp.{event_type}:{reference}"),
                    f"{handler}:reference"):
                log.info("erp.%s: reference %s was handled already", event_type, reference)
                return "duplicate reference"
            HANDLERS[event_type](session, worker.events, data)
            return "recorded"
    except CrmError as err:
        if err.status >= 500:
            raise
        raise Unprocessable(f"erp.{event_type}: {type(err).__name__}: {err.detail} "
                            f"{err.extra or ''}".strip()) from None


def _contract_of(session: Session, data: dict[str, Any],
                 refused: tuple[str, ...] = ("draft", "in_approval")) -> Contract:
    """The contract a message names (its number, or its order's number), signed unless
    `refused` says otherwise."""
    contract = None
    if data.get("order_number"):
        order = session.execute(select(Order).where(
            Order.number == data["order_number"])).scalar_one_or_none()
        if order is None:
            raise Unprocessable(f"no order {data['order_number']}")
        contract = session.get(Contract, order.contract_id, with_for_update=True)
    if data.get("contract_number"):
        by_number = session.execute(select(Contract).where(
            Contract.number == data["contract_number"]).with_for_update()).scalar_one_or_none()
        if by_number is None:
            raise Unprocessable(f"no contract {data['contract_number']}")
        if contract is not None and contract.id != by_number.id:
            raise Unprocessable(f"order {data['order_number']} is not of contract "
                                f"{data['contract_number']}")
        contract = by_number
    if contract is None:
        raise Unprocessable("the message names no contract")
    if contract.status in refused:
        raise Unprocessable(f"contract {contract.number} is {contract.status}, not signed")
    return contract


def _business_day(moment: datetime) -> Any:
    return moment.astimezone(ZoneInfo(config.timezone_name())).date()


def erp_payer(data: dict[str, Any]) -> dict[str, Any] | None:
    """The payer of an ERP payment: its name, bank account and reference, as far as it says
    (None when it says nothing)."""
    if not any(data.get(k) for k in ("payer", "payer_account", "payer_reference")):
        return None
    return {"name": data.get("payer"), "account": data.get("payer_account"),
            "reference": data.get("payer_reference")}


def _payment_received(session: Session, events: Any, data: dict[str, Any]) -> None:
    """A receipt (source erp). Money that arrived is a fact: it is recorded also while the
    contract is in approval (users' receipts are refused then, by the lock); a draft is
    not yet a contract the ERP knows, so its payments are dead-lettered."""
    contract = _contract_of(session, data, refused=("draft",))
    received_on = _business_day(data["paid_at"])
    payer = erp_payer(data)
    stored = contracts_uc.record_receipt(session, contract.id, {
        "amount": data["amount"], "received_on": received_on,
        "method": data.get("method") or "erp", "reference": data["reference"],
        "instalment_id": data.get("instalment_id"), "payer": payer},
        _business_day(utcnow()), events=events, source="erp")
    receipt_recorded(session, events, contract, stored["id"], "erp",
                     payer["name"] if payer else None)


def _invoice_issued(session: Session, events: Any, data: dict[str, Any]) -> None:
    contract = _contract_of(session, data)
    values = dict(data)
    if data.get("payment_reference"):
        receipt_id = session.execute(select(Receipt.id).where(
            Receipt.contract_id == contract.id,
            Receipt.reference == data["payment_reference"])).scalar()
        if receipt_id is None:
            raise Unprocessable(f"no receipt of payment {data['payment_reference']} on "
                                f"contract {contract.number}")
        values["receipt_id"] = receipt_id
    invoice = invoices_uc.record_invoice(session, contract, values, source="erp")
    invoice_event(session, events, "invoice_recorded", contract, invoice)


def _order_shipped(session: Session, events: Any, data: dict[str, Any]) -> None:
    order = session.execute(select(Order).where(
        Order.number == data["order_number"]).with_for_update()).scalar_one_or_none()
    if order is None:
        raise Unprocessable(f"no order {data['order_number']}")
    if order.status == "shipped":
        return
    order.status = "shipped"
    order.shipped_at = data["shipped_at"]
    order.erp_id = data.get("reference")
    order.updated_at = utcnow()
    session.flush()
    contract = session.get(Contract, order.contract_id)
    events.record(session, "order_shipped", {
        "order": order_data(order, contract.number if contract else ""),
        "shipped_at": order.shipped_at.isoformat()})


# Effects taken once per ERP reference; a shipment is idempotent by the order's state.
ONCE_PER_REFERENCE = ("payment_received", "invoice_issued")
HANDLERS = {"payment_received": _payment_received, "invoice_issued": _invoice_issued,
            "order_shipped": _order_shipped}


def get_order(session: Session, contract: Contract) -> dict[str, Any] | None:
    order = session.execute(select(Order).where(
        Order.contract_id == contract.id)).scalar_one_or_none()
    if order is None:
        return None
    return {**order_data(order, contract.number),
            "shipped_at": order.shipped_at.isoformat() if order.shipped_at else None}
