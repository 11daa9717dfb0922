"""Satisfaction survey use cases: the survey a ticket's first solve creates and its e-mail to
the requester (through the mail outbox, both in the solve's transaction), the requester's one
answer through the link, the figures per agent, group and month, and the surveys behind them.
`svc` is the nameko service (db, events, context).

The link's token is the only credential of the requester: 256 random bits, unique, valid for
30 days (domain/csat.py). Agents and managers see the surveys of the tickets whose assignee is
in their scope (as for tickets); the token is never shown to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session

from services.service_desk.domain import csat as domain
from services.service_desk.domain.tickets import ticket_tag
from services.service_desk.models import CsatSurveyRow, TicketRow
from services.service_desk.usecases import mail_outbox
from services.service_desk.usecases.entries import add_entry, ticket_number
from shared import config
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed
from shared.paging import page_after, page_of


def survey_url(token: str) -> str:
    return f"{config.public_url()}/surveys/{token}"


def _month(at: datetime) -> str:
    return at.astimezone(ZoneInfo(config.timezone_name())).strftime("%Y-%m")


def on_solved(svc, session: Session, ticket: TicketRow, at: datetime) -> CsatSurveyRow | None:
    """The ticket's survey, created at its first solve (a ticket solved again after a reopen
    keeps its first survey). Returns the new survey, or None when it already had one."""
    if session.scalar(select(CsatSurveyRow.id).where(CsatSurveyRow.ticket_id == ticket.id)):
        return None
    survey = CsatSurveyRow(
        id=str(uuid.uuid4()), ticket_id=ticket.id, token=domain.new_token(),
        requester_email=ticket.requester_email, assignee_id=ticket.assignee_id,
        group_id=ticket.group_id, month=_month(at), created_at=at,
        expires_at=domain.expires_at(at))
    session.add(survey)
    session.flush()
    subject, text = domain.survey_mail(ticket_number(ticket.number), ticket.subject,
                                       ticket.requester_name, survey_url(survey.token),
                                       ticket_tag(ticket.number))
    mail_outbox.queue_reply(session, ticket, survey.id, text, subject=subject)
    svc.events.record(session, "csat_survey_created", {
        "survey_id": survey.id, "ticket_id": ticket.id,
        "ticket_number": ticket_number(ticket.number),
        "requester_email": ticket.requester_email, "assignee_id": survey.assignee_id,
        "group_id": survey.group_id})
    return survey


def _by_token(session: Session, token: str, for_update: bool = False
              ) -> tuple[CsatSurveyRow, TicketRow]:
    query = (select(CsatSurveyRow, TicketRow)
             .join(TicketRow, TicketRow.id == CsatSurveyRow.ticket_id)
             .where(CsatSurveyRow.token == token))
    if for_update:
        query = query.with_for_update(of=CsatSurveyRow)
    found = session.execute(query).first()
    if found is None:
        raise NotFound("survey not found")
    return found[0], found[1]


def _public_status(survey: CsatSurveyRow, now: datetime) -> str:
    if survey.rating is not None:
        return "answered"
    return "expired" if now >= survey.expires_at else "open"


def _page(survey: CsatSurveyRow, ticket: TicketRow, now: datetime) -> dict[str, Any]:
    """What the link shows: the ticket's number and subject, whether it can still be answered."""
    return {"ticket_number": ticket_number(ticket.number), "subject": ticket.subject,
            "status": _public_status(survey, now), "rating": survey.rating,
            "reasons": list(domain.BAD_REASONS), "expires_at": survey.expires_at.isoformat()}


def public_survey(svc, token: str) -> dict[str, Any]:
    with svc.db.read() as session:
        return _page(*_by_token(session, token), utcnow())


def answer(svc, token: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The requester's one answer: a second one is a 409, after the window a 412."""
    domain.check_answer(data["rating"], data.get("reason"))
    now = utcnow()
    with svc.db.begin() as session:
        survey, ticket = _by_token(session, token, for_update=True)
        status = _public_status(survey, now)
        if status == "answered":
            raise Conflict("this survey has been answered", {"answered_at":
                                                             survey.answered_at.isoformat()})
        if status == "expired":
            raise PreconditionFailed("this survey can no longer be answered",
                                     {"expires_at": survey.expires_at.isoformat()})
        # The conditional update makes one answer win when two arrive at once (SQLite has no
        # row locks; PostgreSQL's FOR UPDATE above already orders them).
        done = session.execute(
            update(CsatSurveyRow).where(CsatSurveyRow.id == survey.id,
                                        CsatSurveyRow.rating.is_(None))
            .values(rating=data["rating"], reason=data.get("reason"),
                    comment=data.get("comment"), answered_at=now))
        if done.rowcount != 1:
            raise Conflict("this survey has been answered", {})
        add_entry(session, ticket, "csat_answered", now, body=data.get("comment"), public=False,
                  author_kind="customer", to_value=data["rating"],
                  from_value=data.get("reason"))
        session.refresh(survey)
        svc.events.record(session, "csat_answered", {
            "survey_id": survey.id, "ticket_id": ticket.id,
            "ticket_number": ticket_number(ticket.number), "assignee_id": survey.assignee_id,
            "group_id": survey.group_id, "rating": survey.rating, "reason": survey.reason,
            "comment": survey.comment})
        return _page(survey, ticket, now)


def _scope_clause(scope: Mapping[str, Any]) -> ColumnElement[bool]:
    """Surveys of the agents in the caller's scope (as tickets by assignee); unassigned ones
    with `include_pool`."""
    if scope.get("all"):
        return CsatSurveyRow.id.is_not(None)
    clauses = ([CsatSurveyRow.assignee_id.in_(scope["owner_ids"])]
               if scope.get("owner_ids") else [])
    if scope.get("include_pool"):
        clauses.append(CsatSurveyRow.assignee_id.is_(None))
    return or_(*clauses) if clauses else CsatSurveyRow.id.is_(None)


def _filtered(query, filters: Mapping[str, Any], scope: Mapping[str, Any]):
    query = query.where(_scope_clause(scope))
    if "from_month" in filters:
        query = query.where(CsatSurveyRow.month >= filters["from_month"])
    if "to_month" in filters:
        query = query.where(CsatSurveyRow.month <= filters["to_month"])
    for name in ("assignee_id", "group_id", "rating", "reason"):
        if name in filters:
            query = query.where(getattr(CsatSurveyRow, name) == filters[name])
    if "answered" in filters:
        query = query.where(CsatSurveyRow.rating.is_not(None) if filters["answered"]
                            else CsatSurveyRow.rating.is_(None))
    return query


GROUP_COLUMNS = {"agent": CsatSurveyRow.assignee_id, "group": CsatSurveyRow.group_id,
                 "month": CsatSurveyRow.month}


def report(svc, group_by: str, filters: Mapping[str, Any],
           scope: Mapping[str, Any]) -> dict[str, Any]:
    """Sent, answered, good, bad, score, response rate and bad reasons per agent, group or
    month, counted in SQL, within the caller's scope."""
    domain.check_grouping(group_by)
    key = GROUP_COLUMNS[group_by]
    counts = _filtered(select(
        key, func.count(), func.count(CsatSurveyRow.rating),
        func.coalesce(func.sum(case((CsatSurveyRow.rating == "good", 1), else_=0)), 0),
    ), filters, scope).group_by(key)
    reasons = _filtered(select(key, CsatSurveyRow.reason, func.count()), filters, scope).where(
        CsatSurveyRow.rating == "bad", CsatSurveyRow.reason.is_not(None),
    ).group_by(key, CsatSurveyRow.reason)
    with svc.db.read() as session:
        return domain.report(group_by, [tuple(r) for r in session.execute(counts)],
                             [tuple(r) for r in session.execute(reasons)])


def _survey_dict(row: tuple[CsatSurveyRow, int]) -> dict[str, Any]:
    survey, number = row
    return {"id": survey.id, "ticket_id": survey.ticket_id, "ticket_number": ticket_number(number),
            "requester_email": survey.requester_email, "assignee_id": survey.assignee_id,
            "group_id": survey.group_id, "month": survey.month,
            "created_at": survey.created_at.isoformat(),
            "expires_at": survey.expires_at.isoformat(), "rating": survey.rating,
            "reason": survey.reason, "comment": survey.comment,
            "answered_at": survey.answered_at.isoformat() if survey.answered_at else None}


class _Row:
    """A (survey, ticket number) pair as `page_of` reads it: created_at and id."""

    def __init__(self, survey: CsatSurveyRow, number: int) -> None:
        self.pair = (survey, number)
        self.created_at, self.id = survey.created_at, survey.id


def list_surveys(svc, filters: Mapping[str, Any], scope: Mapping[str, Any],
                 page: Mapping[str, Any]) -> dict[str, Any]:
    """The surveys behind a figure, newest first (drill-down of `report`)."""
    query = _filtered(select(CsatSurveyRow, TicketRow.number)
                      .join(TicketRow, TicketRow.id == CsatSurveyRow.ticket_id), filters, scope)
    query = page_after(query, CsatSurveyRow.created_at, CsatSurveyRow.id, page["cursor"],
                       page["limit"])
    with svc.db.read() as session:
        rows = [_Row(survey, number) for survey, number in session.execute(query)]
    return page_of(rows, page["limit"], "created_at", lambda r: _survey_dict(r.pair))
