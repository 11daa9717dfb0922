"""SLA scheduling: a ticket's event log from its stored entries, the warnings and breaches due
at an instant, and the next instants that matter (what the rules service's timer waits for).
Pure Python.

A target's *cycle* is one measured span of it (`started_at` of its clock: the ticket's creation
for first reply and resolution, a customer's reply for next reply, the last agent reply for a
periodic update). Each threshold of a cycle is warned once: a pause and a resume, which move the
due instant, do not warn again; a new cycle or a changed target length does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Notice:
    target: str
    kind: str  # warning / breach
    threshold: float  # 1.0 for a breach
    cycle: str  # `<cycle start, UTC ISO>/<target minutes>`

    @property
    def threshold_key(self) -> str:
        return f"{self.threshold:g}"


def ticket_log(ticket: Mapping[str, Any], entries: Iterable[Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """The log the clocks read (domain/sla.py) from a ticket's entries (in `seq` order: `kind`,
    `public`, `author_kind`, `from`, `to`, `at`). The creation's priority and tier are the first
    priority or tier change's `from` (else the ticket's now)."""
    entries = list(entries)
    first_priority = next((e["from"] for e in entries if e["kind"] == "priority_changed"),
                          ticket.get("priority"))
    first_tier = next((e["from"] for e in entries if e["kind"] == "tier_changed"),
                      ticket.get("customer_tier"))
    log: list[dict[str, Any]] = []
    for entry in entries:
        kind, at = entry["kind"], entry["at"]
        if kind == "created":
            log.append({"at": at, "kind": "created", "status": entry.get("to") or "new",
                        "priority": first_priority,
                        "customer_tier": first_tier})
        elif kind in ("status_changed", "priority_changed", "tier_changed"):
            log.append({"at": at, "kind": kind, "from": entry.get("from"),
                        "to": entry.get("to")})
        elif kind == "reply":
            log.append({"at": at, "kind": "reply", "public": bool(entry.get("public")),
                        "author": entry.get("author_kind")})
    return log


def cycle_key(clock: Mapping[str, Any]) -> str:
    started = clock.get("started_at")
    start = started.astimezone(UTC).isoformat() if isinstance(started, datetime) else "-"
    return f"{start}/{clock['minutes']}"


def due_notices(clocks: Mapping[str, Mapping[str, Any]], now: datetime) -> list[Notice]:
    """The warnings and breaches due at `now` on running clocks (a paused, achieved or stopped
    clock has none), in target order, warnings before the breach."""
    found: list[Notice] = []
    for target, clock in clocks.items():
        if clock["state"] != "running":
            continue
        cycle = cycle_key(clock)
        for warning in clock["warnings"]:
            at = warning.get("at")
            if warning.get("passed") or (isinstance(at, datetime) and at <= now):
                found.append(Notice(target, "warning", warning["threshold"], cycle))
        due = clock.get("due_at")
        if clock.get("breached") or (isinstance(due, datetime) and due <= now):
            found.append(Notice(target, "breach", 1.0, cycle))
    return found


def schedule(clocks: Mapping[str, Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """Per target: its state, `due_at`, the warning instants still ahead (`warn_at`) and the
    breach instant if still ahead (`breach_at`); `next_check_at`: the earliest of them among
    running targets (None: nothing runs, no timer)."""
    targets: dict[str, dict[str, Any]] = {}
    ahead: list[datetime] = []
    for target, clock in clocks.items():
        running = clock["state"] == "running"
        warn_at = [w["at"] for w in clock["warnings"]
                   if running and isinstance(w.get("at"), datetime) and w["at"] > now]
        due = clock.get("due_at")
        breach_at = due if running and isinstance(due, datetime) and due > now else None
        targets[target] = {"state": clock["state"], "paused": bool(clock.get("paused")),
                           "due_at": due if running or clock.get("paused") else None,
                           "warn_at": warn_at, "breach_at": breach_at}
        ahead.extend(warn_at)
        if breach_at is not None:
            ahead.append(breach_at)
    return {"next_check_at": min(ahead) if ahead else None, "clocks": targets}
