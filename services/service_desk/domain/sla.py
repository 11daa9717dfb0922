"""SLA policies and clocks. Pure Python.

A policy has conditions (priorities, customer tiers; empty = any) and targets. Policies are
ordered; the first whose conditions match the ticket applies (`select_policy`). A target is a
duration in business time (measured on the policy's calendar) or calendar time, with the
statuses that pause it.

Clocks are computed from the ticket's event log only (`clocks(events, policy, calendar, now)`),
so a changed policy or calendar gives the right answer for an open ticket on the next call.
An event is a dict with `at` (aware datetime or ISO string) and `kind`:

- `created`: `status` (default "new"), `priority`, `customer_tier`
- `status_changed`: `from`, `to`
- `priority_changed`: `from`, `to`; `tier_changed`: `from`, `to`
- `reply`: `public` (bool), `author` ("agent" | "customer")
- anything else (e.g. `policy_applied`) is ignored by the clocks.

What each target measures:
- first_reply: from creation to the first public agent reply.
- next_reply: from a public customer reply that follows an agent's public reply to the next public
  agent reply (the latest cycle is reported).
- periodic_update: from creation or the last public agent reply to the next one, while unsolved.
- resolution: from creation to `solved`; a reopen resumes it; `closed` ends it.
Every clock stops when the ticket is solved or closed (first/next reply then not achieved but
no longer running).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.service_desk.domain.calendar import BusinessCalendar
from shared.errors import ValidationFailed

TARGETS = ("first_reply", "next_reply", "periodic_update", "resolution")
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
DONE_STATUSES = ("solved", "closed")
DEFAULT_PAUSE_STATUSES: dict[str, tuple[str, ...]] = {
    "first_reply": (),
    "next_reply": ("pending", "on_hold"),
    "periodic_update": ("pending", "on_hold"),
    "resolution": ("pending", "on_hold"),
}
DEFAULT_WARN_AT = (0.75, 0.9)


@dataclass(frozen=True)
class Target:
    minutes: int
    business: bool = True
    pause_statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    id: str
    name: str
    targets: Mapping[str, Target]
    priorities: tuple[str, ...] = ()
    customer_tiers: tuple[str, ...] = ()
    warn_at: tuple[float, ...] = DEFAULT_WARN_AT
    calendar_id: str | None = None

    def matches(self, priority: str | None, customer_tier: str | None) -> bool:
        return (not self.priorities or priority in self.priorities) and (
            not self.customer_tiers or customer_tier in self.customer_tiers
        )


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    errors: dict[str, list[str]] = {}
    targets: dict[str, Target] = {}
    for name, spec in (data.get("targets") or {}).items():
        if name not in TARGETS:
            errors[f"targets.{name}"] = [f"Unknown target; one of: {', '.join(TARGETS)}."]
            continue
        if spec is None:
            continue
        minutes = spec.get("minutes")
        if not isinstance(minutes, int) or minutes <= 0:
            errors[f"targets.{name}.minutes"] = ["A positive whole number of minutes."]
            continue
        pauses = spec.get("pause_statuses")
        pauses = tuple(DEFAULT_PAUSE_STATUSES[name] if pauses is None else pauses)
        bad = [s for s in pauses if s not in STATUSES or s in DONE_STATUSES]
        if bad:
            errors[f"targets.{name}.pause_statuses"] = [f"Not a pausing status: {', '.join(bad)}."]
        targets[name] = Target(minutes, bool(spec.get("business", True)), pauses)
    warn_at = tuple(sorted(data.get("warn_at") or DEFAULT_WARN_AT))
    if any(not 0 < w < 1 for w in warn_at):
        errors["warn_at"] = ["Fractions between 0 and 1 (0.75 = 75 %)."]
    for key, allowed in (("priorities", PRIORITIES),):
        bad = [p for p in data.get(key) or () if p not in allowed]
        if bad:
            errors[key] = [f"Unknown: {', '.join(bad)}."]
    if errors:
        raise ValidationFailed.for_fields(errors)
    return Policy(
        id=str(data.get("id", "")),
        name=data.get("name", ""),
        targets=targets,
        priorities=tuple(data.get("priorities") or ()),
        customer_tiers=tuple(data.get("customer_tiers") or ()),
        warn_at=warn_at,
        calendar_id=data.get("calendar_id"),
    )


def select_policy(
    policies: Sequence[Policy], priority: str | None, customer_tier: str | None
) -> Policy | None:
    """The first policy (in order) whose conditions match."""
    for policy in policies:
        if policy.matches(priority, customer_tier):
            return policy
    return None


# -- the event log -------------------------------------------------------------------------


def _instant(value: datetime | str) -> datetime:
    instant = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if instant.tzinfo is None:
        raise ValidationFailed.for_fields({"events.at": ["Instants must carry a time zone."]})
    return instant.astimezone(UTC)


def normalise(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events sorted by time (stable), `at` as UTC datetimes; the first must be `created`."""
    out = [{**e, "at": _instant(e["at"])} for e in events]
    out.sort(key=lambda e: e["at"])
    if not out or out[0].get("kind") != "created":
        raise ValidationFailed.for_fields({"events": ["The log starts with a `created` event."]})
    return out


def ticket_state(
    events: Iterable[Mapping[str, Any]], until: datetime | None = None
) -> dict[str, Any]:
    """Status, priority and customer tier after the events up to `until`."""
    state: dict[str, Any] = {"status": "new", "priority": None, "customer_tier": None}
    for event in normalise(events):
        if until is not None and event["at"] > until:
            break
        kind = event["kind"]
        if kind == "created":
            state.update(
                status=event.get("status") or "new",
                priority=event.get("priority"),
                customer_tier=event.get("customer_tier"),
            )
        elif kind == "status_changed":
            state["status"] = event["to"]
        elif kind == "priority_changed":
            state["priority"] = event["to"]
        elif kind == "tier_changed":
            state["customer_tier"] = event["to"]
    return state


# -- clocks --------------------------------------------------------------------------------


@dataclass
class _Run:
    """One measured span of a target: a list of running segments, and how it ended."""

    segments: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    achieved_at: datetime | None = None
    stopped_at: datetime | None = None

    def open(self) -> bool:
        return bool(self.segments) and self.segments[-1][1] is None

    def start(self, at: datetime) -> None:
        if not self.open():
            self.segments.append((at, None))

    def pause(self, at: datetime) -> None:
        if self.open():
            self.segments[-1] = (self.segments[-1][0], at)


class _Measure:
    def __init__(self, target: Target, calendar: BusinessCalendar | None):
        if target.business and calendar is None:
            raise ValidationFailed.for_fields(
                {"calendar": ["A business-time target needs a calendar."]}
            )
        self.calendar = calendar if target.business else None

    def between(self, a: datetime, b: datetime) -> timedelta:
        if self.calendar is not None:
            return self.calendar.between(a, b)
        return max(b - a, timedelta(0))

    def add(self, a: datetime, d: timedelta) -> datetime:
        if self.calendar is not None:
            return self.calendar.add(a, d)
        return a + d


def _runs(name: str, target: Target, events: list[dict[str, Any]], now: datetime) -> _Run | None:
    """Replay the log for one target; None when the target never started."""
    status = "new"
    run: _Run | None = None
    agent_replied = False
    waiting_customer_reply = False

    def running_status(s: str) -> bool:
        return s not in target.pause_statuses

    for event in events:
        at = event["at"]
        if at > now:
            break
        kind = event["kind"]
        if kind == "created":
            status = event.get("status") or "new"
            if name in ("first_reply", "periodic_update", "resolution"):
                run = _Run()
                if running_status(status):
                    run.start(at)
        elif kind == "status_changed":
            old, status = status, event["to"]
            if run is None:
                continue
            if status in DONE_STATUSES:
                run.pause(at)
                if name == "resolution" and status == "solved" and run.achieved_at is None:
                    run.achieved_at = at
                elif run.achieved_at is None:
                    run.stopped_at = at
                continue
            if old in DONE_STATUSES:
                # reopened: the resolution clock resumes, the reply clocks stay as they ended.
                if name == "resolution" and old == "solved":
                    run.achieved_at = None
                    run.stopped_at = None
                elif name == "periodic_update":
                    run = _Run()
                else:
                    continue
            if run.achieved_at is not None or run.stopped_at is not None:
                continue
            if not running_status(status):
                run.pause(at)
            else:
                run.start(at)
        elif kind == "reply" and event.get("public", True):
            author = event.get("author")
            if author == "agent":
                if (
                    name == "first_reply"
                    and run is not None
                    and run.achieved_at is None
                    and not agent_replied
                ):
                    run.pause(at)
                    run.achieved_at = at
                elif name == "next_reply" and run is not None and waiting_customer_reply:
                    run.pause(at)
                    run.achieved_at = at
                    waiting_customer_reply = False
                elif name == "periodic_update" and status not in DONE_STATUSES:
                    run = _Run()
                    if running_status(status):
                        run.start(at)
                agent_replied = True
            elif (
                author == "customer"
                and name == "next_reply"
                and agent_replied
                and not waiting_customer_reply
            ):
                if status in DONE_STATUSES:
                    continue
                waiting_customer_reply = True
                run = _Run()
                if running_status(status):
                    run.start(at)
    return run


def clock(
    name: str,
    target: Target,
    events: list[dict[str, Any]],
    calendar: BusinessCalendar | None,
    now: datetime,
    warn_at: Sequence[float] = DEFAULT_WARN_AT,
) -> dict[str, Any]:
    measure = _Measure(target, calendar)
    goal = timedelta(minutes=target.minutes)
    run = _runs(name, target, events, now)
    result: dict[str, Any] = {
        "target": name,
        "minutes": target.minutes,
        "business": target.business,
        "state": "not_started",
        "due_at": None,
        "elapsed_seconds": 0,
        "remaining_seconds": int(goal.total_seconds()),
        "paused": False,
        "breached": False,
        "breached_at": None,
        "achieved_at": None,
        "stopped_at": None,
        "started_at": None,
        "warnings": [],
    }
    if run is None:
        return result
    elapsed_closed = timedelta(0)
    for begin, end in run.segments:
        if end is not None:
            elapsed_closed += measure.between(begin, end)
    running = run.open()
    elapsed = elapsed_closed
    due_at = None
    warnings: list[dict[str, Any]] = []
    if running:
        begin = run.segments[-1][0]
        elapsed += measure.between(begin, now)
        due_at = measure.add(begin, goal - elapsed_closed) if goal > elapsed_closed else None
        for fraction in warn_at:
            at_elapsed = goal * fraction
            if at_elapsed > elapsed_closed:
                warnings.append(
                    {"threshold": fraction, "at": measure.add(begin, at_elapsed - elapsed_closed)}
                )
            else:
                warnings.append({"threshold": fraction, "at": None})
    else:
        # A finished or paused run: when it would have been due, replayed from its segments.
        due_at = _due_from_segments(run, measure, goal)
        warnings = [{"threshold": f, "at": None} for f in warn_at]
    breached = elapsed > goal if not running else (due_at is None or due_at <= now)
    if breached and due_at is None:
        due_at = _due_from_segments(run, measure, goal)
    for warning in warnings:
        warning["passed"] = elapsed >= goal * warning["threshold"]
    result.update(
        state=(
            "achieved"
            if run.achieved_at
            else "stopped"
            if run.stopped_at
            else "running"
            if running
            else "paused"
        ),
        due_at=due_at,
        elapsed_seconds=int(elapsed.total_seconds()),
        remaining_seconds=int((goal - elapsed).total_seconds()),
        paused=not running and run.achieved_at is None and run.stopped_at is None,
        breached=breached,
        breached_at=due_at if breached else None,
        achieved_at=run.achieved_at,
        stopped_at=run.stopped_at,
        # The start of this measured span: one cycle of the target (a next-reply cycle, a
        # periodic update's interval), whose warnings are given once however often it pauses.
        started_at=run.segments[0][0] if run.segments else None,
        warnings=warnings,
    )
    return result


def _due_from_segments(run: _Run, measure: _Measure, goal: timedelta) -> datetime | None:
    """The instant the goal was (or would be) reached within the closed segments, else None."""
    used = timedelta(0)
    for begin, end in run.segments:
        if end is None:
            return measure.add(begin, goal - used)
        span = measure.between(begin, end)
        if used + span >= goal:
            return measure.add(begin, goal - used)
        used += span
    return None


def clocks(
    events: Iterable[Mapping[str, Any]],
    policy: Policy,
    calendar: BusinessCalendar | None,
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """Per target of the policy: its clock at `now`, from the ticket's event log."""
    log = normalise(events)
    now = _instant(now)
    return {
        name: clock(name, policy.targets[name], log, calendar, now, policy.warn_at)
        for name in TARGETS
        if name in policy.targets
    }


def ticket_clocks(
    events: Iterable[Mapping[str, Any]],
    policies: Sequence[Policy],
    calendars: Mapping[str | None, BusinessCalendar],
    now: datetime,
) -> dict[str, Any]:
    """The policy the ticket's current priority and tier select, and its clocks measured from the
    ticket's start (a priority change re-targets the whole history, as if it had been so)."""
    log = normalise(events)
    state = ticket_state(log, _instant(now))
    policy = select_policy(policies, state["priority"], state["customer_tier"])
    if policy is None:
        return {"policy_id": None, "policy_name": None, "clocks": {}}
    calendar = calendars.get(policy.calendar_id)
    return {
        "policy_id": policy.id,
        "policy_name": policy.name,
        "clocks": clocks(log, policy, calendar, now),
    }
