"""What a rule (saved, or unsaved) would do for an event (a sample or a past one), without
doing it, shown as the caller may see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.rules.domain import conditions, records, timing
from services.rules.domain import rules as rules_domain
from services.rules.domain.authority import Authority
from services.rules.models import EventLog, RecordSnapshot
from services.rules.usecases.assignment import choose_assignee
from services.rules.usecases.authoring import check_manages, validated_rule
from services.rules.usecases.cached import directory, effective_authority
from services.rules.usecases.dumps import event_summary
from services.rules.usecases.local_actions import template_context
from services.rules.usecases.recipients import manager_chain, recipients, task_assignee
from services.rules.usecases.rule_admin import find_rule
from services.rules.usecases.runs import condition_names
from services.rules.usecases.support import Worker, iso, render
from services.rules.usecases.timers import exact_value
from shared.errors import NotFound, ValidationFailed


def dry_run(worker: Worker, rule_id: str | None, request: dict[str, Any], acting: Authority
            ) -> dict[str, Any]:
    """A manager dry-runs their own rules and unsaved ones, on events about records they may
    see; the actions are worked out with the rule's authority, as a run would."""
    with worker.db.read() as session:
        if request.get("definition"):
            definition = validated_rule(worker.db, {"name": "dry run", **request["definition"]},
                                        acting, session)["definition"]
            version = None
            rule_name = request["definition"].get("name", "dry run")
            stored = None if acting.is_organisation else acting.to_dict()
        elif rule_id:
            rule = find_rule(session, rule_id)
            check_manages(rule, acting)
            definition, version, rule_name = rule.definition, rule.version, rule.name
            stored = rule.authority
        else:
            raise ValidationFailed.for_fields({"definition": ["give a rule or a definition"]})
        viewer = effective_authority(session, acting.to_dict())
        if request.get("event_id"):
            logged = session.get(EventLog, request["event_id"])
            if logged is None or not _event_visible(session, viewer, logged.envelope):
                # the same answer for an event outside the caller's view as for none
                raise NotFound("no such event in the last days", {"field": "event_id"})
            envelope = dict(logged.envelope)
        else:
            envelope = _sample_envelope(request["sample"])
        return _dry_run(worker, session, definition, version, rule_name, envelope, stored,
                        viewer)


def _event_visible(session: Session, viewer: Authority, envelope: dict[str, Any]) -> bool:
    if viewer.is_organisation:
        return True
    data = envelope.get("data") or {}
    name = f"{envelope.get('producer')}.{envelope.get('event_type')}"
    record_type, record = records.primary_record(data)
    if record is None or name.startswith(("rules.", "gateway.")):
        return viewer.sees_event(name, data)
    stored = session.get(RecordSnapshot, records.record_key(record_type, str(record["id"])))
    # as the record stands now, or as the event had it when never seen in full
    return viewer.covers(record_type, dict(stored.data) if stored else record) and (
        viewer.covers(record_type, record) or len(record) <= 1)


def _sample_envelope(sample: dict[str, Any]) -> dict[str, Any]:
    name = sample.get("event_type") or ""
    if "." not in name or not isinstance(sample.get("data", {}), dict):
        raise ValidationFailed.for_fields({"sample.event_type": [
            "'<service>.<event_type>', e.g. leads.lead_created, with an object 'data'"]})
    producer, event_type = name.split(".", 1)
    return {"event_id": "dry-run", "event_type": event_type, "producer": producer,
            "correlation_id": "dry-run", "causation_depth": 0,
            "occurred_at": datetime.now().astimezone().isoformat(),
            "actor": sample.get("actor"), "data": sample.get("data") or {}}


def _dry_run(
    worker: Worker, session: Session, definition: dict[str, Any], version: int | None,
    rule_name: str, envelope: dict[str, Any], authority: dict[str, Any] | None = None,
    viewer: Authority | None = None,
) -> dict[str, Any]:
    engine = worker.engine
    name = f"{envelope['producer']}.{envelope['event_type']}"
    data = envelope.get("data") or {}
    record_type, record = records.primary_record(data)
    stored = session.get(RecordSnapshot, records.record_key(
        record_type, str(record["id"]))) if record else None
    if stored is not None and viewer is not None and not viewer.covers(
            record_type, stored.data):
        stored = None  # a sample naming a record the caller may not see learns nothing
    if record is not None and len(record) <= 1 and stored is not None:
        record = dict(stored.data)
    changes = records.changes(stored.data if stored else None, record) if record else {}
    trigger = definition["trigger"]
    kind = trigger["type"]
    result: dict[str, Any] = {"rule_version": version, "event": event_summary(envelope),
                              "trigger": {"type": kind}}
    if kind == "event":
        matches = rules_domain.event_matches(trigger["event"], name) and (
            rules_domain.field_change_matches(trigger, changes))
    elif kind in ("delay", "date"):
        matches = rules_domain.event_matches(trigger["events"], name)
    else:
        matches = False
    result["trigger"]["matches"] = matches
    now = engine.clock.now()
    if kind == "delay" and matches:
        result["trigger"]["would_fire_at"] = (
            now + timing.parse_duration(trigger["delay"])).isoformat()
        result["trigger"]["cancelled_by"] = trigger.get("unless") or []
    if kind == "date" and matches and record and trigger.get("at") == timing.EXACT:
        due = timing.exact_due(exact_value(trigger["field"], record, envelope.get("data")),
                               now=now,
                               offset_days=trigger.get("offset_days", 0),
                               offset_months=trigger.get("offset_months", 0))
        result["trigger"]["would_fire_at"] = iso(due)
    elif kind == "date" and matches and record:
        due = timing.relative_due(
            record.get(trigger["field"]), now=now, tz=engine.tz,
            offset_days=trigger.get("offset_days", 0),
            offset_months=trigger.get("offset_months", 0),
            at=timing.parse_time_of_day(trigger.get("at")),
            yearly=trigger.get("yearly", False))
        result["trigger"]["would_fire_at"] = iso(due)
    if kind == "schedule":
        result["trigger"]["next_at"] = timing.next_cron(trigger["cron"], now,
                                                        engine.tz).isoformat()
    names = condition_names(session, envelope, record_type, record, changes)
    try:
        matched = conditions.evaluate(definition.get("conditions"), names, now)
        result["conditions"] = {"expression": definition.get("conditions") or "",
                                "matched": matched}
    except conditions.ConditionFailed as exc:
        matched = False
        result["conditions"] = {"expression": definition.get("conditions"),
                                "matched": False, "error": str(exc)}
    context = {"record_type": record_type, "record": dict(record or {}),
               "event": event_summary(envelope), "changes": changes,
               "rule": {"id": None, "name": rule_name, "version": version},
               "authority": authority}
    acting = effective_authority(session, authority)
    if not acting.covers(record_type, record):
        result["outside_authority"] = True  # a run would not even start

    result["actions"] = [_describe_action(engine, session, a, context)
                         for a in definition["actions"]]
    result["would_act"] = (bool(matches and matched) if kind == "event" else bool(matches)
                           ) and not result.get("outside_authority")
    return result


def _describe_action(
    engine: Any, session: Session, action: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    record = context["record"]
    described: dict[str, Any] = {"type": action["type"]}
    try:
        values = template_context(session, engine.clock, context)
        acting = effective_authority(session, context.get("authority"))
        people = directory(session).users
        if action["type"] == "assign":
            chosen = choose_assignee(session, engine.clock, action, record, commit=False,
                                     authority=acting)
            described.update(chosen)
            record["owner_id"] = chosen["owner_id"]
        elif action["type"] == "create_task":
            described["assignee_id"] = task_assignee(
                session, action.get("assignee", "owner"), context)
            described["title"] = render(action["title"], values)
            described["due_in"] = action.get("due_in")
        elif action["type"] in ("notify", "escalate"):
            if action["type"] == "notify":
                found = recipients(session, action["to"], context)
            else:
                found = manager_chain(session, record.get("owner_id"), action.get("levels", 1))
            described["recipients"], left_out = acting.within(found, people)
            if left_out:
                described["left_out"] = left_out
            described["channels"] = action.get("channels") or ["in_app"]
            described["title"] = render(action["title"], values)
        elif action["type"] == "call":
            described["call"] = f"{action['service']}.{action['method']}"
            described["args"] = {k: render(v, values) if isinstance(v, str) else v
                                 for k, v in (action.get("args") or {}).items()}
    except Exception as exc:  # noqa: BLE001 - a dry run reports what would fail
        described["error"] = f"{type(exc).__name__}: {exc}"
    return described
