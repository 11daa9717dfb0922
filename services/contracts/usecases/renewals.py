"""Contract renewals (services/contracts/domain/overdue.py has the rules): a renewal is a new
draft linked to the old contract; signing it makes the old one `renewed`."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contracts.domain import overdue as rules
from services.contracts.models import Contract
from services.contracts.usecases import contracts as contracts_uc
from shared.envelope import utcnow


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def renew_contract(db: Any, events: Any, contract_id: str, data: dict[str, Any],
                   scope: dict[str, Any]) -> dict[str, Any]:
    """A draft renewal of a contract the caller sees (hidden: 404): the old one's parties,
    clauses, customer and owner; start = old end + 1 day, amount = the old one's, unless
    given. 409 unless the old one is active (or expired), or when it already has a renewal."""
    with db.begin() as session:
        old = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
        terms = rules.renewal_terms({
            "status": contracts_uc.status_of(old), "renewed_by_id": old.renewed_by_id,
            "title": old.title, "amount": old.amount, "currency": old.currency,
            "customer_id": old.customer_id, "opportunity_id": old.opportunity_id,
            "parties": old.parties, "clauses": old.clauses,
            "start_date": _date(old.start_date), "end_date": _date(old.end_date)}, data)
        created = contracts_uc.create_contract(session, {**terms, "renews_id": old.id},
                                               old.owner_id)
        old.renewed_by_id = created["id"]
        old.updated_at = utcnow()
        session.flush()
        renewal = session.get(Contract, created["id"])
        events.record(session, "contract_created", {"contract": contracts_uc.snapshot(renewal)})
        return contracts_uc.contract_view(renewal)


def on_signed(session: Session, events: Any, contract: Contract) -> None:
    """In the transaction that signs `contract`: when it renews another (active or expired)
    contract, that one becomes `renewed` and `contract_renewed` is recorded."""
    if not contract.renews_id:
        return
    old = session.execute(select(Contract).where(Contract.id == contract.renews_id)
                          .with_for_update()).scalar_one_or_none()
    if old is None or old.status != "active":
        return  # terminated meanwhile (or already renewed): nothing to renew
    contracts_uc.transition(old, "renewed")
    old.renewed_by_id = contract.id
    session.flush()
    events.record(session, "contract_renewed", {
        "contract": contracts_uc.snapshot(old), "renewal": contracts_uc.snapshot(contract)})
