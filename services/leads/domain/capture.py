"""Capturing a lead: its contact details normalised, its first state, and what a duplicate
capture (or a merged lead) adds to a stored lead."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.leads.domain.duplicates import company_keys
from services.leads.domain.lead import LeadRecord
from shared.errors import ValidationFailed
from shared.kernel.normalise import normalise_email, normalise_phone

# What a duplicate may fill in when the stored lead lacks it; it never overwrites.
FILLABLE_FIELDS = ("company", "title", "email", "phone", "region", "industry", "campaign")


def normalise_contacts(fields: dict[str, Any], default_region: str) -> None:
    """Normalise `fields`' email and phone in place (E.164, phones without a country code read
    as numbers of `default_region`), or raise one ValidationFailed naming both when both are
    invalid."""
    problems: dict[str, list[str]] = {}
    email, phone = fields.get("email"), fields.get("phone")
    if email:
        try:
            fields["email"] = normalise_email(email)
        except ValidationFailed as err:
            problems.update(err.errors)
    if phone:
        try:
            # Positional, as duplicate detection passes it: the kernel remembers the result.
            fields["phone"] = normalise_phone(phone, default_region)
        except ValidationFailed as err:
            problems.update(err.errors)
    if problems:
        raise ValidationFailed.for_fields(problems)


def new_lead(lead_id: str, fields: dict[str, Any], owner_id: str | None,
             now: datetime) -> dict[str, Any]:
    """The stored values of a captured lead: new, unscored, in the public pool unless it was
    captured for an owner (who then holds it as if claimed now)."""
    key, block = company_keys(fields.get("company"))
    return {
        "id": lead_id,
        **fields,
        "company_key": key,
        "company_block": block,
        "status": "new",
        "score": 0,
        "score_breakdown": {},
        "owner_id": owner_id,
        "claimed_at": now if owner_id else None,
        "created_at": now,
        "updated_at": now,
    }


def absorb(lead: LeadRecord, incoming: Mapping[str, Any], now: datetime) -> None:
    """Fill what `lead` lacks from a duplicate's `incoming` fields; never overwrite what is
    stored. Product interests are united; stored attributes win over incoming ones."""
    for name in FILLABLE_FIELDS:
        if not getattr(lead, name) and incoming.get(name):
            setattr(lead, name, incoming[name])
    lead.product_interest = sorted(
        set(lead.product_interest or []) | set(incoming.get("product_interest") or [])
    )
    lead.attributes = {**(incoming.get("attributes") or {}), **(lead.attributes or {})}
    lead.updated_at = now
