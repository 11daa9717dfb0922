"""The shipped rules on an installed system: installed when missing, upgraded to a new shipped
definition when nobody changed them since they were installed, and, when an admin did, kept
as the admin left them with the new shipped definition offered (`update_available`) until an
admin adopts it (`adopt_shipped_rule`). Every upgrade is a new version: runs keep theirs."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.rules.domain import revisions
from services.rules.domain import shipped as shipped_domain
from services.rules.domain.authority import Authority
from services.rules.models import Rule, RuleVersion, ShippedRule
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.support import Worker
from services.rules.usecases.timers import Timers
from shared.errors import Forbidden, NotFound, PreconditionFailed

log = logging.getLogger(__name__)

UNKNOWN = ""  # the installed hash of a rule an older seed installed and an admin edited since


def install_shipped(session: Session, shipped_rules: list[dict[str, Any]], now: datetime,
                    timers: Timers) -> dict[str, str]:
    """Each shipped rule (key, name, description, trigger, conditions, actions) installed,
    upgraded, or left to its admins; returns key -> what was done (domain/shipped.py)."""
    result: dict[str, str] = {}
    for shipped in shipped_rules:
        key = shipped["key"]
        new = shipped_domain.content(shipped["name"], shipped.get("description"), shipped)
        new_hash = shipped_domain.content_hash(new)
        rule = session.scalar(select(Rule).where(Rule.key == key).with_for_update())
        record = session.get(ShippedRule, key, with_for_update=True)
        if rule is None:
            rule = Rule(id=key, key=key, name=new["name"], description=new["description"],
                        enabled=True, version=1, trigger_type=new["definition"]["trigger"]["type"],
                        definition=new["definition"], created_at=now, updated_at=now,
                        updated_by=None)
            session.add(rule)
            session.add(RuleVersion(rule_id=rule.id, version=1, name=rule.name,
                                    definition=rule.definition, created_at=now, created_by=None))
            outcome = shipped_domain.INSTALLED
        else:
            current_hash = shipped_domain.content_hash(
                shipped_domain.content(rule.name, rule.description, rule.definition))
            installed = (shipped_domain.Installed(record.installed_version, record.installed_hash)
                         if record is not None else _installed_before(session, rule,
                                                                      current_hash))
            outcome = shipped_domain.decide(new_hash, rule.version, current_hash, installed)
            if outcome == shipped_domain.UPGRADED:
                old_version = rule.version
                _apply(session, rule, new, now, timers, by=None)
                log.info("shipped rule %s upgraded to the new shipped definition: version %s "
                         "-> %s (nobody had changed it since it was installed)", key,
                         old_version, rule.version)
            elif outcome == shipped_domain.UPDATE_AVAILABLE:
                log.info("shipped rule %s has a new shipped definition; kept as an admin "
                         "changed it (version %s), the update is offered to admins", key,
                         rule.version)
        record = record or ShippedRule(key=key)
        record.rule_id, record.shipped, record.shipped_hash = rule.id, new, new_hash
        record.checked_at = now
        if outcome in (shipped_domain.INSTALLED, shipped_domain.PRESENT,
                       shipped_domain.UPGRADED):
            # what is there now is what is shipped
            record.installed_version, record.installed_hash = rule.version, new_hash
        elif record.installed_hash is None:  # an older seed's install, edited since
            record.installed_version, record.installed_hash = 1, UNKNOWN
        record.update_available = outcome == shipped_domain.UPDATE_AVAILABLE
        session.add(record)
        session.flush()
        result[key] = outcome
    forget_cached_rules()
    return result


def _installed_before(session: Session, rule: Rule, current_hash: str
                      ) -> shipped_domain.Installed | None:
    """What an older seed (that recorded nothing) installed: the rule's first version when it
    is still the only one and the seed wrote it (nobody's); unknown once an admin edited it."""
    if rule.version != 1:
        return None
    first = session.get(RuleVersion, (rule.id, 1))
    if first is None or first.created_by is not None:
        return None
    return shipped_domain.Installed(1, current_hash)


def _apply(session: Session, rule: Rule, new: dict[str, Any], now: datetime, timers: Timers,
           by: str | None) -> None:
    """The shipped content as the rule's new version (its enabled flag kept)."""
    revisions.revise(rule, {"name": new["name"], "description": new["description"],
                            "enabled": rule.enabled, "definition": new["definition"]}, now, by)
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, name=rule.name,
                            definition=rule.definition, created_at=now, created_by=by))
    session.flush()
    timers.schedule_rule(session, rule)


def shipped_update(session: Session, rule: Rule, acting: Authority) -> dict[str, Any]:
    """For an admin reading a shipped rule: whether a new shipped definition waits for them
    and what it is."""
    if not acting.is_organisation or not rule.key:
        return {}
    record = session.get(ShippedRule, rule.key)
    available = bool(record is not None and record.update_available)
    result: dict[str, Any] = {"shipped_update_available": available}
    if available:
        result["shipped_update"] = {"name": record.shipped["name"],
                                    "description": record.shipped["description"],
                                    **record.shipped["definition"]}
    return result


def shipped_updates_waiting(session: Session, acting: Authority) -> set[str] | None:
    """For an admin listing rules: the keys of the shipped rules whose new definition waits
    for them (one query); None for anyone else (the list then says nothing of it)."""
    if not acting.is_organisation:
        return None
    return set(session.scalars(select(ShippedRule.key).where(
        ShippedRule.update_available.is_(True))))


def adopt_shipped_rule(worker: Worker, rule_id: str, acting: Authority) -> dict[str, Any]:
    """An admin takes the new shipped definition of a rule they had changed: a new version.
    412 when there is none to take; 403 for anyone but an admin."""
    from services.rules.usecases.dumps import rule_to_dict
    from services.rules.usecases.rule_admin import find_rule

    with worker.db.read() as session:
        if not Authority.of(find_rule(session, rule_id).authority).visible_to(acting):
            raise NotFound(f"rule {rule_id} not found", {"field": "rule_id"})
    if not acting.is_organisation:
        raise Forbidden("adopting a shipped rule's new definition is for admins",
                        {"field": "rule_id"})
    engine = worker.engine
    with worker.db.begin() as session:
        rule = find_rule(session, rule_id, lock=True)
        record = (session.get(ShippedRule, rule.key, with_for_update=True) if rule.key
                  else None)
        if record is None or not record.update_available:
            raise PreconditionFailed(f"rule {rule_id} has no new shipped definition to adopt",
                                     {"field": "rule_id"})
        _apply(session, rule, record.shipped, engine.clock.now(), engine.timers,
               by=worker.actor)
        record.installed_version, record.installed_hash = rule.version, record.shipped_hash
        record.update_available = False
        log.info("shipped rule %s: its new shipped definition adopted (version %s)", rule.key,
                 rule.version)
        forget_cached_rules()
        return {**rule_to_dict(rule), "shipped_update_available": False}
