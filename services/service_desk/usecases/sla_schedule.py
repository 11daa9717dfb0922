"""SLA scheduling of one ticket, inside the caller's transaction: its clocks recomputed from its
stored entries, the warnings and breaches due published once (`sla_notices`, per ticket, target,
threshold and cycle), and `ticket_sla_scheduled` published when the next instants changed (with
a `sequence` that grows, so the rules service keeps the newest timer).

Called by the tickets part after every change (create, status, priority, reply), by
`check_sla(ticket_id)` (the rules service's timer) and by the sweep after a policy or calendar
change (services/service_desk/usecases/sla_checks.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow
from services.service_desk.domain import sla as sla_domain
from services.service_desk.domain import sla_schedule as domain
from services.service_desk.domain.calendar import BusinessCalendar
from services.service_desk.models import (
    BusinessCalendarRow,
    SlaNoticeRow,
    SlaScheduleRow,
    TicketEntryRow,
    TicketGroupRow,
    TicketRow,
)
from services.service_desk.usecases import sla as sla_usecases
from services.service_desk.usecases import ticket_outcomes
from shared.errors import PreconditionFailed, ValidationFailed

log = logging.getLogger(__name__)

Rules = tuple[list[sla_domain.Policy], dict[str | None, BusinessCalendar]]
ENTRY_COLUMNS = (TicketEntryRow.kind, TicketEntryRow.public, TicketEntryRow.author_kind,
                 TicketEntryRow.from_value, TicketEntryRow.to_value, TicketEntryRow.at)


def load_rules(session: Session) -> Rules:
    """The policies in order and the calendars they use, as the domain reads them."""
    policies = [sla_domain.policy_from_dict(sla_usecases.policy_to_dict(row))
                for row in sla_usecases._ordered(session)]
    wanted = {p.calendar_id for p in policies if p.calendar_id}
    calendars: dict[str | None, BusinessCalendar] = {}
    if wanted:
        for row in session.scalars(select(BusinessCalendarRow)
                                   .where(BusinessCalendarRow.id.in_(wanted))):
            calendars[row.id] = sla_usecases._domain_calendar(sla_usecases.calendar_to_dict(row))
    return policies, calendars


def _entry(e: Any) -> dict[str, Any]:
    return {"kind": e.kind, "public": e.public, "author_kind": e.author_kind,
            "from": e.from_value, "to": e.to_value, "at": e.at}


def _log(row: TicketRow, entries: Iterable[Any]) -> list[dict[str, Any]]:
    return domain.ticket_log({"priority": row.priority, "customer_tier": row.customer_tier},
                             map(_entry, entries))


def ticket_events(session: Session, row: TicketRow) -> list[dict[str, Any]]:
    return _log(row, session.execute(select(*ENTRY_COLUMNS)
                                     .where(TicketEntryRow.ticket_id == row.id)
                                     .order_by(TicketEntryRow.seq)).all())


def ticket_logs(session: Session, rows: Sequence[TicketRow]) -> dict[str, list[dict[str, Any]]]:
    """`ticket_events` of several tickets, their entries in one query."""
    entries: dict[str, list[Any]] = defaultdict(list)
    if rows:
        for e in session.execute(select(TicketEntryRow.ticket_id, *ENTRY_COLUMNS)
                                 .where(TicketEntryRow.ticket_id.in_([r.id for r in rows]))
                                 .order_by(TicketEntryRow.ticket_id, TicketEntryRow.seq)):
            entries[e.ticket_id].append(e)
    return {row.id: _log(row, entries[row.id]) for row in rows}


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def group_manager_id(session: Session, row: TicketRow) -> str | None:
    """The manager of the ticket's group (None: no group, or a group without a manager)."""
    if row.group_id is None:
        return None
    return session.scalar(select(TicketGroupRow.manager_id)
                          .where(TicketGroupRow.id == row.group_id))


def keep_outcomes(session: Session, row: TicketRow, now: datetime | None = None,
                  rules: Rules | None = None, events: list[dict[str, Any]] | None = None,
                  outcomes: Sequence[Any] | None = None
                  ) -> tuple[datetime, dict[str, Any], SlaScheduleRow | None]:
    """The first half of `recheck`, which publishes nothing: the ticket's clocks at the
    moment `recheck` takes (never before its last entry, this process's now, `now` or its
    previous computation) and its numbers' rows (`ticket_sla_outcomes`) kept as they say.
    The outcomes backfill calls it alone, with the log (`events`) and the ticket's present
    outcome rows (`outcomes`) read for a whole batch. Answers (moment, clocks, schedule)."""
    if events is None:
        events = ticket_events(session, row)
    stored = session.get(SlaScheduleRow, row.id)
    moment = max([utcnow(), *(e["at"] for e in events), *([now] if now else []),
                  *([stored.computed_at] if stored else [])])
    policies, calendars = rules or load_rules(session)
    computed = sla_domain.ticket_clocks(events, policies, calendars, moment)
    ticket_outcomes.keep(session, row.id, computed["policy_id"], computed["clocks"],
                         outcomes)
    return moment, computed, stored


def recheck(recorder: Any, session: Session, row: TicketRow, snapshot: dict[str, Any],
            now: datetime | None = None, rules: Rules | None = None) -> dict[str, Any]:
    """The ticket's clocks at `now`, the notices due published once, and the schedule published
    if it changed. The moment is never before the ticket's last entry, this process's now or
    the moment of its previous computation (a caller's late clock does not hide a change, and
    a change after a check at the rules service's clock does not go back in time).
    `recorder.record(session, type, data)` is the outbox."""
    moment, computed, stored = keep_outcomes(session, row, now, rules)
    clocks = computed["clocks"]
    published: list[dict[str, Any]] = []
    for notice in domain.due_notices(clocks, moment):
        key = dict(ticket_id=row.id, target=notice.target, kind=notice.kind,
                   threshold=notice.threshold_key, due_at=notice.cycle)
        if session.get(SlaNoticeRow, key) is not None:
            continue
        session.add(SlaNoticeRow(**key, published_at=utcnow()))
        clock = clocks[notice.target]
        manager_id = group_manager_id(session, row)
        # the group's manager also in the ticket's snapshot: the rules' record, whose fields
        # a rule's recipients name (`field:group_manager_id`)
        data: dict[str, Any] = {"ticket_id": row.id, "policy_id": computed["policy_id"],
                                "target": notice.target, "due_at": _wire(clock["due_at"]),
                                "group_manager_id": manager_id,
                                "ticket": {**snapshot, "group_manager_id": manager_id}}
        if notice.kind == "warning":
            event_type = "ticket_sla_warning"
            data.update(threshold=notice.threshold,
                        remaining_seconds=clock["remaining_seconds"])
        else:
            event_type = "ticket_sla_breached"
            data["breached_at"] = _wire(clock["breached_at"] or clock["due_at"])
        session.flush()
        recorder.record(session, event_type, data)
        published.append({"event_type": event_type, **data})
    plan = _wire({"policy_id": computed["policy_id"],
                  **domain.schedule(clocks, moment)})
    sequence = stored.sequence if stored else 0
    if stored is not None:
        stored.computed_at = moment
    if stored is None or stored.schedule != plan:
        sequence += 1
        next_check = plan["next_check_at"]
        values = {"sequence": sequence, "policy_id": plan["policy_id"], "schedule": plan,
                  "next_check_at": datetime.fromisoformat(next_check) if next_check else None,
                  "computed_at": moment, "updated_at": utcnow()}
        if stored is None:
            session.add(SlaScheduleRow(ticket_id=row.id, **values))
        else:
            for name, value in values.items():
                setattr(stored, name, value)
        session.flush()
        # A first schedule with nothing to time (no policy applies, every clock paused) tells
        # the rules nothing: no timer to start or to cancel.
        if stored is not None or plan["next_check_at"] is not None:
            recorder.record(session, "ticket_sla_scheduled",
                            {"ticket_id": row.id, "ticket": snapshot, "sequence": sequence,
                             **plan})
    return {"ticket_id": row.id, "policy_id": computed["policy_id"], "published": published,
            "next_check_at": plan["next_check_at"], "sequence": sequence,
            "computed_at": moment.isoformat(), "clocks": plan["clocks"]}


def after_change(recorder: Any, session: Session, row: TicketRow,
                 snapshot: dict[str, Any]) -> None:
    """The tickets part's hook: a change never fails because the SLA cannot be computed (a
    calendar missing a year, a business target without a calendar); it is logged and the
    ticket's schedule stays as it was (check_sla by id then says why)."""
    try:  # the computation comes before any write: nothing is half done when it fails
        recheck(recorder, session, row, snapshot)
    except (PreconditionFailed, ValidationFailed) as exc:
        log.warning("SLA of ticket %s not scheduled: %s", row.id, exc)
