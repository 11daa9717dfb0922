"""Contracts through approvals, with no bypass (issue 16), as quotes are
(usecases/quotes.py): the contract's approval terms, submit, the decision's callback, the lock
on every write path, re-verification when signing, draft edits, the standard clauses, and the
escalation command the rules service calls when a step's deadline passes.

Statuses (domain/contracts.py): submit draft -> in_approval when an active flow of record type
`contract` matches the terms, else draft -> approved at once; the decision moves in_approval ->
approved (approve) or -> draft (reject, recall, void); sign approved -> active after the
approval is verified against the stored terms (a draft no flow applies to is signed as well).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.domain import approvals as approvals_domain
from services.contracts.domain import contracts as domain
from services.contracts.models import Contract, Instalment, StandardClause
from services.contracts.usecases import approvals, attachments
from services.contracts.usecases.approvals import require_unlocked
from services.contracts.usecases.contracts import contract_view, snapshot, visible_contract
from shared.envelope import utcnow
from shared.errors import Conflict, PreconditionFailed, ValidationFailed

RECORD_TYPE = "contract"
CHANGEABLE = ("title", "amount", "currency", "start_date", "end_date", "clauses")


# -- terms ---------------------------------------------------------------------------------

def standard_clauses(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(StandardClause).order_by(StandardClause.position,
                                                           StandardClause.code))
    return [{"code": row.code, "title": row.title, "text": row.text} for row in rows]


def _clause_key(clauses: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(c.get("code")), " ".join(str(c.get("text") or "").split())) for c in clauses]


def approval_terms(session: Session, contract: Contract) -> dict[str, Any]:
    """What an approver decides on (hashed; flow conditions read it): number, title,
    customer, opportunity, owner, amount, currency, start and end, the clauses, and
    `clauses_changed`: true when the clauses (code and text, whitespace-insensitive, in
    order) are not the standard clauses (标准条款; no standard kept: any clause is a change),
    with `changed_clause_codes` naming the clauses that are new or differ from the
    standard's text; `attachments`, the SHA-256 of the contract's files (an annex attached
    after the approval voids it at signing)."""
    clauses = [{"code": c.get("code"), "title": c.get("title"), "text": c.get("text")}
               for c in (contract.clauses or [])]
    standard = standard_clauses(session)
    known = dict(_clause_key(standard))
    changed = [code for code, text in _clause_key(clauses) if known.get(code) != text]
    return {
        "contract_id": contract.id, "number": contract.number, "title": contract.title,
        "customer_id": contract.customer_id, "opportunity_id": contract.opportunity_id,
        "owner_id": contract.owner_id, "amount": contract.amount, "currency": contract.currency,
        "start_date": contract.start_date, "end_date": contract.end_date,
        "clauses": clauses,
        "clauses_changed": _clause_key(clauses) != _clause_key(standard),
        "changed_clause_codes": changed,
        "attachments": attachments.hashes(session, contract.id),
    }


def terms_hash(session: Session, contract: Contract) -> str:
    return approvals_domain.terms_hash(approval_terms(session, contract))


# -- status --------------------------------------------------------------------------------

def _set_status(worker: Any, session: Session, contract: Contract, target: str,
                reason: str | None, approval_id: str | None = None) -> None:
    before = contract.status
    domain.check_transition(before, target)
    contract.status = target
    contract.updated_at = utcnow()
    session.flush()
    worker.events.record(session, "contract_status_changed", {
        "contract": snapshot(contract), "from_status": before, "to_status": target,
        "reason": reason, "approval_id": approval_id})


def on_approval_finished(worker: Any, session: Session, row: Any, status: str) -> None:
    """The approvals' callback for contracts, in the decision's transaction: approved -> the
    contract is approved (refused with the decision when it is not in approval or its stored
    terms are not the submitted ones); rejected, recalled or voided -> back to draft."""
    contract = session.execute(select(Contract).where(Contract.id == row.record_id)
                               .with_for_update()).scalar_one_or_none()
    if contract is None:
        return
    if status == approvals_domain.APPROVED:
        if contract.status != "in_approval" or terms_hash(session, contract) != row.terms_hash:
            raise Conflict("the contract's terms are not the ones submitted for approval",
                           {"status": contract.status, "field": "terms_hash"})
        _set_status(worker, session, contract, "approved", f"approval {row.id} approved",
                    row.id)
    elif contract.status in ("in_approval", "approved"):
        _set_status(worker, session, contract, "draft", f"approval {row.id} {status}", row.id)


approvals.register_record_callback(RECORD_TYPE, on_approval_finished)


# -- commands ------------------------------------------------------------------------------

def submit(worker: Any, contract_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """draft -> in_approval (the first matching flow of record type `contract` starts in the
    same transaction, the caller submits) or draft -> approved (no flow matches: earlier
    approvals of other terms are voided). A concurrent submission of the same contract that
    won the approval's unique key makes this one the lock's 409."""
    try:
        return _submit(worker, contract_id, scope)
    except IntegrityError:
        raise Conflict("The contract is already in approval", {"reason": "in_approval"}) \
            from None


def _submit(worker: Any, contract_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    with worker.db.begin() as session:
        contract = visible_contract(session, contract_id, scope, lock=True)
        require_unlocked(session, RECORD_TYPE, contract.id)
        if contract.status != "draft":
            raise PreconditionFailed(f"a {contract.status} contract cannot be submitted: "
                                     "only a draft is", {"status": contract.status,
                                                         "allowed_from": ["draft"]})
        terms = approval_terms(session, contract)
        if approvals.matching_flow(session, RECORD_TYPE, terms) is not None:
            started = approvals.start_in_session(worker, session, {
                "record_type": RECORD_TYPE, "record_id": contract.id, "terms": terms,
                "terms_version": 1}, worker.context.actor or contract.owner_id)
            _set_status(worker, session, contract, "in_approval",
                        f"submitted for approval {started['id']}", started["id"])
        else:
            approvals.void_other_terms(worker, session, RECORD_TYPE, contract.id, terms)
            _set_status(worker, session, contract, "approved",
                        "no approval flow applies to its terms")
        return contract_view(contract)


def _approval_refused(worker: Any, session: Session, contract: Contract) -> str | None:
    """Why the contract's approval does not stand (None when it does): an approved
    approval of exactly the stored terms, or no flow applying to them. A hash that differs
    voids the approval (and the callback returns the contract to draft)."""
    terms = approval_terms(session, contract)
    answer = approvals.verify_in_session(worker, session, RECORD_TYPE, contract.id, terms)
    if answer["valid"]:
        return None
    if answer["status"] == approvals_domain.VOIDED:
        return answer["reason"]
    if approvals.matching_flow(session, RECORD_TYPE, terms) is not None:
        return ("an approval flow applies to these terms and they are not approved: submit "
                "the contract")
    return None


def verify_for_signing(worker: Any, contract_id: str, scope: dict[str, Any]) -> str:
    """Before signing (its own transaction, committed also when it refuses, so a voided
    approval stays voided): the lock, then the approval re-verified against the stored
    terms. Returns the terms hash the signing transaction must still find; Conflict 409
    `reason = approval_invalid` when the approval does not stand."""
    with worker.db.begin() as session:
        contract = visible_contract(session, contract_id, scope, lock=True)
        require_unlocked(session, RECORD_TYPE, contract.id)
        refused = None
        if contract.status in ("draft", "approved"):
            refused = _approval_refused(worker, session, contract)
        if refused is None:
            return terms_hash(session, contract)
    raise Conflict(f"the contract's approval does not stand: {refused}",
                   {"reason": "approval_invalid", "field": "terms_hash"})


def require_signable(session: Session, contract: Contract, checked_hash: str) -> None:
    """In the signing transaction: still unlocked and still the terms that were verified."""
    require_unlocked(session, RECORD_TYPE, contract.id)
    if terms_hash(session, contract) != checked_hash:
        raise Conflict("the contract's terms changed while it was being signed: retry",
                       {"reason": "approval_invalid", "field": "terms_hash"})


def change(worker: Any, contract_id: str, values: dict[str, Any], scope: dict[str, Any]
           ) -> dict[str, Any]:
    """Change a draft's terms (409 while in approval: the lock; 409 naming the status for
    any other status). A new amount below the payment plan's total is a 422 on `amount`."""
    with worker.db.begin() as session:
        contract = visible_contract(session, contract_id, scope, lock=True)
        require_unlocked(session, RECORD_TYPE, contract.id)
        if contract.status != "draft":
            raise Conflict(f"the contract is {contract.status}: only a draft is edited",
                           {"status": contract.status})
        given = [name for name in CHANGEABLE if name in values]
        if "amount" in values:
            amount = domain.money(values["amount"])
            planned = sum((Decimal(i.amount) for i in session.scalars(
                select(Instalment).where(Instalment.contract_id == contract.id))), Decimal(0))
            if planned > amount:
                raise ValidationFailed.for_fields({"amount": [
                    f"the payment plan totals {planned}: the amount cannot be less"]})
            contract.amount = str(amount)
        for name in ("title", "currency"):
            if name in values:
                setattr(contract, name, values[name])
        for name in ("start_date", "end_date"):
            if name in values:
                setattr(contract, name,
                        values[name].isoformat() if values[name] is not None else None)
        if contract.start_date and contract.end_date and contract.end_date < contract.start_date:
            raise ValidationFailed.for_fields({"end_date": ["the end is before the start"]})
        if "clauses" in values:
            contract.clauses = [dict(c) for c in values["clauses"]]
        contract.updated_at = utcnow()
        session.flush()
        worker.events.record(session, "contract_updated",
                             {"contract": snapshot(contract), "fields_changed": given})
        return contract_view(contract)


def terms_of(worker: Any, contract_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The contract's approval terms as they are now, with their hash and its approval."""
    with worker.db.read() as session:
        contract = visible_contract(session, contract_id, scope)
        terms = approval_terms(session, contract)
        return {"terms": terms, "terms_hash": approvals_domain.terms_hash(terms),
                "status": contract.status}


def set_standard_clauses(worker: Any, clauses: list[dict[str, Any]]) -> dict[str, Any]:
    codes = [c["code"] for c in clauses]
    if len(set(codes)) != len(codes):
        raise ValidationFailed.for_fields({"clauses": ["clause codes must be unique"]})
    now = utcnow()
    with worker.db.begin() as session:
        session.execute(delete(StandardClause))
        for position, clause in enumerate(clauses):
            session.add(StandardClause(code=clause["code"], position=position,
                                       title=clause.get("title"), text=clause["text"],
                                       updated_at=now))
        session.flush()
        return {"clauses": standard_clauses(session)}


def get_standard_clauses(worker: Any) -> dict[str, Any]:
    with worker.db.read() as session:
        return {"clauses": standard_clauses(session)}


# -- escalation (the rules service's timer calls it) ----------------------------------------

def escalate_step(worker: Any, approval_id: str, step: Any, command_id: str | None
                  ) -> dict[str, Any]:
    """Escalate the approval's step `step` when it is still undecided (see
    domain.approvals.escalate); the same command (or a second escalation of the step)
    changes nothing."""
    try:
        index = int(step)
    except (TypeError, ValueError):
        raise ValidationFailed.for_fields({"step": ["a step index (0, 1, ...)"]}) from None
    if isinstance(approval_id, str):  # the rules' approval record: `<approval id>:<step>:<n>`
        approval_id = approval_id.split(":", 1)[0]
    with worker.db.begin() as session:
        row = approvals._locked_instance(session, approval_id)
        state = copy.deepcopy(row.state)
        before = copy.deepcopy(state)
        answer, events = approvals_domain.escalate(
            state, index, approvals.load_directory(session), utcnow(), command_id)
        if state != before:
            approvals._save(worker, session, row, state, events)
        return answer
