"""Contracts use cases: creation with a gap-free number (services/contracts/domain/contracts.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as domain
from services.contracts.models import Contract, ContractCounter
from shared.envelope import utcnow


def next_number(session: Session, year: int) -> str:
    """Take the next number of `year` in the caller's transaction: the counter row is created
    once (a concurrent creator loses the insert and retries the update), then incremented with
    UPDATE ... RETURNING, which holds the row lock (PostgreSQL) or the write lock (SQLite)
    until the contract insert commits; a rollback gives the number back."""
    stmt = (update(ContractCounter).where(ContractCounter.year == year)
            .values(value=ContractCounter.value + 1).returning(ContractCounter.value))
    value = session.execute(stmt).scalar_one_or_none()
    if value is None:
        try:
            with session.begin_nested():
                session.execute(insert(ContractCounter).values(year=year, value=0))
        except IntegrityError:
            pass
        value = session.execute(stmt).scalar_one()
    return domain.format_number(year, value)


def create_contract(session: Session, data: dict[str, Any], owner_id: str) -> dict[str, Any]:
    now = utcnow()
    contract = Contract(
        id=str(uuid.uuid4()), number=next_number(session, now.year), status="draft",
        title=data["title"], customer_id=data["customer_id"],
        opportunity_id=data.get("opportunity_id"), owner_id=owner_id,
        amount=str(domain.money(data["amount"])), currency=data.get("currency", "CNY"),
        parties=data.get("parties", []), clauses=data.get("clauses", []),
        attachments=data.get("attachments", []), start_date=data.get("start_date"),
        end_date=data.get("end_date"), renews_id=data.get("renews_id"),
        created_at=now, updated_at=now)
    session.add(contract)
    session.flush()
    return {"id": contract.id, "number": contract.number, "status": contract.status,
            "amount": contract.amount}


def numbers(session: Session) -> list[str]:
    return list(session.execute(select(Contract.number).order_by(Contract.number)).scalars())
