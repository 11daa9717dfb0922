"""Duplicate leads: what makes two leads the same, and what a capture does with a duplicate.

Emails and phones are compared as the shared kernel normalises them, so a lead and the
customer it becomes (in the sales service) have the same duplicate keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from services.leads.domain.visibility import lead_visible, may_merge
from shared.errors import Conflict
from shared.kernel.normalise import (
    company_key,
    company_similarity,
    email_for_matching,
    phone_for_matching,
)

COMPANY_THRESHOLD = 90.0
# The blocking key of fuzzy dedupe: the first characters of the company key. A capture is
# compared only with the stored leads that share it.
COMPANY_BLOCK_LENGTH = 2
# The answer to a duplicate the caller may not see: that one exists, nothing of it.
HIDDEN_DUPLICATE = "a duplicate of this lead exists outside your view"


@dataclass(frozen=True)
class LeadIdentity:
    lead_id: str
    email: str | None
    phone: str | None
    company: str | None


@dataclass(frozen=True)
class DuplicateMatch:
    lead_id: str
    reason: Literal["email", "phone", "company"]
    score: float
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def company_keys(company: str | None) -> tuple[str | None, str | None]:
    """The company key a lead stores and its blocking key (None for no or an empty name)."""
    key = company_key(company) if company else ""
    return key or None, key[:COMPANY_BLOCK_LENGTH] or None


def find_duplicates(
    candidate: LeadIdentity,
    existing: Iterable[LeadIdentity],
    company_threshold: float = COMPANY_THRESHOLD,
) -> list[DuplicateMatch]:
    """Leads in `existing` that look like `candidate`, at most one match per lead.

    Same normalised email or phone is an exact duplicate (score 100); a company name at least
    `company_threshold` similar is a possible one. Phones without a country code are read as
    Chinese. Result order: exact first, then by score, then by lead id for stable output.
    """
    email = email_for_matching(candidate.email) if candidate.email else ""
    phone = phone_for_matching(candidate.phone) if candidate.phone else ""
    has_company = bool(candidate.company and company_key(candidate.company))

    best: dict[str, DuplicateMatch] = {}
    for other in existing:
        if other.lead_id == candidate.lead_id:
            continue
        match: DuplicateMatch | None = None
        if email and other.email and email_for_matching(other.email) == email:
            match = DuplicateMatch(other.lead_id, "email", 100.0, True)
        elif phone and other.phone and phone_for_matching(other.phone) == phone:
            match = DuplicateMatch(other.lead_id, "phone", 100.0, True)
        elif has_company and other.company:
            score = company_similarity(candidate.company or "", other.company)
            if score >= company_threshold:
                match = DuplicateMatch(other.lead_id, "company", score, False)
        if match is None:
            continue
        previous = best.get(other.lead_id)
        if previous is None or (match.exact, match.score) > (previous.exact, previous.score):
            best[other.lead_id] = match
    return sorted(best.values(), key=lambda m: (not m.exact, -m.score, m.lead_id))


def resolve_duplicates(
    matches: Sequence[DuplicateMatch],
    owners: Mapping[str, str | None],
    scope: Mapping[str, Any],
    on_duplicate: str,
) -> str | None:
    """What a capture with `matches` (best first, as find_duplicates orders them) does: the id
    of the lead to merge into, None to create a new lead, or Conflict.

    `owners` maps each match's lead id to its owner. Only matches the caller may see are named
    (`existing_id`, `matches`); when none is visible, the Conflict says a duplicate exists and
    carries no id (existing_id None, matches []). `merge` goes to the best match the caller may
    merge into among the best kind of match (an exact one when there is one: a similar company
    name is never preferred to the same email or phone the caller cannot edit).
    """
    if not matches or on_duplicate == "create":
        return None
    if on_duplicate == "merge":
        best_kind = matches[0].exact
        for match in matches:
            if match.exact == best_kind and may_merge(owners[match.lead_id], scope):
                return match.lead_id
    visible = [match for match in matches if lead_visible(owners[match.lead_id], scope)]
    if not visible:
        raise Conflict(HIDDEN_DUPLICATE, {"existing_id": None, "matches": []})
    best = visible[0]
    detail = (
        f"a lead with the same {best.reason} exists"
        if best.exact
        else "a lead with a similar company name exists"
    )
    if on_duplicate == "merge":
        detail += (
            "; nothing was merged: you may merge only into a lead you may edit"
            " (claim a public-pool lead first)"
        )
    raise Conflict(detail, {"existing_id": best.lead_id,
                            "matches": [match.to_dict() for match in visible]})
