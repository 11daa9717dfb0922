"""What the agents' desk shows (console-desk): a ticket's SLA state from its clocks, and the
body of a draft article from a solved ticket's conversation. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

LIVE_STATES = ("running",)


def clock_warning(clock: Mapping[str, Any]) -> bool:
    """A running clock past a warning threshold and not breached."""
    return (clock.get("state") in LIVE_STATES and not clock.get("breached")
            and any(w.get("passed") for w in clock.get("warnings", ())))


def sla_summary(clocks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`state`: breached (a running or finished target missed its due), warning, ok (a target
    runs within its time), none (no running target and nothing missed); `next_due_at` the
    earliest due instant among the running targets not yet breached, `next_target` its
    target; `breached_targets` the targets that missed."""
    breached = sorted(name for name, clock in clocks.items() if clock.get("breached")
                      and clock.get("state") in ("running", "paused", "achieved"))
    upcoming: list[tuple[datetime, str]] = [
        (clock["due_at"], name) for name, clock in clocks.items()
        if clock.get("state") in LIVE_STATES and not clock.get("breached")
        and isinstance(clock.get("due_at"), datetime)]
    running = [c for c in clocks.values() if c.get("state") in LIVE_STATES]
    if breached:
        state = "breached"
    elif any(clock_warning(c) for c in running):
        state = "warning"
    elif running or upcoming:
        state = "ok"
    else:
        state = "none"
    due, target = min(upcoming) if upcoming else (None, None)
    return {"state": state, "next_target": target,
            "next_due_at": due.isoformat() if due else None, "breached_targets": breached}


def draft_body(ticket: Mapping[str, Any], entries: Iterable[Mapping[str, Any]]) -> str:
    """The public conversation of a ticket, oldest first: the question, then each reply with
    who wrote it (agent / customer). Internal notes stay out: they are not for readers."""
    parts = [f"{ticket['subject']}\n"]
    for entry in entries:
        body = (entry.get("body") or "").strip()
        if not body or not entry.get("public", True):
            continue
        if entry.get("kind") == "created":
            parts.append(f"[问题 / Question]\n{body}")
        elif entry.get("kind") == "reply":
            who = "客服 / Agent" if entry.get("author_kind") == "agent" else "客户 / Customer"
            parts.append(f"[{who}]\n{body}")
    return "\n\n".join(parts)
