"""Ticket statuses, priorities and transitions. Pure Python.

The transitions are enforced here; every accepted change yields an event-log entry in the format
the SLA clocks read (see domain/sla.py): `status_changed` / `priority_changed` with `from`/`to`,
`reply` with `public` and `author` ("agent" | "customer").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.errors import PreconditionFailed, ValidationFailed

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "web", "api", "event")

# closed is terminal; solved may only reopen (to open) or close.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "on_hold", "solved", "closed"}),
    "open": frozenset({"pending", "on_hold", "solved", "closed"}),
    "pending": frozenset({"open", "on_hold", "solved", "closed"}),
    "on_hold": frozenset({"open", "pending", "solved", "closed"}),
    "solved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}

# A customer's reply reopens these statuses.
REOPENED_BY_CUSTOMER = frozenset({"pending", "solved"})


def check_transition(current: str, target: str) -> None:
    if target not in STATUSES:
        raise ValidationFailed.for_fields({"status": [f"must be one of {', '.join(STATUSES)}"]})
    if target == current:
        return
    if target not in TRANSITIONS[current]:
        raise PreconditionFailed(
            f"a ticket cannot go from {current} to {target}",
            {"from": current, "to": target},
        )


def check_priority(priority: str) -> None:
    if priority not in PRIORITIES:
        raise ValidationFailed.for_fields({"priority": [f"must be one of {', '.join(PRIORITIES)}"]})


def status_after_reply(current: str, *, author: str, public: bool) -> str:
    """The status a reply leaves the ticket in.

    A customer's reply reopens a pending or solved ticket (and opens a new one is left as is);
    a closed ticket takes no replies. Agents' replies and internal notes change nothing here:
    the agent sets the status explicitly.
    """
    if current == "closed":
        raise PreconditionFailed("a closed ticket takes no replies", {"status": current})
    if author == "customer" and public and current in REOPENED_BY_CUSTOMER:
        return "open"
    return current


def status_event(at: datetime, old: str, new: str) -> dict[str, Any]:
    return {"at": at, "kind": "status_changed", "from": old, "to": new}


def priority_event(at: datetime, old: str, new: str) -> dict[str, Any]:
    return {"at": at, "kind": "priority_changed", "from": old, "to": new}


def reply_event(at: datetime, *, author: str, public: bool) -> dict[str, Any]:
    if author not in ("agent", "customer"):
        raise ValidationFailed.for_fields({"author": ["must be agent or customer"]})
    return {"at": at, "kind": "reply", "public": public, "author": author}


def ticket_tag(number: int) -> str:
    return f"[#T-{number:06d}]"
