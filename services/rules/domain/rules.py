"""Rule definitions: their shape and validation (errors named by path), trigger matching and the
loop guard."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.rules.domain import conditions, timing
from shared import registry

TRIGGER_TYPES = ("event", "delay", "date", "schedule")
ACTION_TYPES = ("assign", "create_task", "notify", "call", "escalate")
CHANNELS = ("in_app", "email", "webhook")
PRIORITIES = ("low", "normal", "high", "urgent")
ROLES = ("admin", "manager", "sales_rep", "service_agent")
# Commands of other services a rule may call (their `rule_commands` in shared/registry.py): the
# record type it acts on and the arguments it may pass. The record's id is passed as
# `<record type>_id`; the scope is always everything (the rule acts for the organisation). The
# owning service checks the command as for any caller (a stage move against the pipeline's exit
# criteria, for one).
ALLOWED_CALLS: dict[str, tuple[str, tuple[str, ...]]] = registry.rule_callable_commands()
# Those of them that take a `command_id` (`rules:<run id>:<action index>`): a repeat of the
# action (a resumed run, a retry after a lost reply) has the command's effect once.
EXACTLY_ONCE_CALLS: frozenset[str] = registry.rule_commands_taking_command_id()
# `field:<name>`: the user id(s) in the record's field `<name>` (a string or a list; contract
# approval: `field:approver_ids` of an approval record).
RECIPIENT_PREFIXES = ("role:", "team:", "team_manager:", "user:", "field:")
RECIPIENTS = ("owner", "owner_manager", "manager_chain", "actor")

Problems = dict[str, list[str]]
TemplateCheck = Callable[[str], str | None]


def _add(problems: Problems, path: str, message: str) -> None:
    problems.setdefault(path, []).append(message)


def _event_names(value: Any, path: str, problems: Problems, required: bool = True) -> list[str]:
    if value is None and not required:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or (required and not names):
        _add(problems, path, "a list of event types such as 'leads.lead_created'")
        return []
    for index, name in enumerate(names):
        if not isinstance(name, str) or "." not in name or name.startswith("."):
            _add(problems, f"{path}.{index}",
                 "an event type is '<service>.<event_type>', e.g. 'leads.lead_created'")
    return [n for n in names if isinstance(n, str)]


def _duration(value: Any, path: str, problems: Problems, required: bool = True) -> None:
    if value is None:
        if required:
            _add(problems, path, "Missing data for required field.")
        return
    try:
        timing.parse_duration(value)
    except ValueError as exc:
        _add(problems, path, str(exc))


def _template(value: Any, path: str, problems: Problems, check: TemplateCheck,
              required: bool = False) -> None:
    if value is None:
        if required:
            _add(problems, path, "Missing data for required field.")
        return
    if not isinstance(value, str):
        _add(problems, path, "Not a valid string.")
        return
    error = check(value)
    if error:
        _add(problems, path, error)


def _recipients(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, list) or not value:
        _add(problems, path, f"a list of recipients: {', '.join(RECIPIENTS)}, or role:<role>, "
                             "team:<name>, team_manager:<name>, user:<id>, field:<name>")
        return
    for index, item in enumerate(value):
        if not isinstance(item, str) or not (
            item in RECIPIENTS or item.startswith(RECIPIENT_PREFIXES)
        ):
            _add(problems, f"{path}.{index}", f"unknown recipient {item!r}")
        elif item.startswith("role:") and item[5:] not in ROLES:
            _add(problems, f"{path}.{index}", f"unknown role {item[5:]!r}")
        elif item.startswith("field:") and not item[6:]:
            _add(problems, f"{path}.{index}", "field:<name> names a field of the record")


def validate_trigger(trigger: Any, problems: Problems) -> None:
    if not isinstance(trigger, dict):
        _add(problems, "trigger", "an object with a 'type'")
        return
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        _add(problems, "trigger.type", f"must be one of {', '.join(TRIGGER_TYPES)}")
        return
    allowed = {
        "event": {"type", "event", "field", "to"},
        "delay": {"type", "events", "delay", "unless", "record"},
        "date": {"type", "events", "field", "offset_days", "offset_months", "at", "yearly",
                 "record", "sequence"},
        "schedule": {"type", "cron"},
    }[kind]
    for key in trigger:
        if key not in allowed:
            _add(problems, f"trigger.{key}", "Unknown field.")
    if kind == "event":
        _event_names(trigger.get("event"), "trigger.event", problems)
        if "to" in trigger and not trigger.get("field"):
            _add(problems, "trigger.field", "required with 'to'")
    elif kind == "delay":
        _event_names(trigger.get("events"), "trigger.events", problems)
        _duration(trigger.get("delay"), "trigger.delay", problems)
        _event_names(trigger.get("unless"), "trigger.unless", problems, required=False)
    elif kind == "date":
        _event_names(trigger.get("events"), "trigger.events", problems)
        if not isinstance(trigger.get("field"), str) or not trigger.get("field"):
            _add(problems, "trigger.field", "the record's date field, e.g. 'birthday'")
        for key in ("offset_days", "offset_months"):
            value = trigger.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 3660:
                _add(problems, f"trigger.{key}", "a whole number (negative = before)")
        if trigger.get("at") == timing.EXACT:
            if trigger.get("yearly", False) is not False:
                _add(problems, "trigger.yearly", "not with 'at': 'exact' (an instant is once)")
            if "sequence" in trigger and (not isinstance(trigger["sequence"], str)
                                          or not trigger["sequence"]):
                _add(problems, "trigger.sequence",
                     "the event's field numbering its schedules, e.g. 'sequence'")
        elif "sequence" in trigger:
            _add(problems, "trigger.sequence", "only with 'at': 'exact'")
        else:
            try:
                if trigger.get("at") is not None and not isinstance(trigger.get("at"), str):
                    raise ValueError(f"not a time of day: {trigger.get('at')!r} (use HH:MM "
                                     "or 'exact')")
                timing.parse_time_of_day(trigger.get("at"))
            except ValueError as exc:
                _add(problems, "trigger.at", f"{exc}; or 'exact' (the field's instant)")
        if not isinstance(trigger.get("yearly", False), bool):
            _add(problems, "trigger.yearly", "Not a valid boolean.")
    else:
        error = timing.check_cron(trigger.get("cron"))
        if error:
            _add(problems, "trigger.cron", error)


def validate_action(action: Any, path: str, problems: Problems, check: TemplateCheck) -> None:
    if not isinstance(action, dict):
        _add(problems, path, "an object with a 'type'")
        return
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        _add(problems, f"{path}.type", f"must be one of {', '.join(ACTION_TYPES)}")
        return
    if kind == "assign":
        if action.get("strategy", "round_robin") not in ("round_robin", "least_loaded"):
            _add(problems, f"{path}.strategy", "must be round_robin or least_loaded")
        if not any(action.get(k) for k in ("team", "territories", "product_lines")):
            _add(problems, f"{path}.team", "give a team, territories or product_lines")
        for key in ("territories", "product_lines"):
            value = action.get(key)
            if value is not None and (
                not isinstance(value, dict)
                or not all(isinstance(v, str) and v for v in value.values())
            ):
                _add(problems, f"{path}.{key}", "an object mapping a value to a team name")
        if not isinstance(action.get("only_unowned", False), bool):
            _add(problems, f"{path}.only_unowned", "Not a valid boolean.")
        roles = action.get("roles", ["sales_rep"])
        if not isinstance(roles, list) or any(r not in ROLES for r in roles):
            _add(problems, f"{path}.roles", f"a list of roles among {', '.join(ROLES)}")
    elif kind == "create_task":
        _template(action.get("title"), f"{path}.title", problems, check, required=True)
        _template(action.get("description"), f"{path}.description", problems, check)
        _duration(action.get("due_in"), f"{path}.due_in", problems, required=False)
        assignee = action.get("assignee", "owner")
        if not isinstance(assignee, str) or not (
            assignee in ("owner", "owner_manager")
            or assignee.startswith(("role:", "team:", "user:"))
        ):
            _add(problems, f"{path}.assignee",
                 "owner, owner_manager, role:<role>, team:<name> or user:<id>")
        if action.get("priority", "normal") not in PRIORITIES:
            _add(problems, f"{path}.priority", f"must be one of {', '.join(PRIORITIES)}")
    elif kind in ("notify", "escalate"):
        channels = action.get("channels", ["in_app"])
        if not isinstance(channels, list) or not channels or any(
            c not in CHANNELS for c in channels
        ):
            _add(problems, f"{path}.channels", f"a list among {', '.join(CHANNELS)}")
        elif "webhook" in channels and not isinstance(action.get("subscription_id"), str):
            _add(problems, f"{path}.subscription_id", "required for the webhook channel")
        if kind == "notify":
            _recipients(action.get("to"), f"{path}.to", problems)
        else:
            levels = action.get("levels", 1)
            if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 5:
                _add(problems, f"{path}.levels", "a number from 1 to 5")
            if not isinstance(action.get("raise_priority", True), bool):
                _add(problems, f"{path}.raise_priority", "Not a valid boolean.")
        _template(action.get("title"), f"{path}.title", problems, check, required=True)
        _template(action.get("body"), f"{path}.body", problems, check)
    elif kind == "call":
        target = f"{action.get('service')}.{action.get('method')}"
        if target not in ALLOWED_CALLS:
            _add(problems, f"{path}.method",
                 f"callable commands: {', '.join(sorted(ALLOWED_CALLS))}")
            return
        args = action.get("args", {})
        if not isinstance(args, dict):
            _add(problems, f"{path}.args", "an object")
            return
        takes = ALLOWED_CALLS[target][1]
        for name, value in args.items():
            if name not in takes:
                _add(problems, f"{path}.args.{name}", f"{target} takes {', '.join(takes)}")
            elif isinstance(value, str):
                _template(value, f"{path}.args.{name}", problems, check)


def validate_definition(definition: dict[str, Any], check: TemplateCheck) -> Problems:
    """Problems by path (`conditions`, `trigger.delay`, `actions.0.title`); empty when valid."""
    problems: Problems = {}
    validate_trigger(definition.get("trigger"), problems)
    expression = definition.get("conditions") or ""
    error = conditions.check(expression)
    if error:
        _add(problems, "conditions", str(error))
    actions = definition.get("actions")
    if not isinstance(actions, list) or not actions:
        _add(problems, "actions", "at least one action")
    else:
        for index, action in enumerate(actions):
            validate_action(action, f"actions.{index}", problems, check)
    return problems


def event_matches(pattern: str | list[str], event_name: str) -> bool:
    patterns = [pattern] if isinstance(pattern, str) else pattern
    return any(fnmatch.fnmatchcase(event_name, p) for p in patterns)


def field_change_matches(trigger: dict[str, Any], changes: dict[str, dict[str, Any]]) -> bool:
    """"When field X changes (to value Y)"; a trigger without a field always matches."""
    name = trigger.get("field")
    if not name:
        return True
    if name not in changes:
        return False
    return "to" not in trigger or changes[name]["to"] == trigger["to"]


@dataclass(frozen=True)
class GuardSettings:
    max_depth: int = 5
    dedupe_window: timedelta = timedelta(seconds=60)


def loop_guard(
    depth: int, last_fired_at: datetime | None, now: datetime, settings: GuardSettings
) -> str | None:
    """Why the rule must not act (a loop by construction), or None."""
    if depth > settings.max_depth:
        return (f"causation depth {depth} exceeds the limit of {settings.max_depth}: "
                "the event was caused by a chain of automated actions (a loop?)")
    if last_fired_at is not None and now - last_fired_at < settings.dedupe_window:
        return (f"the rule already acted on this record at {last_fired_at.isoformat()}, within "
                f"the dedupe window of {int(settings.dedupe_window.total_seconds())} s")
    return None
