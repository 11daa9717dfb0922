"""The service desk's numbers: volume, backlog, first-reply and resolution times (business
time), SLA attainment, reopen rate, the tickets behind each figure (`records`), and the
customer 360's part. Definitions: domain/numbers.py. `svc` is the nameko service (db).

Every function counts the tickets the caller sees, exactly as the tickets list does
(usecases/tickets._scope_clause with the caller's groups: admins all, the assignee's owners, a
group's members and manager, the pool); `filters` (`group_id`, `assignee_id`, `priority`)
narrow that, never widen it. Periods are local days of `CRM_TIMEZONE`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, literal, select
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow
from services.service_desk.domain import numbers as domain
from services.service_desk.domain.sla import TARGETS
from services.service_desk.models import (
    SlaPolicyRow,
    TicketEntryRow,
    TicketRow,
    TicketSlaOutcomeRow,
)
from services.service_desk.usecases.group_scope import viewer_group_ids
from services.service_desk.usecases.tickets import _scope_clause, ticket_dict
from shared import config
from shared.errors import ValidationFailed
from shared.paging import page_after, page_of

FIGURES = ("volume", "backlog", "first_reply", "resolution", "sla", "reopen")
DONE = ("solved", "closed")
CUSTOMER_RECENT = 10


# -- helpers ---------------------------------------------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(config.timezone_name())


def _today() -> date:
    return utcnow().astimezone(_zone()).date()


def _range(filters: dict[str, Any]) -> tuple[date, date]:
    """The filters' days (inclusive); default: the 30 days up to today."""
    date_to = filters.get("date_to") or _today()
    date_from = filters.get("date_from") or date_to - timedelta(days=29)
    domain.check_range(date_from, date_to)
    return date_from, date_to


def _bounds(filters: dict[str, Any]) -> tuple[date, date, datetime, datetime]:
    date_from, date_to = _range(filters)
    zone = _zone()
    return (date_from, date_to, domain.local_start(date_from, zone),
            domain.local_start(date_to + timedelta(days=1), zone))


def _where(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> list[Any]:
    """The caller's tickets, narrowed by the filters."""
    clauses = [_scope_clause(scope, viewer_group_ids(session, scope))]
    for name in ("group_id", "assignee_id", "priority"):
        if filters.get(name):
            clauses.append(getattr(TicketRow, name) == filters[name])
    return clauses


def _narrows(filters: dict[str, Any], scope: dict[str, Any]) -> bool:
    """Whether `_where` keeps fewer than every ticket."""
    return not scope.get("all") or any(filters.get(name) for name in (
        "group_id", "assignee_id", "priority"))


def _period_view(date_from: date, date_to: date) -> dict[str, str]:
    return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}


def _period_case(column: Any, items: list[domain.Period]) -> Any:
    """The key of the period `column` is in (the caller keeps it within the periods)."""
    return _halving_case(column, [p.start for p in items], [p.key for p in items])


def _halving_case(column: Any, starts: list[datetime], labels: list[Any]) -> Any:
    """labels[i] where starts[i] <= column < starts[i + 1] (the last: no upper bound; below
    starts[0]: labels[0]), as CASEs nested by halves: about log2(n) comparisons a row instead
    of up to n (a year by week over 100,000 tickets: 7, not 53)."""
    if len(labels) == 1:
        return literal(labels[0])
    mid = len(labels) // 2
    return case((column < starts[mid], _halving_case(column, starts[:mid], labels[:mid])),
                else_=_halving_case(column, starts[mid:], labels[mid:]))


def _status_at(instant: datetime) -> Any:
    """A ticket's status at `instant` (before it): its last status change then, else new."""
    last = (select(TicketEntryRow.to_value)
            .where(TicketEntryRow.ticket_id == TicketRow.id,
                   TicketEntryRow.kind == "status_changed", TicketEntryRow.at < instant)
            .order_by(TicketEntryRow.seq.desc()).limit(1).correlate(TicketRow)
            .scalar_subquery())
    return func.coalesce(last, "new")


# -- volume ----------------------------------------------------------------------------------


def volume(svc, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Tickets created per period, by channel, priority and group."""
    date_from, date_to, start, end = _bounds(filters)
    interval = filters.get("interval", "day")
    items = domain.periods(date_from, date_to, interval, _zone())
    with svc.db.read() as session:
        created = (select(_period_case(TicketRow.created_at, items).label("period"),
                          TicketRow.channel, TicketRow.priority, TicketRow.group_id)
                   .where(TicketRow.created_at >= start, TicketRow.created_at < end,
                          *_where(session, filters, scope))
                   .offset(0).subquery())  # hashed, not sorted: see _open_at
        keys = (created.c.period, created.c.channel, created.c.priority, created.c.group_id)
        rows = session.execute(select(*keys, func.count()).group_by(*keys)).all()

    def empty() -> dict[str, Any]:
        return {"count": 0, "by_channel": defaultdict(int), "by_priority": defaultdict(int),
                "by_group": defaultdict(int)}

    per: dict[str, dict[str, Any]] = defaultdict(empty)
    total = empty()
    for key, channel, priority, group_id, n in rows:
        for figures in (per[key], total):
            figures["count"] += n
            figures["by_channel"][channel] += n
            figures["by_priority"][priority] += n
            figures["by_group"][group_id] += n

    def view(figures: dict[str, Any]) -> dict[str, Any]:
        return {"count": figures["count"], "by_channel": dict(figures["by_channel"]),
                "by_priority": dict(figures["by_priority"]),
                "by_group": [{"group_id": g, "count": n} for g, n in sorted(
                    figures["by_group"].items(), key=lambda kv: kv[0] or "")]}

    return {**_period_view(date_from, date_to), "interval": interval,
            "periods": [{**p.view(), **view(per[p.key])} for p in items],
            "total": view(total)}


# -- backlog ---------------------------------------------------------------------------------


def backlog(svc, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Open tickets (new, open, pending, on hold) at the end of each period, and now by status
    and age band."""
    date_from, date_to, _, _ = _bounds(filters)
    interval = filters.get("interval", "day")
    items = domain.periods(date_from, date_to, interval, _zone(), domain.MAX_BACKLOG_PERIODS)
    now = utcnow()
    with svc.db.read() as session:
        where = _where(session, filters, scope)
        band = _age_case(now)
        rows = session.execute(
            select(TicketRow.status, band, func.count())
            .where(TicketRow.status.in_(domain.OPEN_STATUSES), *where)
            .group_by(TicketRow.status, band)).all()
        by_status = dict.fromkeys(domain.OPEN_STATUSES, 0)
        by_age = dict.fromkeys((b[0] for b in domain.AGE_BANDS), 0)
        for status, age, n in rows:
            by_status[status] += n
            by_age[age] += n
        moments = [min(item.end, now) for item in items if item.start < now]
        counts = _open_at(session, moments, where, _narrows(filters, scope),
                          sum(by_status.values()))
    out = [{**item.view(), "open": counts[i] if i < len(counts) else 0}
           for i, item in enumerate(items)]
    return {**_period_view(date_from, date_to), "interval": interval, "periods": out,
            "now": {"at": now.astimezone(UTC).isoformat(), "open": sum(by_status.values()),
                    "by_status": by_status,
                    "by_age": [{"band": name, "count": n} for name, n in by_age.items()]}}


def _open_at(session: Session, moments: list[datetime], where: list[Any], narrowed: bool,
             open_now: int) -> list[int]:
    """The tickets open at each of `moments` (in order) as the status history says (the
    status of a ticket's last status change before the moment, new before the first; the
    drill-down's `_status_at`), counted back from the tickets open now (`open_now`, their
    status column, which is their last change's `to`): minus the tickets created since the
    moment, minus, per status change since it, +1 for one that opened a ticket and -1 for one
    that closed it. Two grouped scans of what happened since the first moment (the
    `ix_tickets_created` and `ix_ticket_entries_kind_at` indexes), whatever the number of
    periods, instead of one count over every ticket's history per period."""
    if not moments:
        return []

    def bucket(column: Any) -> Any:  # the last moment at or before `column` (the scans'
        return _halving_case(column, moments, list(range(len(moments))))  # are from the first)

    def is_open(column: Any) -> Any:
        return case((column.in_(domain.OPEN_STATUSES), 1), else_=0)

    since = [0] * len(moments)
    created = (select(bucket(TicketRow.created_at).label("at"))
               .where(TicketRow.created_at >= moments[0], *where))
    changes = (select(bucket(TicketEntryRow.at).label("at"),
                      (is_open(TicketEntryRow.to_value)
                       - is_open(TicketEntryRow.from_value)).label("change"))
               .where(TicketEntryRow.kind == "status_changed",
                      TicketEntryRow.at >= moments[0]))
    if narrowed:  # the tickets' columns only when the scope or a filter reads them
        changes = changes.join(TicketRow, TicketRow.id == TicketEntryRow.ticket_id).where(*where)
    # OFFSET 0 keeps each a subquery, whose computed bucket PostgreSQL counts as few groups
    # (hashed in memory); flattened, it takes every distinct instant for a group and sorts
    # hundreds of thousands of rows on disk to find a few dozen periods
    counted = created.offset(0).subquery()
    for i, n in session.execute(select(counted.c.at, func.count()).group_by(counted.c.at)):
        since[i] += n
    changed = changes.offset(0).subquery()
    for i, n in session.execute(select(changed.c.at, func.sum(changed.c.change))
                                .group_by(changed.c.at)):
        since[i] += int(n or 0)
    out, later = [], 0
    for i in reversed(range(len(moments))):
        later += since[i]
        out.append(open_now - later)
    return out[::-1]


def _age_case(now: datetime) -> Any:
    whens = []
    for name, least, below in domain.AGE_BANDS:
        if below is not None:
            whens.append((TicketRow.created_at > now - timedelta(days=below), name))
        else:
            whens.append((TicketRow.created_at <= now - timedelta(days=least), name))
    return case(*whens[:-1], else_=whens[-1][1])


# -- first reply and resolution times --------------------------------------------------------


def _achieved(target: str, start: datetime, end: datetime) -> list[Any]:
    return [TicketSlaOutcomeRow.ticket_id == TicketRow.id, TicketSlaOutcomeRow.target == target,
            TicketSlaOutcomeRow.state == "achieved", TicketSlaOutcomeRow.achieved_at >= start,
            TicketSlaOutcomeRow.achieved_at < end]


def durations(svc, target: str, filters: dict[str, Any], scope: dict[str, Any]
              ) -> dict[str, Any]:
    """The measured (business) seconds of the first replies given, or the tickets solved, in
    the period: p50, p90, average, buckets; and how many of them breached the target."""
    date_from, date_to, start, end = _bounds(filters)
    with svc.db.read() as session:
        rows = session.execute(
            select(TicketSlaOutcomeRow.elapsed_seconds, TicketSlaOutcomeRow.breached,
                   TicketSlaOutcomeRow.business)
            .join(TicketRow, TicketRow.id == TicketSlaOutcomeRow.ticket_id)
            .where(*_achieved(target, start, end), *_where(session, filters, scope))).all()
    result = domain.distribution(r[0] for r in rows)
    return {**_period_view(date_from, date_to), "target": target, **result,
            "breached": sum(1 for r in rows if r[1]),
            "calendar_time": sum(1 for r in rows if not r[2]),
            "unit": "seconds of business time on the SLA policy's calendar (calendar_time: "
                    "those of targets measured in calendar time)"}


# -- SLA attainment --------------------------------------------------------------------------


def sla_attainment(svc, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Per target of the tickets created in the period: met, breached, open and the rate, per
    policy, group and agent, and in total."""
    date_from, date_to, start, end = _bounds(filters)
    with svc.db.read() as session:
        where = [TicketRow.created_at >= start, TicketRow.created_at < end,
                 *_where(session, filters, scope)]
        if filters.get("target"):
            where.append(TicketSlaOutcomeRow.target == filters["target"])
        rows = session.execute(
            select(TicketSlaOutcomeRow.policy_id, TicketSlaOutcomeRow.target,
                   TicketRow.group_id, TicketRow.assignee_id, TicketSlaOutcomeRow.state,
                   TicketSlaOutcomeRow.breached, func.count())
            .join(TicketRow, TicketRow.id == TicketSlaOutcomeRow.ticket_id).where(*where)
            .group_by(TicketSlaOutcomeRow.policy_id, TicketSlaOutcomeRow.target,
                      TicketRow.group_id, TicketRow.assignee_id, TicketSlaOutcomeRow.state,
                      TicketSlaOutcomeRow.breached)).all()
        names = dict(session.execute(select(SlaPolicyRow.id, SlaPolicyRow.name)).all())
    tables: dict[str, dict[tuple, dict[str, int]]] = {
        name: defaultdict(lambda: defaultdict(int)) for name in ("policy", "group", "agent",
                                                                 "total")}
    for policy_id, target, group_id, assignee_id, state, breached, n in rows:
        kind = domain.outcome(state, bool(breached))
        if kind is None:
            continue
        for table, key in (("policy", policy_id), ("group", group_id),
                           ("agent", assignee_id), ("total", None)):
            tables[table][(key, target)][kind] += n

    def listed(table: str, field: str) -> list[dict[str, Any]]:
        out = []
        for (key, target), counts in sorted(tables[table].items(), key=lambda kv: (
                kv[0][0] or "", TARGETS.index(kv[0][1]) if kv[0][1] in TARGETS else 9)):
            row = {field: key, "target": target, **domain.attainment(counts)}
            if table == "policy":
                row["policy_name"] = names.get(key)
            out.append(row)
        return out

    return {**_period_view(date_from, date_to),
            "by_policy": listed("policy", "policy_id"), "by_group": listed("group", "group_id"),
            "by_agent": listed("agent", "assignee_id"),
            "total": [{"target": t, **domain.attainment(c)} for (_, t), c in sorted(
                tables["total"].items(),
                key=lambda kv: TARGETS.index(kv[0][1]) if kv[0][1] in TARGETS else 9)],
            "formula": "met / (met + breached) of the SLA targets of the tickets created in "
                       "the period; open: running or paused and not yet breached"}


# -- reopen rate -----------------------------------------------------------------------------


def _status_changes(start: datetime, end: datetime, *clauses: Any) -> Any:
    return exists().where(TicketEntryRow.ticket_id == TicketRow.id,
                          TicketEntryRow.kind == "status_changed", TicketEntryRow.at >= start,
                          TicketEntryRow.at < end, *clauses)


def _solved_in(start: datetime, end: datetime) -> Any:
    return _status_changes(start, end, TicketEntryRow.to_value == "solved")


def _reopened_in(start: datetime, end: datetime) -> Any:
    return _status_changes(start, end, TicketEntryRow.from_value == "solved",
                           TicketEntryRow.to_value.notin_(DONE))


def reopen_rate(svc, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Of the tickets solved in the period, those reopened (solved -> an open status) in it."""
    date_from, date_to, start, end = _bounds(filters)
    with svc.db.read() as session:
        where = _where(session, filters, scope)
        solved = session.scalar(select(func.count()).select_from(TicketRow)
                                .where(_solved_in(start, end), *where))
        reopened = session.scalar(select(func.count()).select_from(TicketRow)
                                  .where(_solved_in(start, end), _reopened_in(start, end),
                                         *where))
    return {**_period_view(date_from, date_to), "solved": solved, "reopened": reopened,
            "reopen_rate_percent": domain.percent(reopened, solved),
            "formula": "tickets solved in the period and reopened (solved -> open) in it / "
                       "tickets solved in the period"}


# -- drill-down ------------------------------------------------------------------------------


def drill_down(svc, figure: str, filters: dict[str, Any], params: dict[str, Any],
               scope: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """The tickets behind one figure, newest first, with the figure's filters and scope:
    volume (`period`, `channel`): created in the period; backlog (`period`: open at its end,
    else open now; `status`, `age_band`); first_reply / resolution (`bucket`): met in the
    period, with their `seconds`; sla (`target`, `outcome` met / breached / open,
    `policy_id`): created in the period; reopen (`outcome` solved / reopened)."""
    date_from, date_to, start, end = _bounds(filters)
    interval = filters.get("interval", "day")
    seconds: Any = None
    with svc.db.read() as session:
        where = _where(session, filters, scope)
        if figure == "volume":
            if params.get("period"):
                item = domain.period_named(params["period"], interval, date_from, date_to,
                                           _zone())
                start, end = item.start, item.end
            where += [TicketRow.created_at >= start, TicketRow.created_at < end]
            if params.get("channel"):
                where.append(TicketRow.channel == params["channel"])
        elif figure == "backlog":
            where += _backlog_where(params, interval, date_from, date_to)
        elif figure in ("first_reply", "resolution"):
            clauses = _achieved(figure, start, end)
            if params.get("bucket"):
                least, below = domain.bucket_bounds(params["bucket"])
                clauses.append(TicketSlaOutcomeRow.elapsed_seconds >= least)
                if below is not None:
                    clauses.append(TicketSlaOutcomeRow.elapsed_seconds < below)
            where.append(exists().where(*clauses))
            seconds = figure
        elif figure == "sla":
            where += [TicketRow.created_at >= start, TicketRow.created_at < end,
                      exists().where(*_sla_clauses(params))]
        elif figure == "reopen":
            kind = params.get("outcome") or "solved"
            if kind not in ("solved", "reopened"):
                raise ValidationFailed.for_fields({"outcome": ["solved or reopened"]})
            where.append(_solved_in(start, end))
            if kind == "reopened":
                where.append(_reopened_in(start, end))
        else:
            raise ValidationFailed.for_fields({"figure": [f"one of {', '.join(FIGURES)}"]})
        query = page_after(select(TicketRow).where(*where), TicketRow.created_at, TicketRow.id,
                           page["cursor"], page["limit"])
        rows = session.scalars(query).all()
        measured = {}
        if seconds and rows:
            measured = dict(session.execute(
                select(TicketSlaOutcomeRow.ticket_id, TicketSlaOutcomeRow.elapsed_seconds)
                .where(TicketSlaOutcomeRow.target == seconds,
                       TicketSlaOutcomeRow.ticket_id.in_([r.id for r in rows]))).all())
    return page_of(rows, page["limit"], "created_at",
                   lambda r: {**ticket_dict(r), "seconds": measured.get(r.id)})


def _backlog_where(params: dict[str, Any], interval: str, date_from: date, date_to: date
                   ) -> list[Any]:
    now = utcnow()
    if params.get("period"):
        item = domain.period_named(params["period"], interval, date_from, date_to, _zone())
        moment = min(item.end, now)
        where = [TicketRow.created_at < moment, _status_at(moment).in_(domain.OPEN_STATUSES)]
        status_column: Any = _status_at(moment)
    else:
        where = [TicketRow.status.in_(domain.OPEN_STATUSES)]
        status_column = TicketRow.status
    if params.get("status"):
        if params["status"] not in domain.OPEN_STATUSES:
            raise ValidationFailed.for_fields({"status": [
                f"one of {', '.join(domain.OPEN_STATUSES)}"]})
        where.append(status_column == params["status"])
    if params.get("age_band"):
        least, below = domain.bucket_bounds(params["age_band"], domain.AGE_BANDS, "age_band")
        where.append(TicketRow.created_at <= now - timedelta(days=least))
        if below is not None:
            where.append(TicketRow.created_at > now - timedelta(days=below))
    return where


def _sla_clauses(params: dict[str, Any]) -> list[Any]:
    clauses = [TicketSlaOutcomeRow.ticket_id == TicketRow.id]
    if params.get("target"):
        clauses.append(TicketSlaOutcomeRow.target == params["target"])
    if params.get("policy_id"):
        clauses.append(TicketSlaOutcomeRow.policy_id == params["policy_id"])
    kind = params.get("outcome")
    if kind == "breached":
        clauses.append(TicketSlaOutcomeRow.breached.is_(True))
    elif kind == "met":
        clauses += [TicketSlaOutcomeRow.breached.is_(False),
                    TicketSlaOutcomeRow.state == "achieved"]
    elif kind == "open":
        clauses += [TicketSlaOutcomeRow.breached.is_(False),
                    TicketSlaOutcomeRow.state.in_(("running", "paused"))]
    elif kind is not None:
        raise ValidationFailed.for_fields({"outcome": [f"one of {', '.join(domain.OUTCOMES)}"]})
    return clauses


# -- the customer 360's part -----------------------------------------------------------------


def customer_tickets(svc, customer_id: str, scope: dict[str, Any],
                     limit: int = CUSTOMER_RECENT) -> dict[str, Any]:
    """The customer's tickets the caller sees: how many are open, and the most recent ones
    with their status, priority and SLA state (`sla`: per target its state, breached and
    due_at; `sla_state`: breached / running / met / none)."""
    with svc.db.read() as session:
        where = [TicketRow.customer_id == customer_id, *_where(session, {}, scope)]
        open_count = session.scalar(select(func.count()).select_from(TicketRow).where(
            *where, TicketRow.status.in_(domain.OPEN_STATUSES)))
        total = session.scalar(select(func.count()).select_from(TicketRow).where(*where))
        rows = session.scalars(select(TicketRow).where(*where)
                               .order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
                               .limit(limit)).all()
        outcomes: dict[str, dict[str, Any]] = defaultdict(dict)
        if rows:
            for o in session.scalars(select(TicketSlaOutcomeRow).where(
                    TicketSlaOutcomeRow.ticket_id.in_([r.id for r in rows]))):
                outcomes[o.ticket_id][o.target] = {
                    "state": o.state, "breached": o.breached,
                    "due_at": o.due_at.astimezone(UTC).isoformat() if o.due_at else None}
    recent = []
    for row in rows:
        clocks = outcomes.get(row.id, {})
        recent.append({"id": row.id, "number": ticket_dict(row)["number"],
                       "subject": row.subject, "status": row.status, "priority": row.priority,
                       "assignee_id": row.assignee_id, "group_id": row.group_id,
                       "created_at": row.created_at.isoformat(),
                       "updated_at": row.updated_at.isoformat(),
                       "sla_state": _sla_state(clocks), "sla": clocks})
    return {"customer_id": customer_id, "open_count": open_count, "total": total,
            "recent": recent}


def _sla_state(clocks: dict[str, dict[str, Any]]) -> str:
    """breached (any target), running (one still runs or is paused), met (all decided in
    time), none (no SLA policy applies)."""
    if not clocks:
        return "none"
    if any(c["breached"] for c in clocks.values()):
        return "breached"
    if any(c["state"] in ("running", "paused") for c in clocks.values()):
        return "running"
    return "met"
