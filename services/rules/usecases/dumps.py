"""The rules service's rows as its RPC answers and events carry them."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from services.rules.domain.authority import Authority
from services.rules.models import (
    Notification,
    Rule,
    RuleRun,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)
from services.rules.usecases.support import iso

# A run started in the current transaction: a RuleRun row's columns as attributes, inserted
# at commit (see Runs.start).
StartedRun = SimpleNamespace


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id, "key": rule.key, "name": rule.name, "description": rule.description,
        "enabled": rule.enabled, "version": rule.version, **rule.definition,
        "created_at": iso(rule.created_at), "updated_at": iso(rule.updated_at),
        "updated_by": rule.updated_by, "acts_for": acts_for(rule.authority),
    }


def acts_for(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Whom a rule or subscription acts for, as its readers see it (not its member list)."""
    authority = Authority.of(stored)
    return {"kind": authority.kind, "user_id": authority.user_id}


def run_to_dict(run: RuleRun | StartedRun) -> dict[str, Any]:
    return {
        "id": run.id, "rule_id": run.rule_id, "rule_version": run.rule_version,
        "trigger": run.trigger, "event_id": run.event_id, "event_type": run.event_type,
        "timer_id": run.timer_id, "record_key": run.record_key, "matched": run.matched,
        "status": run.status, "reason": run.reason, "actions": list(run.actions or []),
        "correlation_id": run.correlation_id, "causation_depth": run.causation_depth,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "duration_ms": run.duration_ms,
    }


RUN_SUMMARY_FIELDS = ("id", "rule_id", "rule_version", "trigger", "event_id", "event_type",
                      "record_key", "matched", "status", "reason", "actions", "correlation_id")


def run_summary(run: RuleRun | StartedRun) -> dict[str, Any]:
    """What `rule_run_completed` carries."""
    data = run_to_dict(run)
    return {key: data[key] for key in RUN_SUMMARY_FIELDS}


def task_to_dict(task: Task, now: datetime) -> dict[str, Any]:
    return {
        "id": task.id, "title": task.title, "description": task.description,
        "record_type": task.record_type, "record_id": task.record_id,
        "assignee_id": task.assignee_id, "status": task.status, "priority": task.priority,
        "due_at": iso(task.due_at), "snoozed_until": iso(task.snoozed_until),
        "overdue": is_overdue(task, now), "rule_id": task.rule_id, "run_id": task.run_id,
        "created_at": iso(task.created_at), "updated_at": iso(task.updated_at),
        "completed_at": iso(task.completed_at), "completed_by": task.completed_by,
    }


def is_overdue(task: Task, now: datetime) -> bool:
    if task.status != "open" or task.due_at is None or task.due_at > now:
        return False
    return task.snoozed_until is None or task.snoozed_until <= now


def notification_to_dict(item: Notification | SimpleNamespace) -> dict[str, Any]:
    return {
        "id": item.id, "user_id": item.user_id, "title": item.title, "body": item.body,
        "record_type": item.record_type, "record_id": item.record_id, "rule_id": item.rule_id,
        "run_id": item.run_id, "created_at": iso(item.created_at), "read_at": iso(item.read_at),
    }


def subscription_to_dict(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id, "url": sub.url, "event_types": list(sub.event_types),
        "description": sub.description, "active": sub.active,
        "disabled_reason": sub.disabled_reason, "created_at": iso(sub.created_at),
        "created_by": sub.created_by, "acts_for": acts_for(sub.authority),
    }


def delivery_to_dict(item: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": item.id, "subscription_id": item.subscription_id, "event_id": item.event_id,
        "event_type": item.event_type, "status": item.status, "attempts": item.attempts,
        "next_attempt_at": iso(item.next_attempt_at) if item.status == "pending" else None,
        "last_status_code": item.last_status_code, "last_error": item.last_error,
        "attempt_log": list(item.attempt_log or []), "created_at": iso(item.created_at),
        "delivered_at": iso(item.delivered_at),
    }


def user_to_dict(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "email": user.email, "role": user.role, "team_id": user.team_id,
            "active": user.active}


def event_summary(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: envelope.get(key) for key in (
        "event_id", "event_type", "producer", "occurred_at", "correlation_id", "causation_id",
        "actor", "causation_depth")}
