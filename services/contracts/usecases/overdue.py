"""Overdue instalments (services/contracts/domain/overdue.py): the sweep `mark_overdue(as_of)`
and the `instalment_paid` of a receipt that pays an instalment in full.

The sweep reads the candidates (not yet marked, open, due before `as_of`, of a signed contract)
and marks each in its own transaction whose first statement is a conditional UPDATE
(`... WHERE overdue_at IS NULL AND status IN (...)`): on PostgreSQL a concurrent sweep's UPDATE
waits for the row lock and then matches nothing, on SQLite the write lock serialises them, so
each instalment is marked, and its `instalment_overdue` recorded (outbox, same transaction),
exactly once however many sweeps run at once.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as contract_rules
from services.contracts.domain import overdue as rules
from services.contracts.models import ApprovalDirectoryUser, Contract, Instalment
from shared.envelope import utcnow

# Contracts whose instalments fall overdue: signed ones (an unsigned plan owes nothing yet).
SIGNED = ("active", "renewed", "terminated")
BATCH = 1000


def _candidates(session: Session, as_of: date, limit: int) -> list[str]:
    signed = select(Contract.id).where(Contract.status.in_(SIGNED))
    return list(session.scalars(
        select(Instalment.id).where(
            Instalment.overdue_at.is_(None), Instalment.status.in_(rules.OPEN_STATUSES),
            Instalment.due_date < as_of.isoformat(), Instalment.contract_id.in_(signed))
        .order_by(Instalment.due_date, Instalment.id).limit(limit)))


def team_of(session: Session, user_id: str | None) -> str | None:
    """The owner's team as the directory projection (gateway.user_changed) knows it."""
    if not user_id:
        return None
    return session.scalar(select(ApprovalDirectoryUser.team_id)
                          .where(ApprovalDirectoryUser.id == user_id))


def instalment_snapshot(session: Session, inst: Instalment, contract: Contract,
                        as_of: date | None = None) -> dict[str, Any]:
    """The instalment as the events carry it (the rules service's `instalment` record): with
    its contract's number, owner, team and customer, so a rule needs nothing else."""
    amount, paid = Decimal(inst.amount), Decimal(inst.paid)
    due = date.fromisoformat(inst.due_date)
    return {
        "id": inst.id, "seq": inst.seq, "contract_id": contract.id,
        "contract_number": contract.number, "contract_title": contract.title,
        "due_date": inst.due_date, "amount": str(inst.amount), "paid": str(inst.paid),
        "outstanding": str(contract_rules.money(rules.outstanding(amount, paid))),
        "currency": contract.currency, "status": inst.status,
        "days_overdue": rules.days_overdue(due, as_of) if as_of else 0,
        "owner_id": contract.owner_id, "team_id": team_of(session, contract.owner_id),
        "customer_id": contract.customer_id,
        "updated_at": utcnow().isoformat(),
    }


def _mark_one(session: Session, events: Any, instalment_id: str, as_of: date,
              now: datetime) -> dict[str, Any] | None:
    signed = select(Contract.id).where(Contract.status.in_(SIGNED))
    marked = session.execute(
        update(Instalment).where(
            Instalment.id == instalment_id, Instalment.overdue_at.is_(None),
            Instalment.status.in_(rules.OPEN_STATUSES),
            Instalment.due_date < as_of.isoformat(), Instalment.contract_id.in_(signed))
        .values(status="overdue", overdue_at=now)
        .execution_options(synchronize_session=False))
    if marked.rowcount != 1:
        return None  # another sweep (or a receipt) was first
    inst = session.execute(select(Instalment).where(Instalment.id == instalment_id)
                           .execution_options(populate_existing=True)).scalar_one()
    contract = session.get(Contract, inst.contract_id)
    snapshot = instalment_snapshot(session, inst, contract, as_of)
    events.record(session, "instalment_overdue", {
        "instalment": snapshot, "contract_id": contract.id,
        "contract_number": contract.number, "days_overdue": snapshot["days_overdue"]})
    return {"id": inst.id, "seq": inst.seq, "contract_id": contract.id,
            "contract_number": contract.number, "outstanding": snapshot["outstanding"],
            "days_overdue": snapshot["days_overdue"]}


def mark_overdue(db: Any, events: Any, as_of: date, limit: int = BATCH) -> dict[str, Any]:
    """Mark the instalments overdue on `as_of` that are not marked yet; each publishes one
    `instalment_overdue`. Returns `{as_of, marked: [...]}` (what this sweep marked)."""
    marked: list[dict[str, Any]] = []
    while True:  # in batches of `limit`, until none is left
        with db.read() as session:
            candidates = _candidates(session, as_of, limit)
        for instalment_id in candidates:
            with db.begin() as session:
                done = _mark_one(session, events, instalment_id, as_of, utcnow())
            if done is not None:
                marked.append(done)
        if len(candidates) < limit:
            return {"as_of": as_of.isoformat(), "marked": marked}


def paid_before(session: Session, contract_id: str) -> dict[str, Decimal]:
    """Each instalment's paid amount, before a receipt is allocated."""
    return {i.id: Decimal(i.paid) for i in session.scalars(
        select(Instalment).where(Instalment.contract_id == contract_id))}


def publish_paid(session: Session, events: Any, contract_id: str,
                 before: dict[str, Decimal]) -> list[str]:
    """`instalment_paid` for every instalment a receipt just paid in full (call after the
    receipt is allocated, in its transaction, with `paid_before`'s answer)."""
    contract = session.get(Contract, contract_id)
    paid: list[str] = []
    for inst in session.scalars(select(Instalment).where(Instalment.contract_id == contract_id)
                                .order_by(Instalment.seq)):
        amount = Decimal(inst.amount)
        if rules.became_paid(before.get(inst.id, Decimal(0)), Decimal(inst.paid), amount):
            events.record(session, "instalment_paid", {
                "instalment": instalment_snapshot(session, inst, contract),
                "contract_id": contract_id, "contract_number": contract.number,
                "was_overdue": inst.overdue_at is not None})
            paid.append(inst.id)
    return paid


def overdue_amount(session: Session, contract_id: str) -> Decimal:
    """The outstanding of the instalments marked overdue (agrees with the receivables'
    `overdue` of the day the sweep ran for)."""
    return sum((rules.outstanding(Decimal(i.amount), Decimal(i.paid)) for i in session.scalars(
        select(Instalment).where(Instalment.contract_id == contract_id,
                                 Instalment.status == "overdue"))), Decimal(0))
