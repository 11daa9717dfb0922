"""The contracts' numbers: collection by month, overdue aging, DSO, quote win rate and average
discount, approval cycle times, the drill-down to the records behind each figure, and the
customer 360's part (quotes, contracts, receivables). Definitions: domain/numbers.py.

Every function takes the caller's `scope` (`{"all": true}` or `{"owner_ids": [...]}`, the one
the gateway passes to sales): contracts and quotes count when their owner is in it, approval
instances when their submitter is. `filters.owner_ids` (a team's members, resolved by the
gateway) and `filters.customer_id` narrow further, never widen.

The instalments' and receipts' amounts are Money columns (models.Money: NUMERIC(20, 2) on
PostgreSQL, integer cents on SQLite): sums are taken in SQL on the stored numbers, no per-row
conversion, and read back as exact Decimals.
Counted contracts are the signed ones (active, expired, renewed, terminated: as the overdue
sweep counts them): a draft's plan is not yet money due; receipts count in collection
whatever their contract's status.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, false, func, literal, or_, select, true
from sqlalchemy.orm import Session

from services.contracts.domain import contracts as contract_rules
from services.contracts.domain import numbers as domain
from services.contracts.domain.quotes import EXPIRING, effective_status
from services.contracts.models import (
    ApprovalInstance,
    Contract,
    Instalment,
    Quote,
    QuoteVersion,
    Receipt,
)
from services.contracts.usecases.contracts import payer_view
from shared import config
from shared.errors import ValidationFailed

SIGNED = ("active", "expired", "renewed", "terminated")  # as the overdue sweep counts
# The other statuses a contract is stored with (draft, in_approval, approved): named, not
# "not signed", so the few unsigned contracts are found through the status index.
UNSIGNED = tuple(s for s in contract_rules.STATUSES if s not in SIGNED)
UNPAID = ("paid", "void")  # statuses that are never outstanding
FIGURES = ("collection", "aging", "dso", "win_rate", "approval_cycle")
SUMMARY_CONTRACTS_MAX = 50


# -- helpers ---------------------------------------------------------------------------------


def _money(value: Decimal | None) -> Decimal:
    """A sum read back (a Money column's: a Decimal, or None over no rows)."""
    return domain.money(value)


def _owners(scope: dict[str, Any], filters: dict[str, Any]) -> list[str] | None:
    """The owners counted: None for everybody, else a list (maybe empty: nobody)."""
    owners = None if scope.get("all") else list(scope.get("owner_ids") or [])
    wanted = filters.get("owner_ids")
    if wanted is not None:
        owners = list(wanted) if owners is None else [o for o in owners if o in wanted]
    return owners


def _owner_clause(column: Any, owners: list[str] | None) -> Any:
    if owners is None:
        return true()
    return column.in_(owners) if owners else false()


def _contract_clause(scope: dict[str, Any], filters: dict[str, Any],
                     signed_only: bool = True) -> Any:
    clauses = [_owner_clause(Contract.owner_id, _owners(scope, filters))]
    if signed_only:
        clauses.append(Contract.status.in_(SIGNED))
    if filters.get("customer_id"):
        clauses.append(Contract.customer_id == filters["customer_id"])
    return and_(*clauses)


def _narrowed(scope: dict[str, Any], filters: dict[str, Any]) -> bool:
    return _owners(scope, filters) is not None or bool(filters.get("customer_id"))


def _of_counted_contracts(column: Any, scope: dict[str, Any], filters: dict[str, Any]) -> Any:
    """`column` (a contract id) is of a counted contract. Unnarrowed, as "not of an unsigned
    one": the few drafts are the anti-join's whole build side, not every contract (a hash of
    100,000 contracts was half the aging's time), read through the status index; narrowed, a
    semi-join on the owners'."""
    if not _narrowed(scope, filters):
        return column.notin_(select(Contract.id).where(Contract.status.in_(UNSIGNED)))
    return column.in_(select(Contract.id).where(_contract_clause(scope, filters)))


def _today() -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(config.timezone_name())).date()


def _period(filters: dict[str, Any], default_months: int = 12) -> tuple[date, date]:
    """The filters' period (local days, inclusive); default: the last `default_months`
    months up to the end of this month."""
    today = _today()
    date_to = filters.get("date_to") or domain.month_bounds(f"{today:%Y-%m}")[1]
    if filters.get("date_from"):
        date_from = filters["date_from"]
    else:
        year, month = date_to.year, date_to.month - (default_months - 1)
        while month < 1:
            year, month = year - 1, month + 12
        date_from = date(max(year, domain.EARLIEST_DAY.year), month, 1)
    domain.check_range(date_from, date_to)
    return date_from, date_to


def _utc_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[start of date_from, start of the day after date_to) in UTC, for timestamp columns."""
    zone = ZoneInfo(config.timezone_name())
    start = datetime.combine(date_from, time.min, zone).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start, end


def _period_view(date_from: date, date_to: date) -> dict[str, str]:
    return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}


# -- collection by month ---------------------------------------------------------------------


def collection(session: Session, filters: dict[str, Any], scope: dict[str, Any]
               ) -> dict[str, Any]:
    date_from, date_to = _period(filters)
    months = domain.months(date_from, date_to)
    low, high = date_from.isoformat(), date_to.isoformat()
    month = func.substr(Instalment.due_date, 1, 7)
    planned = session.execute(
        select(month, func.count(), func.sum(Instalment.amount))
        .where(Instalment.due_date >= low, Instalment.due_date <= high,
               Instalment.status != "void",
               _of_counted_contracts(Instalment.contract_id, scope, filters))
        .group_by(month)).all()
    month = func.substr(Receipt.received_on, 1, 7)
    query = select(month, func.count(), func.sum(Receipt.amount)).where(
        Receipt.received_on >= low, Receipt.received_on <= high)
    if _narrowed(scope, filters):
        query = query.where(Receipt.contract_id.in_(select(Contract.id).where(
            _contract_clause(scope, filters, signed_only=False))))
    received = session.execute(query.group_by(month)).all()
    plan = {m: (n, _money(s)) for m, n, s in planned}
    got = {m: (n, _money(s)) for m, n, s in received}
    zero = (0, Decimal("0.00"))
    rows = []
    for m in months:
        p, r = plan.get(m, zero), got.get(m, zero)
        rows.append({"month": m, "planned": str(p[1]), "planned_count": p[0],
                     "received": str(r[1]), "received_count": r[0],
                     "gap": str(domain.money(p[1] - r[1]))})
    total_planned = sum((v[1] for v in plan.values()), Decimal(0))
    total_received = sum((v[1] for v in got.values()), Decimal(0))
    return {**_period_view(date_from, date_to), "months": rows,
            "total": {"planned": str(domain.money(total_planned)),
                      "received": str(domain.money(total_received)),
                      "gap": str(domain.money(total_planned - total_received))}}


# -- overdue aging ---------------------------------------------------------------------------


def _aging_bucket(as_of: date) -> Any:
    bounds = [(as_of - timedelta(days=days)).isoformat() for days in (30, 60, 90)]
    return case((Instalment.due_date >= bounds[0], "0-30"),
                (Instalment.due_date >= bounds[1], "31-60"),
                (Instalment.due_date >= bounds[2], "61-90"), else_=">90")


def _open_instalment() -> Any:
    """Not paid, not void, with the statuses written into the SQL: the predicate of the open
    instalments' index (migration 0010r) then matches also in a cached generic plan, whose
    bound parameters PostgreSQL cannot prove it from."""
    return Instalment.status.notin_([literal(s, literal_execute=True) for s in UNPAID])


def _overdue_clause(as_of: date) -> Any:
    return and_(Instalment.due_date < as_of.isoformat(), _open_instalment())


def aging(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    as_of = filters.get("as_of") or _today()
    domain.check_range(as_of, as_of)
    bucket = _aging_bucket(as_of)
    outstanding = Instalment.amount - Instalment.paid
    rows = session.execute(
        select(bucket, func.count(), func.sum(outstanding))
        .where(_overdue_clause(as_of),
               _of_counted_contracts(Instalment.contract_id, scope, filters))
        .group_by(bucket)).all()
    result = domain.aging({name: (n, _money(s)) for name, n, s in rows})
    return {"as_of": as_of.isoformat(), **result}


# -- DSO -------------------------------------------------------------------------------------


def dso(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    date_from, date_to = _period(filters, default_months=3)
    low, high = date_from.isoformat(), date_to.isoformat()
    clause = _of_counted_contracts(Instalment.contract_id, scope, filters)
    billed = session.execute(
        select(func.sum(Instalment.amount))
        .where(Instalment.due_date >= low, Instalment.due_date <= high,
               Instalment.status != "void", clause)).scalar_one()
    outstanding = Instalment.amount - Instalment.paid
    receivables = session.execute(
        select(func.sum(outstanding))
        .where(Instalment.due_date <= high, _open_instalment(), clause)
    ).scalar_one()
    billed_money = _money(billed)
    owed = max(_money(receivables), Decimal("0.00"))
    days = (date_to - date_from).days + 1
    value = domain.dso(owed, billed_money, days)
    return {**_period_view(date_from, date_to), "days": days,
            "billed": str(billed_money), "receivables": str(owed),
            "dso_days": None if value is None else str(value),
            "formula": "receivables (unpaid amount of instalments due on or before date_to) "
                       "/ instalments due in the period x days"}


# -- quote win rate and discount -------------------------------------------------------------


def _quote_status(today: date) -> Any:
    return case((and_(Quote.status.in_(EXPIRING), QuoteVersion.valid_until.is_not(None),
                      QuoteVersion.valid_until < today), "expired"), else_=Quote.status)


def _quote_query(session: Session, filters: dict[str, Any], scope: dict[str, Any],
                 *columns: Any) -> Any:
    date_from, date_to = _period(filters)
    start, end = _utc_bounds(date_from, date_to)
    query = select(*columns).join(QuoteVersion, and_(QuoteVersion.quote_id == Quote.id,
                                                     QuoteVersion.number == Quote.version))
    query = query.where(Quote.created_at >= start, Quote.created_at < end,
                        _owner_clause(Quote.owner_id, _owners(scope, filters)))
    if filters.get("customer_id"):
        query = query.where(Quote.customer_id == filters["customer_id"])
    return query


def _win_row(counts: dict[str, int], discounts: list[Decimal]) -> dict[str, Any]:
    rate = domain.win_rate(counts.get("accepted", 0), counts.get("rejected", 0),
                           counts.get("expired", 0))
    average = domain.mean(discounts)
    return {"quotes": sum(counts.values()),
            **{name: counts.get(name, 0) for name in domain.DECIDED},
            "open": sum(n for s, n in counts.items() if s not in domain.DECIDED),
            "win_rate_percent": None if rate is None else str(rate),
            "average_discount_percent": None if average is None else str(average)}


def win_rate(session: Session, filters: dict[str, Any], scope: dict[str, Any]
             ) -> dict[str, Any]:
    today = _today()
    status = _quote_status(today)
    counted = session.execute(_quote_query(
        session, filters, scope, Quote.owner_id, Quote.team_id, status, func.count())
        .group_by(Quote.owner_id, Quote.team_id, status)).all()
    # the discount lives in the accepted versions' lines (JSON): read only those
    accepted = session.execute(_quote_query(
        session, filters, scope, Quote.owner_id, Quote.team_id, QuoteVersion.terms)
        .where(Quote.status == "accepted")).all()
    by_owner: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_team: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[str, int] = defaultdict(int)
    for owner, team, state, n in counted:
        by_owner[(owner, team)][state] += n
        by_team[team][state] += n
        overall[state] += n
    owner_discounts: dict[tuple, list[Decimal]] = defaultdict(list)
    team_discounts: dict[Any, list[Decimal]] = defaultdict(list)
    every: list[Decimal] = []
    for owner, team, terms in accepted:
        value = domain.discount_percent(terms)
        owner_discounts[(owner, team)].append(value)
        team_discounts[team].append(value)
        every.append(value)
    date_from, date_to = _period(filters)
    return {
        **_period_view(date_from, date_to),
        "by_owner": [{"owner_id": o, "team_id": t, **_win_row(by_owner[(o, t)],
                                                              owner_discounts[(o, t)])}
                     for o, t in sorted(by_owner, key=lambda k: (k[0] or "", k[1] or ""))],
        "by_team": [{"team_id": t, **_win_row(by_team[t], team_discounts[t])}
                    for t in sorted(by_team, key=lambda k: k or "")],
        "total": _win_row(overall, every),
        "formula": "accepted / (accepted + rejected + expired) of the quotes created in the "
                   "period; average of the accepted versions' discount_percent",
    }


# -- approval cycle times --------------------------------------------------------------------


def _instances(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> Any:
    date_from, date_to = _period(filters)
    start, end = _utc_bounds(date_from, date_to)
    query = select(ApprovalInstance).where(
        ApprovalInstance.submitted_at >= start, ApprovalInstance.submitted_at < end,
        _owner_clause(ApprovalInstance.submitter_id, _owners(scope, filters)))
    if filters.get("record_type"):
        query = query.where(ApprovalInstance.record_type == filters["record_type"])
    return query


def approval_cycle_times(session: Session, filters: dict[str, Any], scope: dict[str, Any]
                         ) -> dict[str, Any]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    names: dict[tuple, tuple] = {}
    for instance in session.scalars(_instances(session, filters, scope)):
        for item in domain.step_durations(instance.state):
            key = (instance.flow_id, item["step"])
            groups[key].append(item["seconds"] / 3600)
            names[key] = (instance.state.get("flow_name"), item["name"])
    steps = []
    for key in sorted(groups, key=lambda k: (str(k[0]), k[1])):
        hours = groups[key]
        steps.append({"flow_id": key[0], "flow_name": names[key][0], "step": key[1],
                      "step_name": names[key][1], "decisions": len(hours),
                      "median_hours": round(domain.median(hours), 2),
                      "p90_hours": round(domain.percentile(hours, 0.9), 2)})
    date_from, date_to = _period(filters)
    return {**_period_view(date_from, date_to), "steps": steps}


# -- drill-down ------------------------------------------------------------------------------


def _encode(key: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, record_id]).encode()).decode()


def _decode(cursor: str) -> tuple[str, str]:
    try:
        key, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(key), str(record_id)
    except (ValueError, TypeError):
        raise ValidationFailed.for_fields({"cursor": ["not a cursor this API returned"]}) from None


def _keyset(query: Any, key: Any, id_column: Any, cursor: str | None, limit: int) -> Any:
    """Ascending by (key, id) after the cursor, one row more than a page."""
    if cursor:
        after, record_id = _decode(cursor)
        query = query.where(or_(key > after, and_(key == after, id_column > record_id)))
    return query.order_by(key, id_column).limit(limit + 1)


def _paged(rows: list[Any], limit: int, key: Any, view: Any) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode(*key(rows[-1])) if more else None
    return {"items": [view(row) for row in rows], "next_cursor": cursor}


def _instalment_view(inst: Instalment, contract: Contract, as_of: date | None = None
                     ) -> dict[str, Any]:
    view = {"instalment_id": inst.id, "contract_id": contract.id,
            "contract_number": contract.number, "customer_id": contract.customer_id,
            "owner_id": contract.owner_id, "seq": inst.seq, "due_date": inst.due_date,
            "amount": str(inst.amount), "paid": str(inst.paid), "status": inst.status,
            "outstanding": str(domain.money(inst.amount - inst.paid))}
    if as_of is not None:
        view["days_overdue"] = (as_of - date.fromisoformat(inst.due_date)).days
    return view


def _instalment_page(session: Session, where: list[Any], page: dict[str, Any],
                     as_of: date | None = None) -> dict[str, Any]:
    query = select(Instalment, Contract).join(Contract, Contract.id == Instalment.contract_id)
    query = _keyset(query.where(*where), Instalment.due_date, Instalment.id, page["cursor"],
                    page["limit"])
    rows = session.execute(query).all()
    return _paged(rows, page["limit"], lambda r: (r[0].due_date, r[0].id),
                  lambda r: _instalment_view(r[0], r[1], as_of))


def drill_down(session: Session, figure: str, filters: dict[str, Any], scope: dict[str, Any],
               params: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """The records behind one figure, with the figure's own filters and scope:
    collection (`month`, `kind` planned | received): the instalments due or receipts received
    in the month; aging (`bucket`, `as_of`): the overdue instalments of the bucket; dso: the
    instalments billed (due) in the period; win_rate (`outcome`, `owner_id`, `team_id`): the
    quotes; approval_cycle (`flow_id`, `step`): the decided passes of that step."""
    if figure == "collection":
        if not params.get("month"):
            raise ValidationFailed.for_fields({"month": ["required: a month, YYYY-MM"]})
        first, last = domain.month_bounds(params["month"])
        if params.get("kind", "planned") == "received":
            query = select(Receipt, Contract).join(Contract, Contract.id == Receipt.contract_id)
            query = query.where(Receipt.received_on >= first.isoformat(),
                                Receipt.received_on <= last.isoformat(),
                                _contract_clause(scope, filters, signed_only=False))
            rows = session.execute(_keyset(query, Receipt.received_on, Receipt.id,
                                           page["cursor"], page["limit"])).all()
            return _paged(rows, page["limit"], lambda r: (r[0].received_on, r[0].id),
                          lambda r: {"receipt_id": r[0].id, "contract_id": r[1].id,
                                     "contract_number": r[1].number,
                                     "customer_id": r[1].customer_id,
                                     "owner_id": r[1].owner_id, "amount": str(r[0].amount),
                                     "received_on": r[0].received_on,
                                     "method": r[0].method, "reference": r[0].reference,
                                     # c-receipts: who paid, who recorded it
                                     "payer": payer_view(r[0]),
                                     "source": r[0].source or "user"})
        return _instalment_page(session, [
            Instalment.due_date >= first.isoformat(), Instalment.due_date <= last.isoformat(),
            Instalment.status != "void", _contract_clause(scope, filters)], page)
    if figure == "aging":
        as_of = filters.get("as_of") or _today()
        earliest, latest = domain.bucket_due_range(params.get("bucket") or "", as_of)
        where = [_overdue_clause(as_of), Instalment.due_date <= latest.isoformat(),
                 _contract_clause(scope, filters)]
        if earliest is not None:
            where.append(Instalment.due_date >= earliest.isoformat())
        return _instalment_page(session, where, page, as_of)
    if figure == "dso":
        date_from, date_to = _period(filters, default_months=3)
        return _instalment_page(session, [
            Instalment.due_date >= date_from.isoformat(),
            Instalment.due_date <= date_to.isoformat(), Instalment.status != "void",
            _contract_clause(scope, filters)], page)
    if figure == "win_rate":
        return _win_rate_records(session, filters, scope, params, page)
    if figure == "approval_cycle":
        return _cycle_records(session, filters, scope, params, page)
    raise ValidationFailed.for_fields({"figure": [f"one of {', '.join(FIGURES)}"]})


def _win_rate_records(session: Session, filters: dict[str, Any], scope: dict[str, Any],
                      params: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    today = _today()
    status = _quote_status(today)
    query = _quote_query(session, filters, scope, Quote, QuoteVersion, status)
    outcome = params.get("outcome")
    if outcome:
        if outcome not in domain.DECIDED:
            raise ValidationFailed.for_fields({"outcome": [
                f"one of {', '.join(domain.DECIDED)}"]})
        query = query.where(status == outcome)
    else:
        query = query.where(status.in_(domain.DECIDED))
    for name in ("owner_id", "team_id"):
        if params.get(name):
            query = query.where(getattr(Quote, name) == params[name])
    rows = session.execute(_keyset(query, Quote.id, Quote.id, page["cursor"],
                                   page["limit"])).all()
    return _paged(rows, page["limit"], lambda r: (r[0].id, r[0].id), lambda r: {
        "quote_id": r[0].id, "opportunity_id": r[0].opportunity_id,
        "customer_id": r[0].customer_id, "owner_id": r[0].owner_id, "team_id": r[0].team_id,
        "status": effective_status(r[0].status, r[1].valid_until, today),
        "version": r[0].version, "grand_total": r[1].terms["totals"]["grand_total"],
        "currency": r[1].terms.get("currency"),
        "discount_percent": str(domain.discount_percent(r[1].terms)),
        "created_at": r[0].created_at.isoformat()})


def _cycle_records(session: Session, filters: dict[str, Any], scope: dict[str, Any],
                   params: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    if not params.get("flow_id") or params.get("step") is None:
        raise ValidationFailed.for_fields({"flow_id": ["flow_id and step are required"]})
    query = _instances(session, filters, scope).where(
        ApprovalInstance.flow_id == params["flow_id"])
    if page["cursor"]:
        _, after = _decode(page["cursor"])
        query = query.where(ApprovalInstance.id > after)
    items: list[dict[str, Any]] = []
    more = False
    # instances by id; those without a decided pass of the step are skipped
    for instance in session.scalars(query.order_by(ApprovalInstance.id)):
        passes = [p for p in domain.step_durations(instance.state)
                  if p["step"] == params["step"]]
        if not passes:
            continue
        if len(items) == page["limit"]:
            more = True
            break
        items.append({"approval_id": instance.id, "record_type": instance.record_type,
                      "record_id": instance.record_id, "submitter_id": instance.submitter_id,
                      "status": instance.status, "passes": [
                          {"started_at": p["started_at"], "decided_at": p["decided_at"],
                           "hours": round(p["seconds"] / 3600, 2)} for p in passes]})
    cursor = _encode("", items[-1]["approval_id"]) if more else None
    return {"items": items, "next_cursor": cursor}


# -- the customer 360's part -----------------------------------------------------------------


def customer_summary(session: Session, customer_id: str, scope: dict[str, Any],
                     quotes_limit: int = 10) -> dict[str, Any]:
    """The customer's recent quotes (newest first, at most `quotes_limit`), its contracts
    (newest first, at most SUMMARY_CONTRACTS_MAX) with each one's receivables, and the totals:
    received, outstanding (signed contracts' amount - received) and overdue (as of today), all
    within the caller's scope."""
    today = _today()
    owners = _owners(scope, {})
    quote_rows = session.execute(
        select(Quote, QuoteVersion).join(QuoteVersion, and_(
            QuoteVersion.quote_id == Quote.id, QuoteVersion.number == Quote.version))
        .where(Quote.customer_id == customer_id, _owner_clause(Quote.owner_id, owners))
        .order_by(Quote.created_at.desc(), Quote.id.desc()).limit(quotes_limit)).all()
    quotes = [{"id": q.id, "opportunity_id": q.opportunity_id, "owner_id": q.owner_id,
               "status": effective_status(q.status, v.valid_until, today),
               "version": q.version, "title": v.terms.get("title"),
               "grand_total": v.terms["totals"]["grand_total"],
               "currency": v.terms.get("currency"),
               "valid_until": v.valid_until.isoformat() if v.valid_until else None,
               "created_at": q.created_at.isoformat()} for q, v in quote_rows]
    contracts = list(session.scalars(
        select(Contract).where(Contract.customer_id == customer_id,
                               _owner_clause(Contract.owner_id, owners))
        .order_by(Contract.created_at.desc(), Contract.id.desc())
        .limit(SUMMARY_CONTRACTS_MAX)))
    ids = [c.id for c in contracts]
    received = {cid: _money(s) for cid, s in session.execute(
        select(Receipt.contract_id, func.sum(Receipt.amount))
        .where(Receipt.contract_id.in_(ids)).group_by(Receipt.contract_id))} if ids else {}
    outstanding = Instalment.amount - Instalment.paid
    overdue = {cid: _money(s) for cid, s in session.execute(
        select(Instalment.contract_id, func.sum(outstanding))
        .where(Instalment.contract_id.in_(ids), _overdue_clause(today))
        .group_by(Instalment.contract_id))} if ids else {}
    zero = Decimal("0.00")
    items = []
    totals = {"received": zero, "outstanding": zero, "overdue": zero}
    for c in contracts:
        got = received.get(c.id, zero)
        signed = c.status in SIGNED
        owed = max(Decimal(c.amount) - got, zero) if signed else zero
        late = overdue.get(c.id, zero) if signed else zero
        items.append({"id": c.id, "number": c.number, "title": c.title, "status": c.status,
                      "owner_id": c.owner_id, "amount": c.amount, "currency": c.currency,
                      "start_date": c.start_date, "end_date": c.end_date,
                      "receivables": {"received": str(got), "outstanding": str(owed),
                                      "overdue": str(late)}})
        totals["received"] += got
        totals["outstanding"] += owed
        totals["overdue"] += late
    return {"customer_id": customer_id, "as_of": today.isoformat(), "quotes": quotes,
            "contracts": items,
            "receivables": {name: str(domain.money(value)) for name, value in totals.items()}}
