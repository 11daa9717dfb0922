"""Who may author what: the caller's authority from the gateway's `principal`, a rule's
definition checked (and, for a team rule, checked against the author's teams)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.rules.contract import RuleInputSchema
from services.rules.domain import authority as authority_domain
from services.rules.domain import rules as rules_domain
from services.rules.domain.authority import Authority
from services.rules.models import Rule, WebhookSubscription
from services.rules.usecases.cached import directory
from services.rules.usecases.support import check_template
from shared.db import DatabaseAccess
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.payloads import load

rule_input_schema = RuleInputSchema()


def principal_authority(principal: dict | None) -> Authority:
    """The authority a caller has (the gateway passes `principal`: user_id, role,
    team_id, owner_ids); no principal is the organisation (the seed, scripts)."""
    if principal is not None and not isinstance(principal, dict):
        raise ValidationFailed.for_fields({"principal": ["an object"]})
    try:
        return Authority.for_author(principal)
    except authority_domain.NotAllowed as exc:
        raise Forbidden(str(exc)) from None


def check_manages(rule: Rule, acting: Authority) -> None:
    stored = Authority.of(rule.authority)
    if not stored.visible_to(acting):
        raise NotFound(f"rule {rule.id} not found", {"field": "rule_id"})
    if not stored.managed_by(acting):
        raise Forbidden("organisation rules (the shipped ones among them) are changed by "
                        "admins only", {"field": "rule_id"})


def validated_rule(db: DatabaseAccess, data: dict, acting: Authority | None = None,
                   session: Session | None = None) -> dict[str, Any]:
    """The rule's fields with its `definition` (trigger, conditions, actions), or 422 by
    path."""
    fields_ = load(rule_input_schema, data)
    definition = {"trigger": fields_["trigger"], "conditions": fields_["conditions"] or "",
                  "actions": fields_["actions"]}
    problems = rules_domain.validate_definition(definition, check_template)
    if not problems and acting is not None and not acting.is_organisation:
        problems = _authority_problems(db, session, definition, acting)
    if problems:
        raise ValidationFailed.for_fields(problems, "the rule is not valid")
    return {**fields_, "definition": definition}


def _authority_problems(db: DatabaseAccess, session: Session | None,
                        definition: dict[str, Any], acting: Authority
                        ) -> dict[str, list[str]]:
    """What a team rule names outside its author's teams (and webhooks not theirs)."""

    def check(session: Session) -> dict[str, list[str]]:
        people = directory(session)
        effective = acting.effective(people.users, people.teams)
        problems = authority_domain.definition_problems(
            definition, effective, people.users, people.teams)
        for index, action in enumerate(definition["actions"]):
            if "webhook" in (action.get("channels") or []):
                sub = session.get(WebhookSubscription, action.get("subscription_id"))
                if sub is None or not Authority.of(sub.authority).managed_by(acting):
                    problems.setdefault(f"actions.{index}.subscription_id", []).append(
                        "not a webhook subscription of yours")
        return problems

    if session is not None:
        return check(session)
    with db.read() as session:
        return check(session)
