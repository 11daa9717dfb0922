"""Events the rules service publishes (exchange `rules.events`), with their schemas."""

from __future__ import annotations

from marshmallow import Schema, fields


class RunSchema(Schema):
    id = fields.String(required=True)
    rule_id = fields.String(required=True)
    rule_version = fields.Integer(required=True)
    trigger = fields.String(required=True, metadata={"description": "event, timer, schedule"})
    event_id = fields.String(allow_none=True)
    event_type = fields.String(allow_none=True)
    record_key = fields.String(allow_none=True)
    matched = fields.Boolean(allow_none=True)
    status = fields.String(required=True,
                           metadata={"description": "completed, failed, stopped, no_match"})
    reason = fields.String(allow_none=True)
    actions = fields.List(fields.Dict(), required=True)
    correlation_id = fields.String(allow_none=True)


class RuleRunCompleted(Schema):
    run = fields.Nested(RunSchema, required=True)


class TaskSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    assignee_id = fields.String(allow_none=True)
    status = fields.String(required=True)
    priority = fields.String(required=True)
    due_at = fields.String(allow_none=True)
    snoozed_until = fields.String(allow_none=True)
    overdue = fields.Boolean(required=True)
    rule_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    completed_at = fields.String(allow_none=True)
    completed_by = fields.String(allow_none=True)


class TaskEvent(Schema):
    task = fields.Nested(TaskSchema, required=True)


class TaskReassigned(Schema):
    task = fields.Nested(TaskSchema, required=True)
    previous_assignee_id = fields.String(allow_none=True)


class NotificationSchema(Schema):
    id = fields.String(required=True)
    user_id = fields.String(required=True)
    title = fields.String(required=True)
    body = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    rule_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    read_at = fields.String(allow_none=True)


class NotificationCreated(Schema):
    notification = fields.Nested(NotificationSchema, required=True)


class WebhookDeliveryFailed(Schema):
    delivery_id = fields.String(required=True)
    subscription_id = fields.String(required=True)
    event_type = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)


class WebhookSubscriptionDisabled(Schema):
    subscription_id = fields.String(required=True)
    reason = fields.String(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "rule_run_completed": RuleRunCompleted,
    "task_created": TaskEvent,
    "task_completed": TaskEvent,
    "task_reassigned": TaskReassigned,
    "task_snoozed": TaskEvent,
    "notification_created": NotificationCreated,
    "webhook_delivery_failed": WebhookDeliveryFailed,
    "webhook_subscription_disabled": WebhookSubscriptionDisabled,
}
