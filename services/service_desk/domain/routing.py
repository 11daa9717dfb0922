"""Routing tickets (issue 17, groups part): which group a ticket goes to (ordered routing
rules, first match, else the default group) and which member of the group gets it
(round-robin, least-loaded, skills). Pure Python: the use cases load the rows and store the
choice.

A routing rule's `conditions` maps a ticket field to the values it may have: `types`,
`categories`, `products`, `customer_tiers`, `languages`. A condition left out (or empty)
matches anything; a ticket without a value for a condition that lists values does not match
it. Values compare case-insensitively (`zh` = `ZH`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("round_robin", "least_loaded")
# condition name -> the ticket's field
CONDITION_FIELDS: dict[str, str] = {
    "types": "type",
    "categories": "category",
    "products": "product",
    "customer_tiers": "customer_tier",
    "languages": "language",
}
SKILL_KINDS = ("products", "languages")
OPEN_STATUSES = ("new", "open", "pending", "on_hold")


@dataclass(frozen=True)
class RoutingRule:
    id: str
    group_id: str
    conditions: Mapping[str, Sequence[str]]
    enabled: bool = True


def _norm(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def rule_matches(rule: RoutingRule, ticket: Mapping[str, Any]) -> bool:
    if not rule.enabled:
        return False
    for name, ticket_field in CONDITION_FIELDS.items():
        wanted = {_norm(v) for v in rule.conditions.get(name) or ()} - {None}
        if wanted and _norm(ticket.get(ticket_field)) not in wanted:
            return False
    return True


@dataclass(frozen=True)
class GroupChoice:
    group_id: str | None
    reason: str
    rule_id: str | None = None


def choose_group(rules: Iterable[RoutingRule], ticket: Mapping[str, Any],
                 default_group_id: str | None) -> GroupChoice:
    """The first enabled rule (in the given order) that matches, else the default group."""
    for rule in rules:
        if rule_matches(rule, ticket):
            return GroupChoice(rule.group_id, f"routing rule {rule.id}", rule.id)
    if default_group_id:
        return GroupChoice(default_group_id, "the default group")
    return GroupChoice(None, "no routing rule matched and there is no default group")


@dataclass(frozen=True)
class Candidate:
    user_id: str
    available: bool = True
    capacity: int | None = None  # open tickets at most; None: unlimited
    load: int = 0  # open tickets assigned now
    skills: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class MemberChoice:
    user_id: str | None
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)


def why_not(candidate: Candidate) -> str | None:
    if not candidate.available:
        return "unavailable"
    if candidate.capacity is not None and candidate.load >= candidate.capacity:
        return f"at capacity ({candidate.load}/{candidate.capacity})"
    return None


def has_skills(candidate: Candidate, ticket: Mapping[str, Any]) -> bool:
    """The member knows the ticket's product and language (those the ticket has)."""
    for kind, ticket_field in (("products", "product"), ("languages", "language")):
        needed = _norm(ticket.get(ticket_field))
        if needed is None:
            continue
        known = {_norm(v) for v in candidate.skills.get(kind) or ()}
        if needed not in known:
            return False
    return True


def rotation(candidates: Sequence[Candidate], last_user_id: str | None) -> list[Candidate]:
    """Members sorted by id, starting after the one chosen last (or after where they sorted,
    when they left the group)."""
    ordered = sorted(candidates, key=lambda c: c.user_id)
    if last_user_id is None:
        return ordered
    start = next((i for i, c in enumerate(ordered) if c.user_id > last_user_id), 0)
    return ordered[start:] + ordered[:start]


def choose_member(candidates: Sequence[Candidate], strategy: str, last_user_id: str | None,
                  ticket: Mapping[str, Any], skills_matching: bool) -> MemberChoice:
    """The member who gets the ticket, with why the others were passed over.

    Unavailable and at-capacity members are skipped. With `skills_matching`, the members with
    the ticket's product and language skills are preferred; when none of them is eligible,
    any eligible member gets it (a ticket is never left unassigned for want of a skill).
    round_robin: the next eligible member after the last one chosen; least_loaded: the one
    with the fewest open tickets, ties in rotation order."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    skipped: dict[str, str] = {}
    eligible: list[Candidate] = []
    for candidate in rotation(candidates, last_user_id):
        reason = why_not(candidate)
        if reason:
            skipped[candidate.user_id] = reason
        else:
            eligible.append(candidate)
    if not eligible:
        return MemberChoice(None, "no eligible member" if candidates
                            else "the group has no members", skipped)
    note = ""
    if skills_matching:
        skilled = [c for c in eligible if has_skills(c, ticket)]
        if skilled:
            for c in eligible:
                if c not in skilled:
                    skipped[c.user_id] = "lacks the ticket's skills"
            eligible, note = skilled, ", skills matched"
        else:
            note = ", nobody with the skills: any member"
    if strategy == "round_robin":
        return MemberChoice(eligible[0].user_id, f"next in rotation{note}", skipped)
    lowest = min(c.load for c in eligible)
    chosen = next(c for c in eligible if c.load == lowest)
    return MemberChoice(chosen.user_id, f"least loaded ({lowest} open){note}", skipped)
