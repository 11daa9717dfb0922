"""Business calendars, SLA policies and the SLA clocks of a ticket's event log.

The clocks are never stored: `compute_clocks` replays the log against the policies and calendars
as they are now, so an edited policy or calendar applies to every open ticket at its next
computation (and to the timers the tickets part schedules from it).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.service_desk.domain import sla as sla_domain
from services.service_desk.domain.calendar import BusinessCalendar, calendar_from_dict
from services.service_desk.models import BusinessCalendarRow, SlaNoticeRow, SlaPolicyRow
from services.service_desk.usecases import sla_sweep
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class SlaPorts:
    """The database (`begin()` / `read()`) and the outbox (`record(session, type, data)`)."""

    db: Any
    events: Any


# -- calendars -----------------------------------------------------------------------------


def calendar_to_dict(row: BusinessCalendarRow, today: date | None = None) -> dict[str, Any]:
    data = {
        "id": row.id,
        "name": row.name,
        "time_zone": row.time_zone,
        "holiday_source": row.holiday_source,
        "hours": {k: list(v) for k, v in sorted(row.hours.items())},
        "holidays": sorted(row.holidays),
        "workdays": sorted(row.workdays),
        "declared_years": sorted(row.declared_years),
        "extra_day_hours": row.extra_day_hours,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    data["coverage"] = _domain_calendar(data).coverage(today or utcnow().date())
    return data


def _domain_calendar(data: Mapping[str, Any]) -> BusinessCalendar:
    return calendar_from_dict(data)


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """ISO dates, and the domain's own checks (zone, overlapping intervals, a date both ways)."""
    values = {
        **values,
        "holidays": sorted({_iso(d) for d in values["holidays"]}),
        "workdays": sorted({_iso(d) for d in values["workdays"]}),
        "declared_years": sorted(set(values["declared_years"])),
        "hours": {k: v for k, v in values["hours"].items() if v},
    }
    if not values["hours"] and values["extra_day_hours"] is None:
        raise ValidationFailed.for_fields({"hours": ["at least one weekday with working hours"]})
    _domain_calendar(values)
    return values


def _iso(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def list_calendars(ports: SlaPorts) -> list[dict[str, Any]]:
    with ports.db.read() as session:
        rows = session.scalars(select(BusinessCalendarRow).order_by(BusinessCalendarRow.name))
        return [calendar_to_dict(row) for row in rows]


def get_calendar(ports: SlaPorts, calendar_id: str) -> dict[str, Any]:
    with ports.db.read() as session:
        return calendar_to_dict(find_calendar(session, calendar_id))


def create_calendar(ports: SlaPorts, values: dict[str, Any]) -> dict[str, Any]:
    values = _checked(values)
    with ports.db.begin() as session:
        _unique_name(session, BusinessCalendarRow, values["name"], None)
        now = utcnow()
        row = BusinessCalendarRow(id=str(uuid.uuid4()), version=1, created_at=now,
                                  updated_at=now, **values)
        session.add(row)
        session.flush()
        result = calendar_to_dict(row)
        ports.events.record(session, "business_calendar_changed",
                            {"change": "created", "calendar": result})
        return result


def update_calendar(ports: SlaPorts, calendar_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change the given fields (the others keep their values)."""
    with ports.db.begin() as session:
        row = find_calendar(session, calendar_id)
        current = calendar_to_dict(row)
        merged = {key: changes.get(key, current[key]) for key in CALENDAR_FIELDS}
        merged = _checked(merged)
        _unique_name(session, BusinessCalendarRow, merged["name"], row.id)
        for key, value in merged.items():
            setattr(row, key, value)
        row.version += 1
        row.updated_at = utcnow()
        session.flush()
        result = calendar_to_dict(row)
        ports.events.record(session, "business_calendar_changed",
                            {"change": "updated", "calendar": result})
        sla_sweep.request_sweep(session)
        return result


CALENDAR_FIELDS = ("name", "time_zone", "holiday_source", "hours", "holidays", "workdays",
                   "declared_years", "extra_day_hours")


def find_calendar(session: Session, calendar_id: Any, field: str = "calendar_id",
                  reference: bool = False) -> BusinessCalendarRow:
    row = session.get(BusinessCalendarRow, calendar_id) if isinstance(calendar_id, str) else None
    if row is None:
        if reference:
            raise ValidationFailed.for_fields({field: ["no such business calendar"]})
        raise NotFound(f"business calendar {calendar_id} not found", {"field": field})
    return row


# -- policies ------------------------------------------------------------------------------


def policy_to_dict(row: SlaPolicyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "position": row.position,
        "calendar_id": row.calendar_id,
        "priorities": list(row.priorities),
        "customer_tiers": list(row.customer_tiers),
        "targets": {k: dict(v) for k, v in row.targets.items()},
        "warn_at": list(row.warn_at),
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


POLICY_FIELDS = ("name", "calendar_id", "priorities", "customer_tiers", "targets", "warn_at")


def _policy_values(session: Session, values: dict[str, Any]) -> dict[str, Any]:
    targets = {}
    for name, spec in values["targets"].items():
        if spec is None:
            continue
        pauses = spec.get("pause_statuses")
        targets[name] = {
            "minutes": spec["minutes"],
            "business": spec.get("business", True),
            "pause_statuses": list(
                sla_domain.DEFAULT_PAUSE_STATUSES[name] if pauses is None else pauses
            ),
        }
    if not targets:
        raise ValidationFailed.for_fields({"targets": ["at least one target"]})
    if values["calendar_id"] is not None:
        find_calendar(session, values["calendar_id"], reference=True)
    elif any(t["business"] for t in targets.values()):
        raise ValidationFailed.for_fields(
            {"calendar_id": ["a business-time target needs a business calendar"]})
    clean = {**values, "targets": targets, "warn_at": sorted(set(values["warn_at"]))}
    sla_domain.policy_from_dict(clean)
    return clean


def list_policies(ports: SlaPorts) -> list[dict[str, Any]]:
    with ports.db.read() as session:
        return [policy_to_dict(row) for row in _ordered(session)]


def get_policy(ports: SlaPorts, policy_id: str) -> dict[str, Any]:
    with ports.db.read() as session:
        return policy_to_dict(find_policy(session, policy_id))


def create_policy(ports: SlaPorts, values: dict[str, Any]) -> dict[str, Any]:
    """A new policy, last in the order."""
    with ports.db.begin() as session:
        values = _policy_values(session, values)
        _unique_name(session, SlaPolicyRow, values["name"], None)
        last = session.scalar(select(func.max(SlaPolicyRow.position)))
        now = utcnow()
        row = SlaPolicyRow(id=str(uuid.uuid4()), position=(last or 0) + 1, version=1,
                           created_at=now, updated_at=now, **values)
        session.add(row)
        session.flush()
        result = policy_to_dict(row)
        ports.events.record(session, "sla_policy_changed",
                            {"change": "created", "policy": result, "order": _order(session)})
        sla_sweep.request_sweep(session)
        return result


def update_policy(ports: SlaPorts, policy_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    with ports.db.begin() as session:
        row = find_policy(session, policy_id)
        current = policy_to_dict(row)
        merged = {key: changes.get(key, current[key]) for key in POLICY_FIELDS}
        merged = _policy_values(session, merged)
        _unique_name(session, SlaPolicyRow, merged["name"], row.id)
        for key, value in merged.items():
            setattr(row, key, value)
        row.version += 1
        row.updated_at = utcnow()
        session.flush()
        result = policy_to_dict(row)
        ports.events.record(session, "sla_policy_changed",
                            {"change": "updated", "policy": result, "order": _order(session)})
        sla_sweep.request_sweep(session)
        return result


def reorder_policies(ports: SlaPorts, policy_ids: list[str]) -> list[dict[str, Any]]:
    """Put the policies in the given order: it must name every policy exactly once."""
    with ports.db.begin() as session:
        rows = {row.id: row for row in _ordered(session)}
        if len(policy_ids) != len(set(policy_ids)) or set(policy_ids) != set(rows):
            raise ValidationFailed.for_fields(
                {"policy_ids": ["name every SLA policy exactly once"]})
        for position, policy_id in enumerate(policy_ids, start=1):
            rows[policy_id].position = position
        session.flush()
        ports.events.record(session, "sla_policy_changed",
                            {"change": "reordered", "policy": None, "order": list(policy_ids)})
        sla_sweep.request_sweep(session)
        return [policy_to_dict(row) for row in _ordered(session)]


def find_policy(session: Session, policy_id: Any, field: str = "policy_id",
                reference: bool = False) -> SlaPolicyRow:
    row = session.get(SlaPolicyRow, policy_id) if isinstance(policy_id, str) else None
    if row is None:
        if reference:
            raise ValidationFailed.for_fields({field: ["no such SLA policy"]})
        raise NotFound(f"SLA policy {policy_id} not found", {"field": field})
    return row


def _ordered(session: Session) -> list[SlaPolicyRow]:
    return list(session.scalars(select(SlaPolicyRow).order_by(SlaPolicyRow.position,
                                                              SlaPolicyRow.created_at)))


def _order(session: Session) -> list[str]:
    return [row.id for row in _ordered(session)]


def _unique_name(session: Session, model: Any, name: str, own_id: str | None) -> None:
    existing = session.scalar(select(model).where(model.name == name))
    if existing is not None and existing.id != own_id:
        raise Conflict(f"the name {name!r} is taken", {"field": "name", "existing_id": existing.id})


# -- clocks --------------------------------------------------------------------------------


def compute_clocks(ports: SlaPorts, events: list[dict[str, Any]], policy_id: str | None,
                   now: datetime | None) -> dict[str, Any]:
    """The clocks of a ticket's event log under the given policy, or under the first policy that
    matches the ticket's current priority and customer tier."""
    now = now or utcnow()
    with ports.db.read() as session:
        if policy_id is not None:
            row = find_policy(session, policy_id, reference=True)
            policies = [sla_domain.policy_from_dict(policy_to_dict(row))]
        else:
            policies = [sla_domain.policy_from_dict(policy_to_dict(r)) for r in _ordered(session)]
        state = sla_domain.ticket_state(events, now)
        policy = (policies[0] if policy_id is not None else
                  sla_domain.select_policy(policies, state["priority"], state["customer_tier"]))
        if policy is None:
            return {"policy_id": None, "policy_name": None, "ticket": state, "clocks": {}}
        calendar = None
        if policy.calendar_id is not None:
            row = find_calendar(session, policy.calendar_id)
            calendar = _domain_calendar(calendar_to_dict(row))
    result = sla_domain.clocks(events, policy, calendar, now)
    return {
        "policy_id": policy.id,
        "policy_name": policy.name,
        "ticket": state,
        "computed_at": now.astimezone(UTC).isoformat(),
        "clocks": {name: _wire(clock) for name, clock in result.items()},
    }


def preview(ports: SlaPorts, priority: str | None, customer_tier: str | None,
            start: datetime) -> dict[str, Any]:
    """The policy a new ticket with this priority and tier gets, and its due instants."""
    events = [{"at": start, "kind": "created", "priority": priority,
               "customer_tier": customer_tier, "status": "new"}]
    return compute_clocks(ports, events, None, start)


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


# -- warnings and breaches -----------------------------------------------------------------


def check_sla(ports: SlaPorts, ticket_id: str, events: list[dict[str, Any]],
              policy_id: str | None, now: datetime | None) -> dict[str, Any]:
    """Publish `ticket_sla_warning` for every threshold a running target has passed and
    `ticket_sla_breached` for every running target past due, each once per ticket, target and
    due instant (a timer that fires twice publishes nothing new); answer what was published
    and `next_check_at`, the next instant a warning or breach falls due (None: nothing runs)."""
    computed = compute_clocks(ports, events, policy_id, now)
    published: list[dict[str, Any]] = []
    upcoming: list[str] = []
    with ports.db.begin() as session:
        for target, clock in computed["clocks"].items():
            if clock["state"] != "running" or clock["due_at"] is None:
                continue
            notices = [("warning", w["threshold"], w) for w in clock["warnings"]]
            notices.append(("breach", 1.0, None))
            for kind, threshold, warning in notices:
                passed = clock["breached"] if kind == "breach" else warning["passed"]
                if not passed:
                    at = clock["due_at"] if kind == "breach" else warning["at"]
                    if at:
                        upcoming.append(at)
                    continue
                key = dict(ticket_id=ticket_id, target=target, kind=kind,
                           threshold=f"{threshold:g}", due_at=clock["due_at"])
                if session.get(SlaNoticeRow, key) is not None:
                    continue
                session.add(SlaNoticeRow(**key, published_at=utcnow()))
                if kind == "warning":
                    event_type = "ticket_sla_warning"
                    data = {"ticket_id": ticket_id, "policy_id": computed["policy_id"],
                            "target": target, "threshold": threshold,
                            "due_at": clock["due_at"],
                            "remaining_seconds": clock["remaining_seconds"]}
                else:
                    event_type = "ticket_sla_breached"
                    data = {"ticket_id": ticket_id, "policy_id": computed["policy_id"],
                            "target": target, "due_at": clock["due_at"],
                            "breached_at": clock["breached_at"]}
                ports.events.record(session, event_type, data)
                published.append({"event_type": event_type, **data})
    return {
        "ticket_id": ticket_id,
        "policy_id": computed["policy_id"],
        "published": published,
        "next_check_at": min(upcoming, key=datetime.fromisoformat) if upcoming else None,
        "clocks": computed["clocks"],
    }
