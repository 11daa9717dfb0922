"""Contracts use cases: creation with a gap-free number (services/contracts/domain/contracts.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as domain
from services.contracts.domain.overdue import read_status
from services.contracts.models import (
    Contract,
    ContractCounter,
    Instalment,
    Quote,
    QuoteVersion,
    Receipt,
)
from services.contracts.usecases.overdue import publish_paid
from services.contracts.usecases.pricing import today as business_day
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed


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
        amount=str(domain.money(data["amount"])), currency=data.get("currency") or "CNY",
        parties=data.get("parties", []), clauses=data.get("clauses", []),
        quote_id=data.get("quote_id"),
        start_date=_iso(data.get("start_date")),
        end_date=_iso(data.get("end_date")), renews_id=data.get("renews_id"),
        created_at=now, updated_at=now)
    session.add(contract)
    session.flush()
    return {"id": contract.id, "number": contract.number, "status": contract.status,
            "amount": contract.amount}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def numbers(session: Session) -> list[str]:
    return list(session.execute(select(Contract.number).order_by(Contract.number)).scalars())


def _contract(session: Session, contract_id: str, lock: bool = False) -> Contract:

    stmt = select(Contract).where(Contract.id == contract_id)
    contract = session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if contract is None:
        raise NotFound(f"no contract {contract_id}")
    return contract


def _instalments(session: Session, contract_id: str) -> list[Instalment]:
    return list(session.execute(select(Instalment).where(Instalment.contract_id == contract_id)
                                .order_by(Instalment.seq)).scalars())


def _as_dict(i: Instalment) -> dict[str, Any]:
    return {"id": i.id, "seq": i.seq, "due_date": date.fromisoformat(i.due_date),
            "amount": Decimal(i.amount), "paid": Decimal(i.paid), "status": i.status}


def put_payment_plan(session: Session, contract_id: str, instalments: list[dict[str, Any]],
                     as_of: date) -> list[dict[str, Any]]:
    """Replace the plan of a contract that has no receipts yet."""

    contract = _contract(session, contract_id, lock=True)
    if session.execute(select(Receipt.id).where(Receipt.contract_id == contract_id)).first():
        raise Conflict("the contract has receipts; its plan can no longer be replaced")
    plan = domain.build_plan(Decimal(contract.amount), instalments)
    session.execute(delete(Instalment).where(Instalment.contract_id == contract_id))
    for item in plan:
        session.add(Instalment(
            id=str(uuid.uuid4()), contract_id=contract_id, seq=item["seq"],
            due_date=item["due_date"].isoformat(), amount=item["amount"], paid=Decimal("0.00"),
            status=domain.instalment_status(item["amount"], Decimal(0), item["due_date"],
                                            as_of)))
    session.flush()
    return [_view(i) for i in _instalments(session, contract_id)]


def _view(i: Instalment) -> dict[str, Any]:
    return {"id": i.id, "seq": i.seq, "due_date": i.due_date, "amount": str(i.amount),
            "paid": str(i.paid), "status": i.status}


def record_receipt(session: Session, contract_id: str, data: dict[str, Any],
                   as_of: date, events: Any = None, source: str = "user") -> dict[str, Any]:
    """`events` (the service's outbox): `instalment_paid` for each instalment the receipt
    pays in full (usecases/overdue.py). `source`: user or erp; `data.payer` {name, account,
    reference} or None. The approval lock is the caller's: users' receipts are refused while
    the contract is in approval, the ERP's are recorded (usecases/erp.py)."""
    _contract(session, contract_id, lock=True)
    amount = domain.money(data["amount"])
    rows = _instalments(session, contract_id)
    before = {i.id: Decimal(i.paid) for i in rows}
    allocations = domain.match_receipt([_as_dict(i) for i in rows], amount,
                                       data.get("instalment_id"))
    by_id = {i.id: i for i in rows}
    for inst_id, take in allocations:
        inst = by_id[inst_id]
        paid = Decimal(inst.paid) + take
        inst.paid = domain.money(paid)
        inst.status = domain.instalment_status(Decimal(inst.amount), paid,
                                               date.fromisoformat(inst.due_date), as_of)
        if inst.overdue_at is not None and inst.status != "paid":
            inst.status = "overdue"  # marked by the sweep: overdue until paid in full
    payer = data.get("payer") or {}
    receipt = Receipt(id=str(uuid.uuid4()), contract_id=contract_id, amount=amount,
                      received_on=data["received_on"].isoformat(), method=data.get("method"),
                      reference=data.get("reference"),
                      allocations=[{"instalment_id": i, "amount": str(a)}
                                   for i, a in allocations], created_at=utcnow(),
                      source=source, payer_name=payer.get("name"),
                      payer_account=payer.get("account"),
                      payer_reference=payer.get("reference"))
    session.add(receipt)
    session.flush()
    if events is not None:
        publish_paid(session, events, contract_id, before)
    return {"id": receipt.id, "amount": str(receipt.amount),
            "allocations": receipt.allocations}


def receivables(session: Session, contract_id: str, as_of: date) -> dict[str, str]:
    contract = _contract(session, contract_id)
    received = sum((Decimal(a) for a in session.execute(
        select(Receipt.amount).where(Receipt.contract_id == contract_id)).scalars()), Decimal(0))
    result = domain.receivables(Decimal(contract.amount),
                                [_as_dict(i) for i in _instalments(session, contract_id)],
                                received, as_of)
    return {k: str(domain.money(v)) for k, v in result.items()}


# -- contracts: visibility, sign, terminate, receipts (RPC part) ----


def visible(owner_id: str | None, scope: dict[str, Any]) -> bool:
    return bool(scope.get("all")) or (owner_id is not None
                                       and owner_id in (scope.get("owner_ids") or []))


def visible_contract(session: Session, contract_id: Any, scope: dict[str, Any],
                     lock: bool = False) -> Contract:
    """The contract when the scope sees its owner; hidden answers like missing (404)."""

    if not isinstance(contract_id, str) or len(contract_id) > 36:
        raise NotFound(f"no contract {contract_id}")
    stmt = select(Contract).where(Contract.id == contract_id)
    contract = session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if contract is None or not visible(contract.owner_id, scope):
        raise NotFound(f"no contract {contract_id}")
    return contract


def status_of(c: Contract) -> str:
    """The status as read today: an active contract past its end date reads `expired`."""
    return read_status(c.status, date.fromisoformat(c.end_date) if c.end_date else None,
                       business_day())


def contract_view(c: Contract) -> dict[str, Any]:
    return {"id": c.id, "number": c.number, "status": status_of(c), "title": c.title,
            "customer_id": c.customer_id, "opportunity_id": c.opportunity_id,
            "owner_id": c.owner_id, "amount": c.amount, "currency": c.currency,
            "start_date": c.start_date, "end_date": c.end_date,
            "parties": c.parties or [], "clauses": c.clauses or [],
            "quote_id": c.quote_id,
            "renews_id": c.renews_id, "renewed_by_id": c.renewed_by_id,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


def snapshot(c: Contract) -> dict[str, Any]:
    """The contract as its events carry it (the rules service's `contract` record): with its
    owner, customer, dates and renewal links, so rules can time and address reminders."""
    return {"id": c.id, "number": c.number, "status": c.status, "amount": c.amount,
            "title": c.title, "currency": c.currency, "owner_id": c.owner_id,
            "customer_id": c.customer_id, "start_date": c.start_date, "end_date": c.end_date,
            "renews_id": c.renews_id, "renewed_by_id": c.renewed_by_id,
            "updated_at": c.updated_at.isoformat(), "quote_id": c.quote_id}


def list_page(session: Session, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import false, true

    from shared.paging import page_after, page_of

    if scope.get("all"):
        clause = true()
    elif scope.get("owner_ids"):
        clause = Contract.owner_id.in_(scope["owner_ids"])
    else:
        clause = false()
    query = select(Contract).where(clause)
    for name in ("customer_id", "opportunity_id", "owner_id"):
        if filters.get(name):
            query = query.where(getattr(Contract, name) == filters[name])
    if filters.get("status"):
        query = query.where(_status_clause(filters["status"]))
    rows = session.scalars(page_after(query, Contract.created_at, Contract.id, page["cursor"],
                                      page["limit"])).all()
    return page_of(rows, page["limit"], "created_at", contract_view)


def _status_clause(status: str) -> Any:
    """`expired` is read (an active contract past its end date), so are the `active` ones."""
    today = business_day().isoformat()
    if status == "expired":
        return and_(Contract.status == "active", Contract.end_date.is_not(None),
                    Contract.end_date < today)
    if status == "active":
        return and_(Contract.status == "active",
                    or_(Contract.end_date.is_(None), Contract.end_date >= today))
    return Contract.status == status


def order_number(contract_number: str) -> str:
    """The ERP order of a signed contract: SO-<year>-<6 digits>, the contract's own sequence."""
    year, value = domain.parse_number(contract_number)
    return f"SO-{year:04d}-{value:06d}"


def transition(contract: Contract, target: str) -> str:
    previous = contract.status
    domain.check_transition(previous, target)
    contract.status = target
    contract.updated_at = utcnow()
    return previous


def plan(session: Session, contract_id: str) -> list[dict[str, Any]]:
    return [_view(i) for i in _instalments(session, contract_id)]


def list_receipts(session: Session, contract_id: str) -> dict[str, Any]:
    rows = session.execute(select(Receipt).where(Receipt.contract_id == contract_id)
                           .order_by(Receipt.received_on, Receipt.created_at, Receipt.id)
                           ).scalars()
    return {"items": [receipt_view(r) for r in rows]}


def payer_view(r: Receipt) -> dict[str, Any] | None:
    """Who paid a receipt, or None when nobody said (the ERP may give an account only)."""
    if r.payer_name is None and r.payer_account is None and r.payer_reference is None:
        return None
    return {"name": r.payer_name, "account": r.payer_account, "reference": r.payer_reference}


def receipt_view(r: Receipt) -> dict[str, Any]:
    return {"id": r.id, "contract_id": r.contract_id, "amount": str(r.amount),
            "received_on": r.received_on, "method": r.method, "reference": r.reference,
            "allocations": r.allocations, "created_at": r.created_at.isoformat(),
            "payer": payer_view(r), "source": r.source or "user"}


def from_quote(session: Session, loaded: dict[str, Any], scope: dict[str, Any]
               ) -> dict[str, Any]:
    """`loaded` completed from its `quote_id`: an accepted quote the caller sees, of the
    contract's customer and opportunity (the quote's opportunity when none is given); the
    amount and currency default to the accepted version's grand total and currency. Anything
    else is a 422 on `quote_id`."""
    def refuse(why: str) -> ValidationFailed:
        return ValidationFailed.for_fields({"quote_id": [why]})

    quote = session.get(Quote, loaded["quote_id"])
    if quote is None or not visible(quote.owner_id, scope):
        raise refuse("no such quote")
    if quote.status != "accepted":
        raise refuse(f"the quote is {quote.status}, not accepted")
    if quote.customer_id != loaded["customer_id"]:
        raise refuse("the quote is another customer's")
    if loaded.get("opportunity_id") and loaded["opportunity_id"] != quote.opportunity_id:
        raise refuse("the quote is of another opportunity")
    version = session.get(QuoteVersion, (quote.id, quote.version))
    terms = (version.terms if version is not None else None) or {}
    completed = {**loaded, "opportunity_id": quote.opportunity_id}
    if completed.get("amount") is None:
        total = (terms.get("totals") or {}).get("grand_total")
        if total is None:
            raise refuse("the quote has no total: give the amount")
        completed["amount"] = str(domain.money(total))
    if not completed.get("currency"):
        completed["currency"] = terms.get("currency") or "CNY"
    return completed


def create_for_caller(worker: Any, loaded: dict[str, Any], scope: dict[str, Any],
                      ask_sales: Callable[..., Any]) -> dict[str, Any]:
    """A draft contract for a customer (and optional opportunity of that customer) the caller
    sees through sales with the caller's scope; hidden or missing: 422 naming the field. The
    owner is the opportunity's, else the customer's, else the caller. With a `quote_id`: the
    accepted quote it is made from (`from_quote`)."""
    if loaded.get("quote_id"):
        with worker.db.read() as session:
            loaded = from_quote(session, loaded, scope)
    try:
        customer = ask_sales("get_customer", customer_id=loaded["customer_id"], scope=scope,
                             include_contacts=False)
    except NotFound:
        raise ValidationFailed.for_fields({"customer_id": ["no such customer"]}) from None
    owner_id = customer.get("owner_id")
    if loaded.get("opportunity_id"):
        try:
            opportunity = ask_sales("get_opportunity", opportunity_id=loaded["opportunity_id"],
                                    scope=scope)
        except NotFound:
            raise ValidationFailed.for_fields(
                {"opportunity_id": ["no such opportunity"]}) from None
        if opportunity.get("customer_id") != customer["id"]:
            raise ValidationFailed.for_fields(
                {"opportunity_id": ["the opportunity is another customer's"]})
        owner_id = opportunity.get("owner_id") or owner_id
    owner_id = owner_id or worker.context.actor
    if not isinstance(owner_id, str) or not owner_id:
        raise ValidationFailed.for_fields({"owner_id": ["a user id is required"]})
    with worker.db.begin() as session:
        created = create_contract(session, loaded, owner_id)
        worker.events.record(session, "contract_created",
                             {"contract": snapshot(_contract(session, created["id"]))})
        return contract_view(_contract(session, created["id"]))
