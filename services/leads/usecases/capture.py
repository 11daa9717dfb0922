"""Capturing a lead: normalised, checked for duplicates, merged or created, scored."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from services.leads.domain.capture import absorb, new_lead, normalise_contacts
from services.leads.domain.duplicates import (
    DuplicateMatch,
    LeadIdentity,
    company_keys,
    find_duplicates,
    resolve_duplicates,
)
from services.leads.models import Lead, inbox
from services.leads.usecases.common import Worker, lead_to_dict, record_history
from services.leads.usecases.scoring import record_qualification, rescore
from shared import config
from shared.db import insert_object
from shared.envelope import utcnow
from shared.inbox import record_command, recorded_command

FUZZY_CANDIDATES = 500
# Built once (capture runs it every time): leads with the same email or phone, and the newest
# ones whose company key starts alike, for the fuzzy comparison. A NULL parameter matches none.
# On the table, not the entity: run on the connection, it skips the ORM's statement handling.
_leads = Lead.__table__.c
DUPLICATE_CANDIDATES = (
    select(_leads.id, _leads.email, _leads.phone, _leads.company, _leads.owner_id)
    .where(
        or_(
            _leads.email == bindparam("email"),
            _leads.phone == bindparam("phone"),
            _leads.company_block == bindparam("block"),
        ),
        _leads.merged_into_id.is_(None),
    )
    .order_by(_leads.created_at.desc())
    .limit(FUZZY_CANDIDATES)
)


def create_lead(
    worker: Worker,
    fields: dict[str, Any],
    data: dict[str, Any],
    on_duplicate: str,
    owner_id: str | None,
    scope: dict[str, Any],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Capture the lead of `fields` (loaded from the caller's `data`, which a merge keeps in
    the history as it came): `{"outcome": "created" | "merged", "lead": ...}`, or Conflict for
    a duplicate that is not merged. A retry with the same `idempotency_key` gets the first
    answer."""
    normalise_contacts(fields, config.default_region())
    with worker.db.begin() as session:
        if idempotency_key:  # a retry after a lost reply gets the original answer
            done = recorded_command(session, inbox, idempotency_key, "create_lead")
            if done:
                outcome, _, lead_id = done.partition(":")
                return {"outcome": outcome, "lead": lead_to_dict(session.get(Lead, lead_id))}
        identity = LeadIdentity("", fields.get("email"), fields.get("phone"),
                                fields.get("company"))
        matches, owners = _duplicates(session, identity)
        # Only what the caller's scope shows is named; merging needs edit rights.
        merge_into = resolve_duplicates(matches, owners, scope, on_duplicate)
        if merge_into is not None:
            lead = session.get(Lead, merge_into, with_for_update=True)
            absorb(lead, fields, utcnow())
            record_history(worker, session, lead, "merged", {"incoming": data})
            rescore(worker, session, lead, "merged")
            worker.events.record(
                session, "lead_merged", {"lead": lead_to_dict(lead), "source_id": None}
            )
            if idempotency_key:
                record_command(session, inbox, idempotency_key, "create_lead",
                               f"merged:{lead.id}")
            return {"outcome": "merged", "lead": lead_to_dict(lead)}

        lead = Lead(**new_lead(str(uuid.uuid4()), fields, owner_id, utcnow()))
        # Scored first, so the row is inserted once with its score; inserted without the
        # ORM's unit of work (it is new: nothing to track), as history rows are.
        rescore(worker, session, lead, None)
        insert_object(session, lead)
        record_history(worker, session, lead, "created", {"source": lead.source})
        snapshot = lead_to_dict(lead)
        worker.events.record(
            session,
            "lead_created",
            {"lead": snapshot, "duplicate_of": [m.lead_id for m in matches]},
        )
        record_qualification(worker, session, lead, None)
        if idempotency_key:
            record_command(session, inbox, idempotency_key, "create_lead",
                           f"created:{lead.id}")
        return {"outcome": "created", "lead": snapshot}


def _duplicates(
    session: Session, identity: LeadIdentity
) -> tuple[list[DuplicateMatch], dict[str, str | None]]:
    """The matches, best first, and the owner of each candidate (for visibility)."""
    _, block = company_keys(identity.company)
    rows = session.connection().execute(
        DUPLICATE_CANDIDATES,
        {"email": identity.email, "phone": identity.phone, "block": block},
    ).all()
    existing = [LeadIdentity(*row[:4]) for row in rows]
    owners = {row[0]: row[4] for row in rows}
    return find_duplicates(identity, existing), owners
