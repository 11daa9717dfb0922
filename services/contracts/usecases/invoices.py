"""Invoices (开票) of a contract, per receipt or per instalment (services/contracts/domain/
invoices.py has the rules). The caller's transaction; the contract row is locked first, so
two invoices of one contract are checked one after the other (the sums hold under
concurrency)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as contract_rules
from services.contracts.domain import invoices as domain
from services.contracts.models import Contract, Instalment, Invoice, Receipt
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed


def view(i: Invoice) -> dict[str, Any]:
    return {"id": i.id, "contract_id": i.contract_id, "receipt_id": i.receipt_id,
            "instalment_id": i.instalment_id, "title": i.title, "tax_number": i.tax_number,
            "type": i.type, "number": i.number, "issued_on": i.issued_on, "amount": i.amount,
            "status": i.status, "source": i.source, "void_reason": i.void_reason,
            "created_at": i.created_at.isoformat(), "updated_at": i.updated_at.isoformat()}


def _issued_sum(session: Session, *where: Any) -> Decimal:
    amounts = session.execute(select(Invoice.amount).where(Invoice.status == "issued", *where))
    return sum((Decimal(a) for a in amounts.scalars()), Decimal(0))


def _target(session: Session, contract_id: str, data: dict[str, Any]
            ) -> tuple[str | None, Decimal | None, Decimal]:
    """(what the invoice is for, its amount, what its issued invoices total)."""
    if data.get("receipt_id"):
        receipt = session.get(Receipt, data["receipt_id"])
        if receipt is None or receipt.contract_id != contract_id:
            raise ValidationFailed.for_fields({"receipt_id": ["no such receipt of the contract"]})
        return "receipt", Decimal(receipt.amount), _issued_sum(
            session, Invoice.receipt_id == receipt.id)
    if data.get("instalment_id"):
        instalment = session.get(Instalment, data["instalment_id"])
        if instalment is None or instalment.contract_id != contract_id:
            raise ValidationFailed.for_fields(
                {"instalment_id": ["no such instalment of the contract"]})
        if instalment.status == "void":
            raise ValidationFailed.for_fields({"instalment_id": ["the instalment is void"]})
        return "instalment", Decimal(instalment.amount), _issued_sum(
            session, Invoice.instalment_id == instalment.id)
    return None, None, Decimal(0)


def record_invoice(session: Session, contract: Contract, data: dict[str, Any],
                   source: str = "user") -> dict[str, Any]:
    """Store an issued invoice of `contract` (locked by the caller or here). 422 naming the
    field (tax_number, amount, receipt_id, instalment_id), 409 on a number already used for
    the type (`extra.field = number`) or a contract that was never signed."""
    session.refresh(contract, with_for_update=True)
    if contract.status in ("draft", "in_approval"):
        raise Conflict(f"a {contract.status} contract is not invoiced; sign it first",
                       {"status": contract.status})
    domain.check_tax_number(data.get("tax_number"), data["type"])
    amount = contract_rules.money(data["amount"])
    target, target_amount, target_invoiced = _target(session, contract.id, data)
    domain.check_amounts(amount, Decimal(contract.amount),
                         _issued_sum(session, Invoice.contract_id == contract.id),
                         target, target_amount, target_invoiced)
    taken = session.execute(select(func.count()).select_from(Invoice).where(
        Invoice.type == data["type"], Invoice.number == data["number"])).scalar_one()
    if taken:
        raise _number_taken(data)
    now = utcnow()
    invoice = Invoice(
        id=str(uuid.uuid4()), contract_id=contract.id, receipt_id=data.get("receipt_id"),
        instalment_id=data.get("instalment_id"), title=data["title"],
        tax_number=data.get("tax_number") or None, type=data["type"], number=data["number"],
        issued_on=data["issued_on"].isoformat(), amount=str(amount), status="issued",
        source=source, created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(invoice)
            session.flush()
    except IntegrityError:  # another contract's invoice took the number meanwhile
        raise _number_taken(data) from None
    return view(invoice)


def _number_taken(data: dict[str, Any]) -> Conflict:
    return Conflict(f"invoice number {data['number']} of type {data['type']} is already used",
                    {"field": "number"})


def list_invoices(session: Session, contract_id: str) -> dict[str, Any]:
    rows = session.execute(select(Invoice).where(Invoice.contract_id == contract_id)
                           .order_by(Invoice.issued_on, Invoice.created_at, Invoice.id))
    return {"items": [view(i) for i in rows.scalars()]}


def void_invoice(session: Session, contract: Contract, invoice_id: Any,
                 reason: str) -> dict[str, Any]:
    """issued -> void (412 when it is void already); its amount no longer counts."""
    session.refresh(contract, with_for_update=True)
    invoice = session.get(Invoice, invoice_id) if isinstance(invoice_id, str) else None
    if invoice is None or invoice.contract_id != contract.id:
        raise NotFound(f"no invoice {invoice_id} of contract {contract.id}")
    if invoice.status != "issued":
        raise PreconditionFailed(f"the invoice is {invoice.status}", {"status": invoice.status})
    invoice.status = "void"
    invoice.void_reason = reason
    invoice.updated_at = utcnow()
    session.flush()
    return view(invoice)


def invoiced_amounts(session: Session, contract_id: str) -> dict[str, str]:
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound(f"no contract {contract_id}")
    issued = [Decimal(a) for a in session.execute(select(Invoice.amount).where(
        Invoice.contract_id == contract_id, Invoice.status == "issued")).scalars()]
    figures = domain.invoiced_amounts(Decimal(contract.amount), issued)
    return {k: str(contract_rules.money(v)) for k, v in figures.items()}
