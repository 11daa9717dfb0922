"""Performing one action of a run. The actions on other services' data (`assign`, `call`)
go through their owners' RPC commands with the rule's scope, never inside a transaction, and
with a `command_id` naming the run and the action (`command_id()`), so that calling again (a resumed
run, a retry after a lost reply) has the effect once; the local ones (tasks, notifications,
escalations) are `local_actions.py`'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import records
from services.rules.domain import rules as rules_domain
from services.rules.usecases.assignment import choose_assignee
from services.rules.usecases.cached import effective_authority
from services.rules.usecases.local_actions import LOCAL_ACTIONS, LocalActions, template_context
from services.rules.usecases.projections import SNAPSHOT_OWNER, UPDATE_SNAPSHOT
from services.rules.usecases.support import PermanentFailure, Ports, Skipped, render
from shared.db import DatabaseAccess

Remember = Callable[[Session, dict[str, Any]], None]


def command_id(run_id: str, index: int) -> str:
    """The key of a run's action at its owner: the same at every attempt of that action."""
    return f"rules:{run_id}:{index}"


class Actions:
    def __init__(self, db: DatabaseAccess, clock: Clock, ports: Ports,
                 local: LocalActions) -> None:
        self.db = db
        self.clock = clock
        self.ports = ports
        self.local = local

    def perform(
        self, action: dict[str, Any], context: dict[str, Any], run_id: str,
        definition: dict[str, Any], progress: dict[str, Any] | None = None,
        remember: Remember | None = None, index: int = 0,
    ) -> Any:
        """`index`: the action's place in the run; `progress`: its stored outcome so far (a
        resumed run's); `remember(session, progress)` stores what the action decided, in the
        transaction of the decision."""
        kind = action["type"]
        once_key = command_id(run_id, index)
        if kind == "assign":
            return self.assign(action, context, progress or {}, remember, once_key)
        if kind == "call":
            return self._call(action, context, once_key)
        if kind in LOCAL_ACTIONS:
            with self.db.begin() as session:
                return self.local.perform(session, action, context, run_id)
        raise PermanentFailure(f"unknown action {kind}")

    def assign(
        self, action: dict[str, Any], context: dict[str, Any],
        progress: dict[str, Any] | None = None, remember: Remember | None = None,
        once_key: str | None = None,
    ) -> dict[str, Any]:
        record = context.get("record") or {}
        if context.get("record_type") != "lead" or not record.get("id"):
            raise Skipped("assign works on leads")
        chosen = (progress or {}).get("chosen")
        if chosen:
            # Chosen before a crash or a failed call: the same owner again, not a second
            # choice that moves the rotation on (and the same once_key: done already, the call
            # changes nothing, even if someone has reassigned the lead since).
            with self.db.begin() as session:
                rule_authority = effective_authority(session, context.get("authority"))
            if rule_authority.revoked:
                raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
            return self.assign_to(record, context, chosen, rule_authority.scope(), once_key)
        with self.db.begin() as session:
            key = records.record_key("lead", record["id"])
            connection = session.connection()
            known = connection.execute(SNAPSHOT_OWNER, {"key": key}).first()
            current_owner = known.owner_id if known else record.get("owner_id")
            if action.get("only_unowned") and current_owner:
                record["owner_id"] = current_owner
                raise Skipped(f"the lead already has an owner ({current_owner})")
            rule_authority = effective_authority(session, context.get("authority"))
            if rule_authority.revoked:
                raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
            chosen = choose_assignee(session, self.clock, action, record, commit=True,
                                     authority=rule_authority)
            if known is not None:  # count the lead at once, for least-loaded fairness
                connection.execute(UPDATE_SNAPSHOT,
                                   {"record_key": key, "owner_id": chosen["owner_id"]})
            if remember is not None:
                remember(session, {"chosen": chosen})
        return self.assign_to(record, context, chosen, rule_authority.scope(), once_key)

    def assign_to(
        self, record: dict[str, Any], context: dict[str, Any], chosen: dict[str, Any],
        scope: dict[str, Any], once_key: str | None = None,
    ) -> dict[str, Any]:
        result = self.ports.call("leads", "assign_lead", lead_id=record["id"],
                                 owner_id=chosen["owner_id"], scope=scope, command_id=once_key)
        # The lead as it is: a repeat answers the owner it has now.
        owner = (result.get("owner_id") if isinstance(result, dict) else None) or \
            chosen["owner_id"]
        record["owner_id"] = owner
        context["record"] = record
        return chosen

    def _call(self, action: dict[str, Any], context: dict[str, Any],
              once_key: str | None = None) -> dict[str, Any]:
        """A `call` action: one of ALLOWED_CALLS on the run's record, with the rule's scope
        and, to the commands that take one (EXACTLY_ONCE_CALLS), `once_key` as `command_id`."""
        record = context.get("record") or {}
        record_type = context.get("record_type")
        service, method = action["service"], action["method"]
        acts_on = rules_domain.ALLOWED_CALLS[f"{service}.{method}"][0]
        if not record.get("id") or record_type != acts_on:
            raise Skipped(f"{service}.{method} needs a {acts_on} record")
        with self.db.read() as session:
            values = template_context(session, self.clock, context)
            rule_authority = effective_authority(session, context.get("authority"))
        args = {name: render(value, values) if isinstance(value, str) else value
                for name, value in (action.get("args") or {}).items()}
        if rule_authority.revoked:
            raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
        if "owner_id" in args and not rule_authority.is_organisation and (
                args["owner_id"] not in rule_authority.owner_ids):
            raise PermanentFailure(f"user {args['owner_id']} is outside the rule's authority "
                                   "(a manager's rules assign within their teams)")
        once = ({"command_id": once_key} if once_key and (
            f"{service}.{method}" in rules_domain.EXACTLY_ONCE_CALLS) else {})
        # The owner checks the command with the author's own scope, as for a person.
        result = self.ports.call(service, method, **{f"{record_type}_id": record["id"]},
                                 **args, scope=rule_authority.scope(), **once)
        if isinstance(result, dict):
            # A new owner counts for the next actions; a release keeps the previous owner in
            # the context, so that "owner" and "owner_manager" still mean the people concerned.
            if result.get("owner_id"):
                record["owner_id"] = result["owner_id"]
            for name in ("status", "stage_id"):
                if name in result:
                    record[name] = result[name]
        return {"called": f"{service}.{method}", "args": args}
