"""The actions on the rules service's own data (`create_task`, `notify`, `escalate`): each
runs inside the caller's transaction, so its effect commits with its outcome."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import timing
from services.rules.domain.authority import Authority
from services.rules.models import (
    EmailDelivery,
    Notification,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)
from services.rules.usecases.cached import directory, effective_authority
from services.rules.usecases.dumps import notification_to_dict, task_to_dict, user_to_dict
from services.rules.usecases.recipients import manager_chain, recipients, task_assignee
from services.rules.usecases.support import (
    PermanentFailure,
    Skipped,
    failure,
    iso,
    new_id,
    render,
)
from services.rules.usecases.webhook_queue import OwnEvents
from shared.db import defer_insert
from shared.errors import CrmError

LOCAL_ACTIONS = ("create_task", "notify", "escalate")
NOTIFICATIONS = Notification.__table__
EMAILS = EmailDelivery.__table__


def template_context(session: Session, clock: Clock, context: dict[str, Any]
                     ) -> dict[str, Any]:
    """What a template can refer to: the record (by its type's name too), the event, the
    rule, the owner, now."""
    record = context.get("record") or {}
    owner = directory(session).users.get(record.get("owner_id") or "")
    values = {"record": record, "event": context.get("event") or {},
              "rule": context.get("rule") or {}, "owner": user_to_dict(owner) or {},
              "now": clock.now().isoformat()}
    if context.get("record_type"):
        values[context["record_type"]] = record
    return values


class LocalActions:
    def __init__(self, clock: Clock, own_events: OwnEvents) -> None:
        self.clock = clock
        self.own_events = own_events

    def perform(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
    ) -> dict[str, Any]:
        """An action on the rules service's own data, inside the caller's transaction."""
        kind = action["type"]
        if kind == "create_task":
            return self.create_task(session, action, context, run_id)
        if kind == "notify":
            return self.notify(session, action, context, run_id, action.get("to") or [])
        if kind == "escalate":
            return self.escalate(session, action, context, run_id)
        raise PermanentFailure(f"{kind} is not a local action")

    def outcome(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
    ) -> dict[str, Any]:
        """The action performed, as its outcome: ok, skipped or failed (an unexpected error
        propagates and rolls the transaction back)."""
        try:
            return {"status": "ok", "detail": self.perform(session, action, context, run_id)}
        except Skipped as exc:
            return {"status": "skipped", "detail": str(exc)}
        except (PermanentFailure, CrmError) as exc:
            return failure(exc)

    def create_task(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str
    ) -> dict[str, Any]:
        now = self.clock.now()
        record = context.get("record") or {}
        assignee = task_assignee(session, action.get("assignee", "owner"), context)
        if not assignee:
            raise Skipped(f"no assignee for {action.get('assignee', 'owner')!r}")
        if not effective_authority(session, context.get("authority")).reaches(
                assignee, directory(session).users):
            raise PermanentFailure(f"user {assignee} is outside the rule's authority "
                                   "(a manager's rules give tasks within their teams)")
        values = template_context(session, self.clock, context)
        user = directory(session).users.get(assignee)
        due_in = action.get("due_in")
        task = Task(
            id=new_id(), title=render(action["title"], values)[:300],
            description=render(action.get("description"), values) or None,
            record_type=context.get("record_type"),
            record_id=str(record["id"]) if record.get("id") else None,
            assignee_id=assignee, team_id=user.team_id if user else None, status="open",
            priority=action.get("priority", "normal"),
            due_at=now + timing.parse_duration(due_in) if due_in is not None else None,
            rule_id=(context.get("rule") or {}).get("id"), run_id=run_id,
            created_at=now, updated_at=now,
        )
        session.add(task)
        self.own_events.record(session, "task_created", {"task": task_to_dict(task, now)})
        return {"task_id": task.id, "assignee_id": assignee, "title": task.title,
                "due_at": iso(task.due_at)}

    def notify(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
        spec: list[str], extra_recipients: list[str] | None = None,
    ) -> dict[str, Any]:
        """In-app notifications, an email delivery and a webhook delivery (both sent by the
        delivery loop, which sends the emails due together over one SMTP connection)."""
        now = self.clock.now()
        channels = action.get("channels") or ["in_app"]
        record = context.get("record") or {}
        users = extra_recipients if extra_recipients is not None else recipients(
            session, spec, context)
        rule_authority = effective_authority(session, context.get("authority"))
        users, left_out = rule_authority.within(users, directory(session).users)
        if not users and "webhook" not in channels:
            raise Skipped(f"no recipients for {spec}" + (
                f" within the rule's authority (left out: {', '.join(left_out)})"
                if left_out else ""))
        values = template_context(session, self.clock, context)
        title = render(action["title"], values)[:300]
        body = render(action.get("body"), values)
        notification_ids = []
        if "in_app" in channels:
            for user_id in users:
                row = {
                    "id": new_id(), "user_id": user_id, "title": title, "body": body or None,
                    "record_type": context.get("record_type"),
                    "record_id": str(record["id"]) if record.get("id") else None,
                    "rule_id": (context.get("rule") or {}).get("id"), "run_id": run_id,
                    "created_at": now,
                }
                defer_insert(session, NOTIFICATIONS, row)
                notification_ids.append(row["id"])
                self.own_events.record(session, "notification_created", {
                    "notification": notification_to_dict(SimpleNamespace(**row, read_at=None))})
        addresses: list[str] = []
        email_ids: list[str] = []
        if "email" in channels:
            people = directory(session).users
            addresses = sorted({people[u].email for u in users
                                if u in people and people[u].email})
            if addresses:
                email_ids.append(new_id())
                defer_insert(session, EMAILS, {
                    "id": email_ids[-1], "recipients": addresses, "subject": title,
                    "text": body or title, "status": "pending", "attempts": 0,
                    "next_attempt_at": now, "run_id": run_id, "created_at": now,
                })
        webhook_id = None
        if "webhook" in channels:
            sub = session.get(WebhookSubscription, action.get("subscription_id"))
            if sub is None or not sub.active:
                raise PermanentFailure("the webhook subscription is missing or disabled")
            if not Authority.of(sub.authority).managed_by(rule_authority):
                raise PermanentFailure("the webhook subscription is not the rule author's")
            webhook_id = "msg_" + uuid.uuid4().hex
            session.add(WebhookDelivery(
                id=webhook_id, subscription_id=sub.id, event_id=None,
                event_type="rules.notification",
                body=json.dumps({"type": "rules.notification", "title": title,
                                 "body": body, "record": record,
                                 "rule": context.get("rule")}, ensure_ascii=False),
                status="pending", attempts=0, next_attempt_at=now, attempt_log=[],
                created_at=now))
        outcome = {"recipients": users, "notifications": notification_ids,
                   "emails": addresses, "email_deliveries": email_ids,
                   "webhook_delivery": webhook_id, "title": title}
        if left_out:
            outcome["left_out"] = left_out  # outside the rule's authority
        return outcome

    def escalate(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
    ) -> dict[str, Any]:
        record = context.get("record") or {}
        chain = manager_chain(session, record.get("owner_id"), action.get("levels", 1))
        raised = 0
        if action.get("raise_priority", True) and record.get("id"):
            raised = session.execute(
                update(Task).where(Task.record_id == str(record["id"]), Task.status == "open")
                .values(priority="urgent", updated_at=self.clock.now())
            ).rowcount
        if not chain:
            raise Skipped("the owner has no manager to escalate to")
        result = self.notify(session, action, context, run_id, [], extra_recipients=chain)
        return {**result, "manager_chain": chain, "tasks_raised": raised}
