"""Choosing an assignee: round-robin or least-loaded within a group, capacity and absence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

STRATEGIES = ("round_robin", "least_loaded")


@dataclass(frozen=True)
class Member:
    user_id: str
    active: bool = True
    out_of_office_until: datetime | None = None
    capacity: int | None = None  # open leads at most; None = unlimited
    load: int = 0  # open leads owned now


@dataclass
class Choice:
    user_id: str | None
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)


def why_not(member: Member, now: datetime) -> str | None:
    if not member.active:
        return "inactive"
    if member.out_of_office_until is not None and member.out_of_office_until > now:
        return f"out of office until {member.out_of_office_until.isoformat()}"
    if member.capacity is not None and member.load >= member.capacity:
        return f"at capacity ({member.load}/{member.capacity})"
    return None


def _rotation(members: list[Member], last_user_id: str | None) -> list[Member]:
    """Members in a fixed order, starting after the one chosen last time."""
    ordered = sorted(members, key=lambda m: m.user_id)
    ids = [m.user_id for m in ordered]
    if last_user_id in ids:
        start = ids.index(last_user_id) + 1
        return ordered[start:] + ordered[:start]
    if last_user_id is not None:
        # The last one left the group: continue with whoever sorts after them.
        start = next((i for i, uid in enumerate(ids) if uid > last_user_id), 0)
        return ordered[start:] + ordered[:start]
    return ordered


def choose(
    members: list[Member], strategy: str, last_user_id: str | None, now: datetime
) -> Choice:
    """The member who gets the next record, with the reasons others were skipped.

    round_robin: the next eligible member after the last one chosen; least_loaded: the eligible
    member with the fewest open records, ties broken in rotation order.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    skipped: dict[str, str] = {}
    eligible: list[Member] = []
    for member in _rotation(members, last_user_id):
        reason = why_not(member, now)
        if reason:
            skipped[member.user_id] = reason
        else:
            eligible.append(member)
    if not eligible:
        return Choice(None, "no eligible member" if members else "the group has no members",
                      skipped)
    if strategy == "round_robin":
        return Choice(eligible[0].user_id, "next in rotation", skipped)
    lowest = min(m.load for m in eligible)
    chosen = next(m for m in eligible if m.load == lowest)
    return Choice(chosen.user_id, f"least loaded ({lowest} open)", skipped)
