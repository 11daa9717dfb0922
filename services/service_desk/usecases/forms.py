"""Public web forms (issue 17, groups part): admins create them (the token is answered once,
and again only by a rotation); a company site's page reads the form (a fill-time stamp) and
posts it without an API key (`submit_form`, called by the gateway's public route).

A post is checked in this order: the form exists and is enabled (404), the rate limits of
the form and of the client address in this minute (429, `FormRateLimited` with
`retry_after`), the token (403), the Origin (403 unless one of the form's), the spam checks
(honeypot, fill time: answered `{"accepted": true}` like a success, nothing created), the
fields (422, the e-mail through shared.kernel.normalise), then a ticket with the requester,
channel web, the form's default group and type, which the routing rule of the rules service
routes like any other ticket. The counters are in this service's database, so every gateway
worker and service process share them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from services.service_desk.contract import FormRateLimited
from services.service_desk.domain import forms as domain
from services.service_desk.models import TicketFormHitRow, TicketFormRow, TicketGroupRow
from services.service_desk.usecases import tickets
from shared.envelope import utcnow
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.kernel.normalise import normalise_email

log = logging.getLogger(__name__)
HITS = TicketFormHitRow.__table__
SUBMISSION_FIELDS = ("name", "email", "subject", "body", "product", "category", "language")


def _require_admin(principal: Mapping[str, Any] | None) -> None:
    if principal is not None and principal.get("role") != "admin":
        raise Forbidden("web forms are managed by admins")


def form_dict(row: TicketFormRow, token: str | None = None) -> dict[str, Any]:
    result = {"id": row.id, "key": row.key, "name": row.name,
              "allowed_origins": list(row.allowed_origins or []),
              "default_group_id": row.default_group_id, "default_type": row.default_type,
              "enabled": row.enabled, "min_fill_seconds": row.min_fill_seconds,
              "rate_per_minute": row.rate_per_minute,
              "ip_rate_per_minute": row.ip_rate_per_minute,
              "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
    if token is not None:
        result["token"] = token
    return result


def _check_group(session: Session, group_id: str | None) -> None:
    if group_id is not None and session.get(TicketGroupRow, group_id) is None:
        raise ValidationFailed.for_fields({"default_group_id": ["no such ticket group"]})


def _get(session: Session, form_id: str) -> TicketFormRow:
    row = session.get(TicketFormRow, form_id)
    if row is None:
        raise NotFound("web form not found")
    return row


def create_form(svc, data: dict[str, Any], principal: Mapping[str, Any] | None
                ) -> dict[str, Any]:
    _require_admin(principal)
    now = utcnow()
    token = domain.new_token()
    with svc.db.begin() as session:
        _check_group(session, data["default_group_id"])
        row = TicketFormRow(id=str(uuid.uuid4()), key=uuid.uuid4().hex[:16],
                            token_hash=domain.token_hash(token),
                            signing_key=domain.new_signing_key(), created_at=now,
                            updated_at=now, **data)
        session.add(row)
        session.flush()
        return form_dict(row, token)


def update_form(svc, form_id: str, data: dict[str, Any],
                principal: Mapping[str, Any] | None) -> dict[str, Any]:
    _require_admin(principal)
    with svc.db.begin() as session:
        row = _get(session, form_id)
        if "default_group_id" in data:
            _check_group(session, data["default_group_id"])
        for name, value in data.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        session.flush()
        return form_dict(row)


def rotate_token(svc, form_id: str, principal: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new token (the old one stops working at once), answered this once."""
    _require_admin(principal)
    token = domain.new_token()
    with svc.db.begin() as session:
        row = _get(session, form_id)
        row.token_hash = domain.token_hash(token)
        row.updated_at = utcnow()
        session.flush()
        return form_dict(row, token)


def get_form(svc, form_id: str, principal: Mapping[str, Any] | None) -> dict[str, Any]:
    _require_admin(principal)
    with svc.db.read() as session:
        return form_dict(_get(session, form_id))


def list_forms(svc, principal: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    _require_admin(principal)
    with svc.db.read() as session:
        return [form_dict(row) for row in
                session.scalars(select(TicketFormRow).order_by(TicketFormRow.name))]


# -- the public side ----


def _public(session: Session, form_key: str) -> TicketFormRow:
    row = session.scalars(select(TicketFormRow).where(TicketFormRow.key == form_key)).first()
    if row is None or not row.enabled:
        raise NotFound("web form not found")
    return row


def public_form(svc, form_key: str) -> dict[str, Any]:
    with svc.db.read() as session:
        row = _public(session, form_key)
        return {"key": row.key, "name": row.name,
                "stamp": domain.issue_stamp(row.signing_key, row.key, utcnow().timestamp()),
                "honeypot_field": domain.HONEYPOT_FIELD,
                "min_fill_seconds": row.min_fill_seconds,
                "fields": list(SUBMISSION_FIELDS),
                "allowed_origins": list(row.allowed_origins or [])}


def _count(session: Session, bucket: str, window_start: int) -> int:
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    statement = insert(HITS).values(bucket=bucket, window_start=window_start, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[HITS.c.bucket, HITS.c.window_start],
        set_={"count": HITS.c.count + 1}).returning(HITS.c.count)
    count = session.execute(statement).scalar_one()
    if count == 1:  # a bucket's first post of a window: drop its windows of the past
        session.execute(delete(HITS).where(HITS.c.bucket == bucket,
                                           HITS.c.window_start < window_start))
    return count


def submit_form(svc, form_key: str, token: str | None, data: dict[str, Any],
                client_address: str, origin: str | None) -> dict[str, Any]:
    now = utcnow().timestamp()
    window_start, retry_after = domain.window(now)
    with svc.db.begin() as session:
        row = _public(session, form_key)
        form = form_dict(row)
        signing_key = row.signing_key
        token_hash = row.token_hash
        over_form = _count(session, f"form:{row.id}", window_start) > row.rate_per_minute
        over_ip = _count(session, f"ip:{row.id}:{client_address}"[:200],
                         window_start) > row.ip_rate_per_minute
    if over_form or over_ip:
        raise FormRateLimited(
            "too many posts to this form " + ("from this address" if over_ip else "now")
            + f"; retry in {retry_after} s", {"retry_after": retry_after})
    if not domain.token_matches(token, token_hash):
        raise Forbidden("the form's token is missing or wrong", {"field": "token"})
    if not domain.origin_allowed(origin, form["allowed_origins"]):
        raise Forbidden("this origin may not post the form", {"origin": origin})
    spam = domain.spam_reason(data.get("stamp"), data.get(domain.HONEYPOT_FIELD), signing_key,
                              form["key"], now, form["min_fill_seconds"])
    if spam:
        log.info("web form %s: post taken for a bot's (%s), nothing created", form["key"], spam)
        return {"accepted": True}
    email = normalise_email(data["email"], "email")
    ticket = tickets.create_ticket(svc, {
        "subject": data["subject"], "requester_email": email,
        "requester_name": data["name"], "description": data["body"], "priority": "normal",
        "type": form["default_type"], "category": data.get("category"),
        "tags": [f"form:{form['key']}"], "assignee_id": None,
        "group_id": form["default_group_id"], "channel": "web", "customer_id": None,
        "customer_tier": None, "product": data.get("product"),
        "language": data.get("language")}, {"all": True}, svc._ask_sales)
    log.info("web form %s: ticket %s created", form["key"], ticket["number"])
    return {"accepted": True}
