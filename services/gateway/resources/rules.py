"""Rules, runs, tasks, notifications, webhooks, assignment settings and the test clock: one rules
RPC each. Rule and webhook management is for admins and managers; every call passes the caller
(`principal`: id, role, team, the members they manage), and the rules service decides what they
may author, read and change (services/rules/README.md, "Who may author what")."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem
from services.gateway.references import RECORD_READS, read_reference
from services.gateway.resources.rules_schemas import (
    ClockAdvanceSchema,
    ClockSchema,
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySchema,
    DryRunRequestSchema,
    DryRunResultSchema,
    MemberSettingsSchema,
    MemberSettingsWriteSchema,
    NotificationPageSchema,
    NotificationQuerySchema,
    NotificationSchema,
    ReassignSchema,
    RuleListQuerySchema,
    RuleListSchema,
    RuleSchema,
    RuleWriteSchema,
    RunPageSchema,
    RunQuerySchema,
    RunSchema,
    SnoozeSchema,
    TaskCreateSchema,
    TaskPageSchema,
    TaskQuerySchema,
    TaskSchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookListSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)

blp = Blueprint(
    "rules", __name__, description="Rules, runs, tasks, notifications, webhooks, assignment."
)

MANAGERS = ("admin", "manager")


# --------------------------------------------------------------------------- helpers


def _iso(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}


def _task_scope() -> dict[str, Any]:
    scope = current_principal().leads_scope()
    if scope.get("all"):
        return {"all": True}
    return {"owner_ids": scope["owner_ids"]}


def _principal() -> dict[str, Any]:
    """Who is calling, as the rules service needs it to decide what they may author and see
    (it stores it with their rules and subscriptions)."""
    principal = current_principal()
    return {"user_id": principal.user_id, "role": principal.role,
            "team_id": principal.team_id,
            "owner_ids": list(principal.leads_scope().get("owner_ids") or [])}


def _page(query: dict[str, Any]) -> tuple[str | None, int]:
    return query.pop("cursor", None), query.pop("limit", 50)


# --------------------------------------------------------------------------- rules


@blp.route("/rules", methods=["GET"])
@blp.arguments(RuleListQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, RuleListSchema)
def list_rules(query: dict[str, Any]) -> Any:
    """Every rule (admins and managers)."""
    require_role(*MANAGERS)
    return rpc_call("rules", "list_rules", filters=query, principal=_principal())


@blp.route("/rules", methods=["POST"])
@blp.arguments(RuleWriteSchema())
@blp.response(201, RuleSchema)
def create_rule(data: dict[str, Any]) -> Any:
    """Define a rule: trigger, conditions and ordered actions. A bad expression or template is
    answered 422 with its position (`conditions`, `actions.0.title`)."""
    require_role(*MANAGERS)
    rule = rpc_call("rules", "create_rule", data=data,
                    principal=_principal())
    return rule, 201, {"Location": f"/rules/{rule['id']}"}


@blp.route("/rules/<string:rule_id>", methods=["GET"])
@blp.response(200, RuleSchema)
def get_rule(rule_id: str) -> Any:
    """A rule with all its versions."""
    require_role(*MANAGERS)
    return rpc_call("rules", "get_rule", rule_id=rule_id, principal=_principal())


@blp.route("/rules/<string:rule_id>", methods=["PUT"])
@blp.arguments(RuleWriteSchema())
@blp.response(200, RuleSchema)
def update_rule(data: dict[str, Any], rule_id: str) -> Any:
    """Edit a rule: a new version (runs record which version they used)."""
    require_role(*MANAGERS)
    return rpc_call("rules", "update_rule", rule_id=rule_id, data=data,
                    principal=_principal())


@blp.route("/rules/<string:rule_id>/enable", methods=["POST"])
@blp.response(200, RuleSchema)
def enable_rule(rule_id: str) -> Any:
    require_role(*MANAGERS)
    return rpc_call("rules", "set_rule_enabled", rule_id=rule_id, enabled=True,
                    principal=_principal())


@blp.route("/rules/<string:rule_id>/disable", methods=["POST"])
@blp.response(200, RuleSchema)
def disable_rule(rule_id: str) -> Any:
    require_role(*MANAGERS)
    return rpc_call("rules", "set_rule_enabled", rule_id=rule_id, enabled=False,
                    principal=_principal())


@blp.route("/rules/<string:rule_id>/adopt-shipped", methods=["POST"])
@blp.response(200, RuleSchema)
@blp.alt_response(412, description="No new shipped definition waits for this rule.")
def adopt_shipped_rule(rule_id: str) -> Any:
    """Admins: take the new shipped definition of a shipped rule they had changed (its
    `shipped_update`): a new version. 412 when there is none."""
    require_role("admin")
    return rpc_call("rules", "adopt_shipped_rule", rule_id=rule_id, principal=_principal())


@blp.route("/rules/<string:rule_id>/dry-run", methods=["POST"])
@blp.arguments(DryRunRequestSchema())
@blp.response(200, DryRunResultSchema)
def dry_run(data: dict[str, Any], rule_id: str) -> Any:
    """What the rule (or an unsaved `definition`) would do for a `sample` event or a past
    `event_id`, without doing it."""
    require_role(*MANAGERS)
    return rpc_call("rules", "dry_run", rule_id=rule_id, data=data,
                    principal=_principal())


@blp.route("/rules/dry-run", methods=["POST"])
@blp.arguments(DryRunRequestSchema())
@blp.response(200, DryRunResultSchema)
def dry_run_definition(data: dict[str, Any]) -> Any:
    """What an unsaved rule (`definition`: trigger, conditions, actions) would do for a
    `sample` event or a past `event_id`."""
    require_role(*MANAGERS)
    if not data.get("definition"):
        raise validation_problem({"definition": ["Missing data for required field."]})
    return rpc_call("rules", "dry_run", rule_id=None, data=data,
                    principal=_principal())


@blp.route("/rule-runs", methods=["GET"])
@blp.arguments(RunQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, RunPageSchema)
def list_runs(query: dict[str, Any]) -> Any:
    """Rule runs, newest first: event, rule version, match, each action's outcome."""
    require_role(*MANAGERS)
    cursor, limit = _page(query)
    return rpc_call("rules", "list_runs", filters=query, cursor=cursor, limit=limit,
                    principal=_principal())


@blp.route("/rule-runs/<string:run_id>", methods=["GET"])
@blp.response(200, RunSchema)
def get_run(run_id: str) -> Any:
    require_role(*MANAGERS)
    return rpc_call("rules", "get_run", run_id=run_id, principal=_principal())


# --------------------------------------------------------------------------- tasks


@blp.route("/tasks", methods=["GET"])
@blp.arguments(TaskQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, TaskPageSchema)
def list_tasks(query: dict[str, Any]) -> Any:
    """Tasks you may see (yours; a manager's team's; an admin's all); `mine=true` for yours,
    `overdue=true` for the overdue ones."""
    cursor, limit = _page(query)
    if query.pop("mine", False):
        query["assignee_id"] = current_principal().user_id
    return rpc_call("rules", "list_tasks", filters=query, scope=_task_scope(), cursor=cursor,
                    limit=limit)


@blp.route("/tasks", methods=["POST"])
@blp.arguments(TaskCreateSchema())
@blp.response(201, TaskSchema)
def create_task(data: dict[str, Any]) -> Any:
    """A to-do for yourself or a member of your team (managers: of the teams they manage;
    admins: anyone)."""
    _check_record_ref(data.get("record_type"), data.get("record_id"))
    return rpc_call("rules", "create_task", data=_iso(data), scope=_task_scope(),
                    principal=_principal())


def _check_record_ref(record_type: str | None, record_id: str | None) -> None:
    """What a task may be about: a record its owning service shows the caller (hidden and
    missing records answer alike, 422 on record_id)."""
    if record_id is None:
        return
    if record_type is None:
        raise validation_problem({"record_type": ["Required with record_id."]})
    if record_type not in RECORD_READS:
        raise validation_problem({"record_type": [
            f"Tasks on {record_type} records are not available yet."]})
    read_reference(record_type, record_id, "record_id")


@blp.route("/tasks/<string:task_id>", methods=["GET"])
@blp.response(200, TaskSchema)
def get_task(task_id: str) -> Any:
    return rpc_call("rules", "get_task", task_id=task_id, scope=_task_scope())


@blp.route("/tasks/<string:task_id>/complete", methods=["POST"])
@blp.response(200, TaskSchema)
def complete_task(task_id: str) -> Any:
    return rpc_call("rules", "complete_task", task_id=task_id, scope=_task_scope())


@blp.route("/tasks/<string:task_id>/reassign", methods=["POST"])
@blp.arguments(ReassignSchema())
@blp.response(200, TaskSchema)
def reassign_task(data: dict[str, Any], task_id: str) -> Any:
    return rpc_call("rules", "reassign_task", task_id=task_id,
                    assignee_id=data["assignee_id"], scope=_task_scope(),
                    principal=_principal())


@blp.route("/tasks/<string:task_id>/snooze", methods=["POST"])
@blp.arguments(SnoozeSchema())
@blp.response(200, TaskSchema)
def snooze_task(data: dict[str, Any], task_id: str) -> Any:
    return rpc_call("rules", "snooze_task", task_id=task_id, until=data["until"].isoformat(),
                    scope=_task_scope())


# --------------------------------------------------------------------------- notifications


@blp.route("/notifications", methods=["GET"])
@blp.arguments(NotificationQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, NotificationPageSchema)
def list_notifications(query: dict[str, Any]) -> Any:
    """Your in-app inbox, newest first."""
    cursor, limit = _page(query)
    return rpc_call("rules", "list_notifications", user_id=current_principal().user_id,
                    unread=query.get("unread"), cursor=cursor, limit=limit)


@blp.route("/notifications/<string:notification_id>/read", methods=["POST"])
@blp.response(200, NotificationSchema)
def mark_read(notification_id: str) -> Any:
    return rpc_call("rules", "mark_notification_read", notification_id=notification_id,
                    user_id=current_principal().user_id)


# --------------------------------------------------------------------------- webhooks


@blp.route("/webhooks", methods=["GET"])
@blp.response(200, WebhookListSchema)
def list_webhooks() -> Any:
    require_role(*MANAGERS)
    return rpc_call("rules", "list_webhooks", principal=_principal())


@blp.route("/webhooks", methods=["POST"])
@blp.arguments(WebhookCreateSchema())
@blp.response(201, WebhookCreatedSchema)
def create_webhook(data: dict[str, Any]) -> Any:
    """Subscribe a URL to event types (`leads.lead_created`, `leads.*`). Deliveries are signed
    like Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 with
    the secret answered here, once)."""
    require_role(*MANAGERS)
    sub = rpc_call("rules", "create_webhook", data=data,
                    principal=_principal())
    return sub, 201, {"Location": f"/webhooks/{sub['id']}"}


@blp.route("/webhooks/<string:subscription_id>", methods=["GET"])
@blp.response(200, WebhookSchema)
def get_webhook(subscription_id: str) -> Any:
    require_role(*MANAGERS)
    return rpc_call("rules", "get_webhook", subscription_id=subscription_id, principal=_principal())


@blp.route("/webhooks/<string:subscription_id>", methods=["PATCH"])
@blp.arguments(WebhookUpdateSchema())
@blp.response(200, WebhookSchema)
def update_webhook(data: dict[str, Any], subscription_id: str) -> Any:
    """Change the URL or event types, or enable a subscription again (a 410 disabled it)."""
    require_role(*MANAGERS)
    return rpc_call("rules", "update_webhook", subscription_id=subscription_id, data=data,
                    principal=_principal())


@blp.route("/webhooks/<string:subscription_id>", methods=["DELETE"])
@blp.response(204)
def delete_webhook(subscription_id: str) -> Any:
    require_role(*MANAGERS)
    rpc_call("rules", "delete_webhook", subscription_id=subscription_id, principal=_principal())
    return None


@blp.route("/webhooks/<string:subscription_id>/deliveries", methods=["GET"])
@blp.arguments(DeliveryQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, DeliveryPageSchema)
def list_deliveries(query: dict[str, Any], subscription_id: str) -> Any:
    """Deliveries of a subscription, newest first (`status=failed` for the failed ones)."""
    require_role(*MANAGERS)
    cursor, limit = _page(query)
    return rpc_call("rules", "list_webhook_deliveries", subscription_id=subscription_id,
                    status=query.get("status"), cursor=cursor, limit=limit,
                    principal=_principal())


@blp.route("/webhook-deliveries/<string:delivery_id>/replay", methods=["POST"])
@blp.response(200, DeliverySchema)
def replay_delivery(delivery_id: str) -> Any:
    """Send a delivery again, with the same webhook-id."""
    require_role(*MANAGERS)
    return rpc_call("rules", "replay_webhook_delivery", delivery_id=delivery_id,
                    principal=_principal())


# --------------------------------------------------------------------------- assignment


def _check_member(user_id: str) -> None:
    principal = require_role(*MANAGERS)
    if principal.role == "manager" and user_id not in principal.leads_scope()["owner_ids"]:
        raise ApiProblem(403, "Managers manage the members of their own teams only.",
                         type_=PROBLEM_BASE + "forbidden")


@blp.route("/assignment/members/<string:user_id>", methods=["GET"])
@blp.response(200, MemberSettingsSchema)
def get_member(user_id: str) -> Any:
    """A member's assignment settings and open leads."""
    _check_member(user_id)
    return rpc_call("rules", "get_member_settings", user_id=user_id)


@blp.route("/assignment/members/<string:user_id>", methods=["PUT"])
@blp.arguments(MemberSettingsWriteSchema())
@blp.response(200, MemberSettingsSchema)
def set_member(data: dict[str, Any], user_id: str) -> Any:
    """Capacity (open leads at most) and out-of-office until; skipped by assignment."""
    _check_member(user_id)
    return rpc_call("rules", "set_member_settings", user_id=user_id, data=_iso(data))


# --------------------------------------------------------------------------- clock


@blp.route("/system/clock", methods=["GET"])
@blp.response(200, ClockSchema)
def get_clock() -> Any:
    """The rules service's clock (moved forward only with CRM_CLOCK=controllable)."""
    current_principal()
    return rpc_call("rules", "get_clock")


@blp.route("/system/clock", methods=["POST"])
@blp.arguments(ClockAdvanceSchema())
@blp.response(200, ClockSchema)
def advance_clock(data: dict[str, Any]) -> Any:
    """Move the controllable clock forward (tests and demos; 403 otherwise)."""
    require_role("admin")
    return rpc_call("rules", "advance_clock", seconds=data["advance_seconds"])
