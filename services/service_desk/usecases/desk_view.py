"""The agents' desk in the console (console-desk): the queue (my tickets, my groups', the
unassigned ones, with filters, search and each ticket's SLA state) and a draft knowledge-base
article from a solved ticket (one ticket's clocks: `sla_checks.ticket_sla`). Visibility is the
tickets part's (the gateway's scope plus the caller's groups): a ticket out of sight is not
found.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select

from services.service_desk.clock import now as utcnow
from services.service_desk.domain import desk_view as domain
from services.service_desk.domain import sla as sla_domain
from services.service_desk.models import TicketEntryRow, TicketRow
from services.service_desk.usecases import kb, sla_schedule, tickets
from services.service_desk.usecases.group_scope import viewer_group_ids
from shared.errors import CrmError, PreconditionFailed
from shared.paging import page_after, page_of

log = logging.getLogger(__name__)

NUMBER = re.compile(r"^\s*#?(?:T-?)?0*(\d{1,12})\s*$", re.IGNORECASE)


def _clocks(events: list[dict[str, Any]], rules: sla_schedule.Rules) -> dict[str, Any]:
    moment = max([utcnow(), *(e["at"] for e in events)])
    policies, calendars = rules
    computed = sla_domain.ticket_clocks(events, policies, calendars, moment)
    return {**computed, "computed_at": moment}


def queue(svc, filters: dict[str, Any], scope: Mapping[str, Any], page: dict[str, Any]
          ) -> dict[str, Any]:
    """A page of the tickets the caller sees in `filters["view"]`, newest first, each with its
    SLA state (`sla`: state, next_target, next_due_at, breached_targets). The caller is the
    scope's `user_id` (mine; an admin's own groups)."""
    user_id = scope.get("user_id")
    with svc.db.read() as session:
        groups = viewer_group_ids(session, scope)
        query = select(TicketRow).where(tickets._scope_clause(scope, groups))
        view = filters.get("view", "all")
        if view == "mine":
            query = query.where(TicketRow.assignee_id == (user_id or ""))
        elif view == "groups":
            if scope.get("all"):  # an admin's groups: the ones they are in or manage
                groups = viewer_group_ids(session, {"user_id": user_id})
            query = query.where(TicketRow.group_id.in_(sorted(groups)))
        elif view == "unassigned":
            query = query.where(TicketRow.assignee_id.is_(None))
        for name in ("status", "priority", "group_id"):
            if name in filters:
                query = query.where(getattr(TicketRow, name) == filters[name])
        if filters.get("q"):
            text = filters["q"].strip()
            pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            matches = [func.lower(TicketRow.subject).like(pattern, escape="\\"),
                       func.lower(TicketRow.requester_email).like(pattern, escape="\\"),
                       func.lower(TicketRow.requester_name).like(pattern, escape="\\")]
            number = NUMBER.match(text)
            if number:
                matches.append(TicketRow.number == int(number.group(1)))
            query = query.where(or_(*matches))
        query = page_after(query, TicketRow.created_at, TicketRow.id, page["cursor"],
                           page["limit"])
        rows = list(session.scalars(query).all())
        logs = sla_schedule.ticket_logs(session, rows[:page["limit"]])
        rules = sla_schedule.load_rules(session) if logs else ([], {})

    def with_sla(row: TicketRow) -> dict[str, Any]:
        summary: dict[str, Any] = {"state": "none", "next_target": None, "next_due_at": None,
                                   "breached_targets": []}
        try:
            summary = domain.sla_summary(_clocks(logs[row.id], rules)["clocks"])
        except CrmError as exc:  # a calendar missing a year: the ticket shows no SLA state
            log.warning("SLA of ticket %s not computed for the queue: %s", row.id, exc)
        return {**tickets.ticket_dict(row), "sla": summary}

    return page_of(rows, page["limit"], "created_at", with_sla)


def draft_article(svc, ticket_id: str, data: dict[str, Any], scope: Mapping[str, Any],
                  principal: dict | None) -> dict[str, Any]:
    """A draft article from a solved (or closed) ticket the caller sees: the title defaults
    to its subject, the body to its public conversation. Writers only (the knowledge base's)."""
    with svc.db.read() as session:
        row = tickets.find(session, ticket_id, scope)
        if row.status not in ("solved", "closed"):
            raise PreconditionFailed("only a solved ticket becomes a draft article",
                                     {"status": row.status})
        entries = session.scalars(select(TicketEntryRow).where(TicketEntryRow.ticket_id == row.id)
                                  .order_by(TicketEntryRow.seq)).all()
        title = data.get("title") or row.subject
        body = data.get("body") or domain.draft_body(
            {"subject": row.subject}, (tickets.entry_dict(e) for e in entries))
    return kb.create_article_from(svc, title[:300], body, row.id, principal)
