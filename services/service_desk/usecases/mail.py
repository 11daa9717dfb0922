"""E-mail use cases: intake (a mail into a new ticket or an entry of its thread's ticket, with
its attachments), replies out through the mail outbox, and attachments for reading.

Intake is one transaction per mail, idempotent by Message-ID (`mail_messages`): the SMTP
listener answers 250 only after it committed, so a mail is either stored or refused with a
4xx the sending server retries. Auto-replies and loops are recorded as `ignored` (so a
redelivery is ignored too) and never become tickets or get an answer.

A public agent reply to a ticket with a requester e-mail writes a `mail_outbox` row in the
reply's own transaction (`queue_reply`, called by usecases/tickets.add_reply); `deliver_due`
sends what is due with retries and back-off. The Message-ID is fixed in the row, so a message
that a crash made us send twice is the same message to the receiving side.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow  # the wall clock, or the tests'
from services.service_desk.domain import mail as mail_domain
from services.service_desk.domain import threading
from services.service_desk.domain import tickets as ticket_domain
from services.service_desk.models import (
    MailMessageRow,
    MailOutboxRow,
    TicketAttachmentRow,
    TicketRow,
)
from services.service_desk.usecases import mail_outbox, sla_schedule, tickets
from services.service_desk.usecases.entries import add_entry, ticket_number
from services.service_desk.usecases.mail_outbox import MailSettings
from shared.errors import NotFound

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- intake


def receive(svc, raw: bytes, mail_from: str = "", rcpt_tos: tuple[str, ...] = ()
            ) -> dict[str, Any]:
    """Take one mail: `{outcome: created | replied | ignored | duplicate, message_id,
    ticket_id, number, reason}`. Raises only what the sender should retry (the database).
    `mail_from` (the envelope's MAIL FROM) stands in for a missing From; `rcpt_tos` is not
    used yet (one service desk address)."""
    conf = mail_outbox.settings()
    parsed = mail_domain.parse(raw, conf.limits)
    if not parsed.from_address and "@" in mail_from:
        parsed.from_address = mail_from.strip().lower()  # no From: the envelope's sender
    try:
        return _receive(svc, conf, parsed)
    except IntegrityError:
        # The same Message-ID committed concurrently (another connection, another process).
        with svc.db.read() as session:
            known = session.get(MailMessageRow, parsed.message_id)
            if known is None:
                raise
            return _result(known, duplicate=True, session=session)


def _ignore_reason(conf: MailSettings, parsed: mail_domain.InboundMail) -> str | None:
    if not parsed.from_address:
        return "no sender address"
    if threading.is_own_message_id(parsed.message_id, conf.domain):
        return "loop: our own message came back"
    if parsed.from_address == conf.own_address:
        return "loop: sent by this service desk"
    if parsed.auto_reply:
        return "auto-reply"
    if not mail_outbox.sender_limit().allow(parsed.from_address,
                                                             time.monotonic()):
        return "loop: too many messages from the sender"
    return None


def _receive(svc, conf: MailSettings, parsed: mail_domain.InboundMail) -> dict[str, Any]:
    now = utcnow()
    with svc.db.begin() as session:
        known = session.get(MailMessageRow, parsed.message_id)
        if known is not None:
            return _result(known, duplicate=True, session=session)
        reason = _ignore_reason(conf, parsed)
        if reason is not None:
            row = MailMessageRow(message_id=parsed.message_id, direction="in", outcome="ignored",
                                 reason=reason, sender=parsed.from_address[:320] or None, at=now)
            session.add(row)
            session.flush()
            log.info("mail %s from %s ignored: %s", parsed.message_id, parsed.from_address,
                     reason)
            return _result(row)
        ticket = _thread_ticket(session, parsed)
        body = "\n\n".join(p for p in (parsed.text, mail_domain.skipped_note(parsed.skipped))
                           if p) or "(no text)"
        if ticket is None:
            ticket, entry = _new_ticket(svc, session, parsed, body, now)
            outcome = "created"
        else:
            entry = _customer_reply(svc, session, ticket, body, now)
            outcome = "replied"
        for attachment in parsed.attachments:
            session.add(TicketAttachmentRow(
                id=str(uuid.uuid4()), ticket_id=ticket.id, entry_id=entry.id,
                filename=attachment.filename, content_type=attachment.content_type[:255],
                size=attachment.size, sha256=attachment.sha256, content=attachment.content,
                created_at=now))
        row = MailMessageRow(message_id=parsed.message_id, direction="in", ticket_id=ticket.id,
                             entry_id=entry.id, outcome=outcome,
                             sender=parsed.from_address[:320], at=now)
        session.add(row)
        session.flush()
        return _result(row, session=session)


def _result(row: MailMessageRow, duplicate: bool = False, session: Session | None = None
            ) -> dict[str, Any]:
    number = None
    if row.ticket_id and session is not None:
        value = session.scalar(select(TicketRow.number).where(TicketRow.id == row.ticket_id))
        number = ticket_number(value) if value is not None else None
    return {"outcome": "duplicate" if duplicate else row.outcome,
            "message_id": row.message_id, "ticket_id": row.ticket_id, "number": number,
            "reason": row.reason}


def _thread_ticket(session: Session, parsed: mail_domain.InboundMail) -> TicketRow | None:
    """The open (not closed) ticket of the mail's thread, or None for a new ticket. A subject
    tag alone counts only from the ticket's requester: a guessed number must not let anyone
    write into someone else's ticket."""

    def by_message_id(message_id: str) -> str | None:
        return session.scalar(select(MailMessageRow.ticket_id)
                              .where(MailMessageRow.message_id == message_id))

    def by_number(number: int) -> str | None:
        return session.scalar(select(TicketRow.id).where(
            TicketRow.number == number, TicketRow.requester_email == parsed.from_address))

    ticket_id = threading.find_ticket(parsed.message, by_message_id, by_number)
    if ticket_id is None:
        return None
    row = session.scalars(select(TicketRow).where(TicketRow.id == ticket_id)
                          .with_for_update()).first()
    if row is None or row.status == "closed":
        return None  # a closed ticket takes no replies: the mail opens a new one
    return row


def _new_ticket(svc, session: Session, parsed: mail_domain.InboundMail, body: str,
                now: datetime):
    subject = threading.TAG_RE.sub("", parsed.subject).strip() or "(no subject)"
    return tickets.open_ticket(svc, session, {
        "subject": subject[:500], "requester_email": parsed.from_address[:320],
        "requester_name": (parsed.from_name or None) and parsed.from_name[:200],
        "priority": "normal", "type": "question", "category": None, "tags": [],
        "assignee_id": None, "group_id": None, "channel": "email", "customer_id": None,
        "customer_tier": None}, now, body, "customer", None)


def _customer_reply(svc, session: Session, ticket: TicketRow, body: str, now: datetime):
    target = ticket_domain.status_after_reply(ticket.status, author="customer", public=True)
    entry = add_entry(session, ticket, "reply", now, body=body, public=True,
                               author_kind="customer", author_id=None)
    ticket.updated_at = now
    if target != ticket.status:
        tickets._change_status(svc, session, ticket, target, now)
    session.flush()
    snapshot = tickets.ticket_dict(ticket)
    svc.events.record(session, "ticket_replied", {"ticket": snapshot,
                                                  "entry": tickets.entry_dict(entry)})
    sla_schedule.after_change(svc.events, session, ticket, snapshot)  # SLA scheduling
    return entry


def outbox_state(svc, ticket_id: str, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ticket's outgoing mail and how far each got."""
    with svc.db.read() as session:
        tickets._find(session, ticket_id, scope)
        rows = session.scalars(select(MailOutboxRow).where(MailOutboxRow.ticket_id == ticket_id)
                               .order_by(MailOutboxRow.created_at)).all()
        return [{"id": r.id, "entry_id": r.entry_id, "message_id": r.message_id,
                 "to": r.to_address, "subject": r.subject, "status": r.status,
                 "attempts": r.attempts, "last_error": r.last_error,
                 "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]


# --------------------------------------------------------------------------- attachments


def attachment_dict(row: TicketAttachmentRow) -> dict[str, Any]:
    return {"id": row.id, "ticket_id": row.ticket_id, "entry_id": row.entry_id,
            "filename": row.filename, "content_type": row.content_type, "size": row.size,
            "sha256": row.sha256, "created_at": row.created_at.isoformat()}


def list_attachments(svc, ticket_id: str, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    columns = [c for c in TicketAttachmentRow.__table__.c if c.name != "content"]
    with svc.db.read() as session:
        tickets._find(session, ticket_id, scope)
        rows = session.execute(select(*columns).where(TicketAttachmentRow.ticket_id == ticket_id)
                               .order_by(TicketAttachmentRow.created_at,
                                         TicketAttachmentRow.id)).all()
        return [attachment_dict(row) for row in rows]


def get_attachment(svc, ticket_id: str, attachment_id: str,
                   scope: Mapping[str, Any]) -> dict[str, Any]:
    """The attachment with its `content` (base64), if the caller sees the ticket."""
    with svc.db.read() as session:
        tickets._find(session, ticket_id, scope)
        row = session.scalars(select(TicketAttachmentRow).where(
            TicketAttachmentRow.id == attachment_id,
            TicketAttachmentRow.ticket_id == ticket_id)).first()
        if row is None:
            raise NotFound("attachment not found")
        return {**attachment_dict(row), "content": base64.b64encode(row.content).decode()}


