"""Replies out by e-mail: the mail outbox of the service_desk service.

A public agent reply to a ticket with a requester e-mail writes a `mail_outbox` row in the
reply's own transaction (`queue_reply`, called by usecases/tickets.add_reply), so a rolled-back
reply sends nothing and a committed one is never lost. `deliver_due` (the service's timer)
claims due rows with a lease, sends each and stores its outcome before the next: sent, pending
again with back-off (SEND_BACKOFF) after a temporary failure (connection, 4xx), failed after a
permanent one (5xx) or when the back-off is spent. The Message-ID is fixed in the row, so the
one message a crash between sending and storing may send again is the same message to the
receiving side (which drops the copy), never a second reply. Internal notes never get a row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.service_desk.domain import mail as mail_domain
from services.service_desk.domain import threading
from services.service_desk.models import MailMessageRow, MailOutboxRow, TicketRow
from shared import config
from shared.envelope import utcnow

OUTBOX_BATCH = 50
SEND_BACKOFF = (5, 30, 120, 600, 1800, 3600, 6 * 3600)  # seconds, then failed
MAX_REFERENCES = 20


@dataclass(frozen=True)
class MailSettings:
    from_address: str  # our sender, as in From
    domain: str  # of our Message-IDs
    limits: mail_domain.MailLimits
    sender_limit: int  # messages per sender per minute before it counts as a loop
    # How long a claimed reply is the claimer's: a sender that died holding it is replaced
    # after this. Longer than a send can take (the SMTP timeout), or a slow send goes twice.
    send_lease: timedelta

    @classmethod
    def from_env(cls) -> MailSettings:
        from_header = config.env("CRM_SMTP_FROM", "CRM <crm@localhost>")
        address = parseaddr(from_header)[1].lower() or "crm@localhost"
        mb = 1024 * 1024
        limits = mail_domain.MailLimits(
            attachment_bytes=int(float(config.env("SERVICE_DESK_MAIL_MAX_ATTACHMENT_MB", "10"))
                                 * mb),
            attachments_total_bytes=int(float(
                config.env("SERVICE_DESK_MAIL_MAX_ATTACHMENTS_MB", "20")) * mb),
            attachments_count=int(config.env("SERVICE_DESK_MAIL_MAX_ATTACHMENTS", "20")),
        )
        return cls(from_header, config.env("SERVICE_DESK_MAIL_DOMAIN",
                                           address.rpartition("@")[2] or "localhost"),
                   limits, int(config.env("SERVICE_DESK_MAIL_SENDER_LIMIT", "30")),
                   timedelta(seconds=float(config.env("SERVICE_DESK_MAIL_SEND_LEASE", "120"))))

    @property
    def own_address(self) -> str:
        return parseaddr(self.from_address)[1].lower()


_settings: MailSettings | None = None
_sender_limit: threading.SenderRateLimit | None = None


def settings() -> MailSettings:
    global _settings, _sender_limit
    if _settings is None:
        _settings = MailSettings.from_env()
        _sender_limit = threading.SenderRateLimit(_settings.sender_limit, 60.0)
    return _settings


def sender_limit() -> threading.SenderRateLimit:
    settings()
    assert _sender_limit is not None
    return _sender_limit


def reset_settings() -> None:
    """Read the environment again (tests change it)."""
    global _settings, _sender_limit
    _settings = _sender_limit = None


# --------------------------------------------------------------------------- replies out


def queue_reply(session: Session, ticket: TicketRow, entry_id: str, body: str,
                subject: str | None = None) -> str | None:
    """In the reply's transaction: the outgoing mail of a public agent reply (`entry_id` its
    entry; a satisfaction survey's mail: the survey's id and its own `subject`), threaded under
    the ticket's mail (In-Reply-To the customer's latest message, References the thread).
    Returns its Message-ID (None: the ticket has no requester address)."""
    if not ticket.requester_email:
        return None
    conf = settings()
    thread = session.execute(
        select(MailMessageRow.message_id, MailMessageRow.direction)
        .where(MailMessageRow.ticket_id == ticket.id, MailMessageRow.outcome != "ignored")
        .order_by(MailMessageRow.at, MailMessageRow.message_id)).all()
    inbound = [mid for mid, direction in thread if direction == "in"]
    ids = [mid for mid, _ in thread if not inbound or mid != inbound[-1]]
    if inbound:
        ids.append(inbound[-1])  # the customer's latest: In-Reply-To
    headers = threading.reply_headers(ticket.number, ticket.subject, ids[-MAX_REFERENCES:],
                                      conf.domain)
    now = utcnow()
    session.add(MailOutboxRow(
        id=str(uuid.uuid4()), ticket_id=ticket.id, entry_id=entry_id,
        message_id=headers["Message-ID"], to_address=ticket.requester_email,
        subject=subject or headers["Subject"], in_reply_to=headers.get("In-Reply-To"),
        references=headers.get("References"), body=body, status="pending", attempts=0,
        next_attempt_at=now, created_at=now))
    session.add(MailMessageRow(message_id=headers["Message-ID"], direction="out",
                               ticket_id=ticket.id, entry_id=entry_id, outcome="queued",
                               sender=conf.own_address, at=now))
    return headers["Message-ID"]


def outgoing_message(row: MailOutboxRow, from_address: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = from_address
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = row.message_id
    if row.in_reply_to:
        msg["In-Reply-To"] = row.in_reply_to
    if row.references:
        msg["References"] = row.references
    body = row.body
    seven_bit = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    msg.set_content(body, charset="utf-8", cte="7bit" if seven_bit else "base64")
    return msg


class TemporaryFailure(Exception):
    """Sending may work later (connection, 4xx)."""


class PermanentFailure(Exception):
    """Sending will not work (the recipient or the message refused with 5xx)."""


def _claim_due(db, now: datetime) -> list[MailOutboxRow]:
    claimed: list[MailOutboxRow] = []
    with db.begin() as session:
        due = session.scalars(
            select(MailOutboxRow.id)
            .where(MailOutboxRow.status.in_(("pending", "sending")),
                   MailOutboxRow.next_attempt_at <= now)
            .order_by(MailOutboxRow.next_attempt_at).limit(OUTBOX_BATCH)).all()
        for row_id in due:
            # Compare and set, row by row: of two senders only one takes a row.
            taken = session.execute(
                update(MailOutboxRow)
                .where(MailOutboxRow.id == row_id,
                       MailOutboxRow.status.in_(("pending", "sending")),
                       MailOutboxRow.next_attempt_at <= now)
                .values(status="sending", next_attempt_at=now + settings().send_lease)).rowcount
            if taken:
                claimed.append(session.get(MailOutboxRow, row_id))
        session.flush()
        session.expunge_all()
    return claimed


def deliver_due(db, transport, now: datetime | None = None) -> int:
    """Send the due outbox rows through `transport` (`send(message, to_address)` raising
    TemporaryFailure / PermanentFailure); each outcome is stored before the next message goes,
    so a crash mid-batch sends at most the one message in flight again. Returns how many."""
    rows = _claim_due(db, now or utcnow())
    conf = settings()
    for row in rows:
        values: dict[str, Any]
        try:
            transport.send(outgoing_message(row, conf.from_address), row.to_address)
        except PermanentFailure as exc:
            values = {"status": "failed", "next_attempt_at": None,
                      "last_error": str(exc)[:2000]}
        except Exception as exc:  # noqa: BLE001 - recorded on the row, retried with back-off
            attempts = row.attempts + 1
            values = {"last_error": f"{type(exc).__name__}: {exc}"[:2000]}
            if attempts > len(SEND_BACKOFF):
                values.update(status="failed", next_attempt_at=None)
            else:
                values.update(status="pending", next_attempt_at=utcnow() + timedelta(
                    seconds=SEND_BACKOFF[attempts - 1]))
        else:
            values = {"status": "sent", "sent_at": utcnow(), "next_attempt_at": None,
                      "last_error": None}
        with db.begin() as session:
            session.execute(update(MailOutboxRow).where(MailOutboxRow.id == row.id)
                            .values(attempts=MailOutboxRow.attempts + 1, **values))
            if values["status"] in ("sent", "failed"):
                session.execute(update(MailMessageRow)
                                .where(MailMessageRow.message_id == row.message_id)
                                .values(outcome=values["status"]))
    return len(rows)


