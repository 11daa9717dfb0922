"""Rules and their runs as their authors see them: create, edit (a new version each time),
enable, read, list; the runs' audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.rules.domain import revisions
from services.rules.domain.authority import Authority
from services.rules.models import Rule, RuleRun, RuleVersion
from services.rules.usecases.authoring import check_manages, validated_rule
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.dumps import rule_to_dict, run_to_dict
from services.rules.usecases.shipped import shipped_update, shipped_updates_waiting
from services.rules.usecases.support import Worker, iso, new_id
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.paging import page_after, page_of


def find_rule(session: Session, rule_id: str, lock: bool = False) -> Rule:
    rule = session.get(Rule, rule_id, with_for_update=lock) if isinstance(
        rule_id, str) else None
    if rule is None:
        raise NotFound(f"rule {rule_id} not found", {"field": "rule_id"})
    return rule


def _add_version(worker: Worker, session: Session, rule: Rule) -> None:
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, name=rule.name,
                            definition=rule.definition, created_at=rule.updated_at,
                            created_by=worker.actor))


def create_rule(worker: Worker, data: dict, acting: Authority) -> dict[str, Any]:
    fields_ = validated_rule(worker.db, data, acting)
    if fields_.get("key") and not acting.is_organisation:
        raise Forbidden("a rule key marks an organisation rule: admins only",
                        {"field": "key"})
    engine = worker.engine
    now = engine.clock.now()
    with worker.db.begin() as session:
        if fields_.get("key") and session.scalar(
            select(Rule.id).where(Rule.key == fields_["key"])
        ):
            raise Conflict(f"a rule with key {fields_['key']!r} exists", {"field": "key"})
        rule = Rule(
            id=new_id(), key=fields_.get("key"), name=fields_["name"],
            description=fields_.get("description"), enabled=fields_["enabled"], version=1,
            trigger_type=fields_["definition"]["trigger"]["type"],
            definition=fields_["definition"], created_at=now, updated_at=now,
            updated_by=worker.actor,
            authority=None if acting.is_organisation else acting.to_dict(),
        )
        session.add(rule)
        _add_version(worker, session, rule)
        session.flush()
        engine.timers.schedule_rule(session, rule)
        forget_cached_rules()
        return rule_to_dict(rule)


def update_rule(worker: Worker, rule_id: str, data: dict, acting: Authority
                ) -> dict[str, Any]:
    """Replace the rule's definition: a new version (runs record the version they used).
    A manager saving their rule gives it their scope of now; an admin keeps its authority."""
    with worker.db.read() as session:
        check_manages(find_rule(session, rule_id), acting)
    fields_ = validated_rule(worker.db, data, acting)
    engine = worker.engine
    with worker.db.begin() as session:
        rule = find_rule(session, rule_id, lock=True)
        check_manages(rule, acting)
        if not acting.is_organisation:
            rule.authority = acting.to_dict()
        revisions.revise(rule, fields_, engine.clock.now(), worker.actor)
        _add_version(worker, session, rule)
        engine.timers.schedule_rule(session, rule)
        forget_cached_rules()
        return rule_to_dict(rule)


def set_rule_enabled(worker: Worker, rule_id: str, enabled: bool, acting: Authority
                     ) -> dict[str, Any]:
    if not isinstance(enabled, bool):
        raise ValidationFailed.for_fields({"enabled": ["Not a valid boolean."]})
    with worker.db.begin() as session:
        rule = find_rule(session, rule_id, lock=True)
        check_manages(rule, acting)
        engine = worker.engine
        if revisions.set_enabled(rule, enabled, engine.clock.now(), worker.actor):
            engine.timers.schedule_rule(session, rule)
        forget_cached_rules()
        return rule_to_dict(rule)


def get_rule(worker: Worker, rule_id: str, acting: Authority) -> dict[str, Any]:
    with worker.db.read() as session:
        rule = find_rule(session, rule_id)
        if not Authority.of(rule.authority).visible_to(acting):
            raise NotFound(f"rule {rule_id} not found", {"field": "rule_id"})
        versions = session.scalars(
            select(RuleVersion).where(RuleVersion.rule_id == rule.id)
            .order_by(RuleVersion.version.desc())
        ).all()
        result = {**rule_to_dict(rule), **shipped_update(session, rule, acting)}
        result["versions"] = [
            {"version": v.version, "name": v.name, **v.definition,
             "created_at": iso(v.created_at), "created_by": v.created_by}
            for v in versions
        ]
        return result


def list_rules(worker: Worker, filters: dict[str, Any], acting: Authority) -> dict[str, Any]:
    """The organisation's rules and, for a manager, their own (not other managers')."""
    query = select(Rule).order_by(Rule.created_at, Rule.id)
    if "enabled" in filters:
        query = query.where(Rule.enabled.is_(filters["enabled"]))
    if "trigger_type" in filters:
        query = query.where(Rule.trigger_type == filters["trigger_type"])
    with worker.db.read() as session:
        waiting = shipped_updates_waiting(session, acting)
        items = []
        for rule in session.scalars(query).all():
            if not Authority.of(rule.authority).visible_to(acting):
                continue
            item = rule_to_dict(rule)
            if waiting is not None and rule.key:
                item["shipped_update_available"] = rule.key in waiting
            items.append(item)
        return {"items": items}


def _managed_rule_ids(session: Session, acting: Authority) -> list[str] | None:
    """The rules whose runs the caller may read (None: all): a manager's own."""
    if acting.is_organisation:
        return None
    return [rule.id for rule in session.scalars(select(Rule).where(
        Rule.authority.is_not(None))) if Authority.of(rule.authority).managed_by(acting)]


def list_runs(worker: Worker, filters: dict[str, Any], page: dict[str, Any],
              acting: Authority) -> dict[str, Any]:
    """Runs, newest first; a manager's are those of their rules (an organisation rule's
    runs concern every team's records)."""
    query = select(RuleRun)
    if not acting.is_organisation:
        with worker.db.read() as session:
            query = query.where(RuleRun.rule_id.in_(
                _managed_rule_ids(session, acting) or ["-"]))
    for name in ("rule_id", "status", "event_id", "record_key", "correlation_id"):
        if name in filters:
            query = query.where(getattr(RuleRun, name) == filters[name])
    if "matched" in filters:
        query = query.where(RuleRun.matched.is_(filters["matched"]))
    query = page_after(query, RuleRun.started_at, RuleRun.id, page["cursor"], page["limit"])
    with worker.db.read() as session:
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "started_at", run_to_dict)


def get_run(worker: Worker, run_id: str, acting: Authority) -> dict[str, Any]:
    with worker.db.read() as session:
        run = session.get(RuleRun, run_id) if isinstance(run_id, str) else None
        allowed = _managed_rule_ids(session, acting)
        if run is None or (allowed is not None and run.rule_id not in allowed):
            raise NotFound(f"rule run {run_id} not found", {"field": "run_id"})
        return run_to_dict(run)
