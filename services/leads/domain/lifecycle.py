"""A lead's life: its status, who holds it (the public pool 公海, claims, releases,
assignments), its conversion by sales and its merge into another lead.

Each transition checks that the lead may make it and then makes it on the lead, returning what
the use case needs to record (the previous status or owner). The `check_*` functions are the
checks alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.leads.contract import LEAD_STATUSES
from services.leads.domain.capture import absorb
from services.leads.domain.lead import LeadRecord
from services.leads.domain.visibility import (
    check_owner_in_scope,
    lead_visible,
    may_act_for_others,
    may_merge,
)
from shared.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed

_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("contacted", "qualified", "disqualified"),
    "contacted": ("qualified", "disqualified"),
    "qualified": ("contacted", "disqualified", "converted"),
    # Reopening a disqualified lead is allowed; it starts over or resumes contact.
    "disqualified": ("new", "contacted"),
    # Converted leads live on as contacts/deals; changing them here would fork the history.
    "converted": (),
}
# Leads a new scoring model no longer rescores.
CLOSED_STATUSES = ("converted",)


# -- status ------------------------------------------------------------------------------------


def check_status_change(current: str, target: str, reason: str | None) -> None:
    """Raise unless a lead in status `current` may move to `target`.

    ValidationFailed on "status" for an unknown target, on "reason" when disqualifying
    without a reason; PreconditionFailed when the current status does not allow the move
    (including moving to the same status, and any move out of "converted").
    """
    if target not in LEAD_STATUSES:
        raise ValidationFailed.for_fields(
            {"status": [f"{target!r} is not a lead status; allowed: {', '.join(LEAD_STATUSES)}"]}
        )
    if current not in _TRANSITIONS:
        raise PreconditionFailed(f"lead has an unknown status {current!r}")
    if current == target:
        raise PreconditionFailed(f"lead is already {current}")
    allowed = _TRANSITIONS[current]
    if target not in allowed:
        if not allowed:
            raise PreconditionFailed(f"lead is {current}; its status can no longer change")
        raise PreconditionFailed(
            f"cannot change status from {current} to {target}; allowed: {', '.join(allowed)}"
        )
    if target == "disqualified" and not (reason or "").strip():
        raise ValidationFailed.for_fields({"reason": ["a reason is required to disqualify a lead"]})


def change_status(lead: LeadRecord, target: str, reason: str | None, now: datetime) -> str:
    """Move `lead` to status `target` (see `check_status_change`); returns the previous one.
    The disqualification reason is kept only while the lead is disqualified."""
    check_status_change(lead.status, target, reason)
    previous = lead.status
    lead.status = target
    lead.disqualify_reason = reason if target == "disqualified" else None
    lead.updated_at = lead.last_activity_at = now
    return previous


def convert(lead: LeadRecord, conversion: Mapping[str, Any], converted_at: str,
            now: datetime) -> str | None:
    """Mark `lead` converted by sales into the customer, contact and opportunity of
    `conversion`, whatever its status (sales is where conversion is decided). Returns the
    previous status, or None when the lead was converted already (nothing changes)."""
    if lead.status == "converted":
        return None
    previous = lead.status
    lead.status = "converted"
    lead.conversion = {
        "customer_id": conversion.get("customer_id"),
        "contact_id": conversion.get("contact_id"),
        "opportunity_id": conversion.get("opportunity_id"),
        "converted_by": conversion.get("converted_by"),
        "converted_at": converted_at,
    }
    lead.updated_at = lead.last_activity_at = now
    return previous


# -- the public pool and owners ----------------------------------------------------------------


def check_claim(
    owner_id: str | None, status: str, user_id: str | None = None, reveal_owner: bool = False
) -> None:
    """Raise unless the lead can be claimed from the public pool (公海).

    A lead without an owner (None or "") is in the pool. Converted leads cannot be claimed;
    disqualified ones can (someone picking one from the pool is how it gets a second look).
    Pass `user_id` to get a clearer message when the caller already owns the lead, and
    `reveal_owner` when the caller may see who owns it (the owner is in their scope); otherwise
    the owner is "someone else" and not named.
    """
    if owner_id:
        if user_id is not None and owner_id == user_id:
            raise PreconditionFailed("you already own this lead")
        holder = f"user {owner_id}" if reveal_owner else "someone else"
        raise PreconditionFailed(
            f"lead is owned by {holder}; it must be released to the public pool first"
        )
    if status == "converted":
        raise PreconditionFailed("converted leads cannot be claimed")


def claim(lead: LeadRecord, user_id: str, scope: Mapping[str, Any], now: datetime) -> None:
    """`user_id` takes `lead` from the public pool; the caller claims only for someone of
    their scope (a rep: themselves). See `check_claim`."""
    check_owner_in_scope(user_id, scope, "you may claim leads only for yourself")
    check_claim(lead.owner_id, lead.status, user_id,
                reveal_owner=lead_visible(lead.owner_id, scope))
    lead.owner_id = user_id
    lead.claimed_at = lead.updated_at = now


def check_release(owner_id: str | None, user_id: str, may_act_for_others: bool) -> None:
    """Raise unless `user_id` may put the lead back into the public pool.

    PreconditionFailed if it is already there; Forbidden if the user is not the owner and is
    not allowed to act for others (e.g. a team manager).
    """
    if not owner_id:
        raise PreconditionFailed("lead is already in the public pool")
    if owner_id != user_id and not may_act_for_others:
        raise Forbidden("only the owner of this lead (or a manager) can release it")


def release(lead: LeadRecord, actor: str, scope: Mapping[str, Any], now: datetime) -> str:
    """`actor` puts `lead` back into the public pool (see `check_release`); returns the owner
    it had."""
    check_release(lead.owner_id, actor, may_act_for_others(scope))
    previous = lead.owner_id
    lead.owner_id = None
    lead.claimed_at = None
    lead.updated_at = now
    return previous  # type: ignore[return-value]  # check_release: it had one


@dataclass(frozen=True)
class OwnerChange:
    previous_owner_id: str | None


def assign(lead: LeadRecord, owner_id: str, scope: Mapping[str, Any],
           now: datetime) -> OwnerChange | None:
    """Give `lead` to `owner_id`, who must be within the caller's scope (every caller, rules
    acting for a manager included); None when the lead is theirs already (nothing changes)."""
    check_owner_in_scope(owner_id, scope, "leads can be assigned only to users within your scope")
    if lead.owner_id == owner_id:
        return None
    change = OwnerChange(lead.owner_id)
    lead.owner_id = owner_id
    lead.claimed_at = lead.updated_at = now
    return change


# -- merges ------------------------------------------------------------------------------------


def check_merge(target: LeadRecord, source: LeadRecord, scope: Mapping[str, Any]) -> None:
    """Forbidden unless the caller may edit both leads (see `visibility.may_merge`); the error
    names the argument (`id` for the target, `source_id`)."""
    for lead, field in ((target, "id"), (source, "source_id")):
        if not may_merge(lead.owner_id, scope):
            raise Forbidden(
                f"you may not merge lead {lead.id}: claim it from the public pool first",
                {"field": field},
            )


def already_merged(lead: LeadRecord, field: str, visible_into_id: str | None) -> Conflict:
    """The Conflict for merging `lead` again; the lead it went into is named only when the
    caller may see it (`visible_into_id`, else None)."""
    if visible_into_id is not None:
        return Conflict(f"lead {lead.id} was already merged into {visible_into_id}",
                        {"field": field, "existing_id": visible_into_id})
    return Conflict(f"lead {lead.id} was already merged into another lead",
                    {"field": field, "existing_id": None})


def merge(target: LeadRecord, source: LeadRecord, source_values: Mapping[str, Any],
          now: datetime) -> None:
    """Merge `source` (its `source_values`) into `target`, which survives with what it lacked
    (see `capture.absorb`); the source is retired, pointing at the target. The caller checked
    `check_merge` and that neither was merged before."""
    absorb(target, source_values, now)
    source.merged_into_id = target.id
    source.updated_at = now
