"""The rules service's contract: the marshmallow schemas of its RPC payloads (the gateway
reuses them for its OpenAPI document), the schemas of the events it publishes (exchange
`rules.events`) and the constants callers need to build payloads. Nothing else: the gateway
imports only this module of the rules service."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.rules.domain.rules import ACTION_TYPES, PRIORITIES, TRIGGER_TYPES
from shared.kernel.schemas import PageSchema, ScopeSchema, StrictSchema

__all__ = ["PageSchema", "ScopeSchema", "StrictSchema"]  # re-exported: the kernel's

RUN_STATUSES = ("running", "retrying", "completed", "failed", "stopped", "no_match", "error")
TASK_STATUSES = ("open", "done")
RECORD_TYPES = ("lead", "customer", "opportunity", "contact", "ticket", "contract")


class TriggerSchema(Schema):
    """A trigger; the fields depend on `type` (checked by the rules service)."""

    class Meta:
        unknown = "include"

    type = fields.String(required=True, validate=validate.OneOf(TRIGGER_TYPES),
                         metadata={"description": "event, delay, date or schedule"})
    event = fields.String(metadata={"description": "event: 'leads.lead_created' (or a pattern)"})
    field = fields.String(metadata={"description": "event: changed field; date: date field"})
    to = fields.Raw(metadata={"description": "event: the value the field changes to"})
    events = fields.List(fields.String(),
                         metadata={"description": "delay/date: events that start the wait"})
    delay = fields.Raw(metadata={"description": "delay: 72h, 30d, 15m or seconds"})
    unless = fields.List(fields.String(),
                         metadata={"description": "delay: events that cancel the wait"})
    record = fields.String(metadata={"description": "delay/date: record type (lead, contact)"})
    offset_days = fields.Integer(metadata={"description": "date: -3 = three days before"})
    offset_months = fields.Integer()
    at = fields.String(metadata={"description": "date: local time of day HH:MM (09:00), or "
                                 "'exact': at the instant in the field (an ISO timestamp)"})
    yearly = fields.Boolean(metadata={"description": "date: every year (birthdays)"})
    cron = fields.String(metadata={"description": "schedule: cron expression (local time)"})


class ActionSchema(Schema):
    class Meta:
        unknown = "include"

    type = fields.String(required=True, validate=validate.OneOf(ACTION_TYPES))


class RuleInputSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=4000))
    enabled = fields.Boolean(load_default=True)
    key = fields.String(allow_none=True, validate=validate.Length(max=100),
                        metadata={"description": "a stable handle (shipped rules)"})
    trigger = fields.Dict(required=True, metadata={"description": "see TriggerSchema"})
    conditions = fields.String(load_default="", validate=validate.Length(max=2000),
                               metadata={"description": 'e.g. source == "website" and '
                                                        'score >= 80'})
    actions = fields.List(fields.Dict(), required=True,
                          metadata={"description": "ordered actions, see ActionSchema"})


class DryRunSchema(StrictSchema):
    definition = fields.Dict(allow_none=True,
                             metadata={"description": "an unsaved rule (else the saved one)"})
    event_id = fields.String(allow_none=True, metadata={"description": "a past event"})
    sample = fields.Dict(allow_none=True,
                         metadata={"description": "an event: {event_type: 'leads.lead_created',"
                                                  " data: {...}}"})

    @validates_schema
    def _one_source(self, data: dict, **_: object) -> None:
        if bool(data.get("event_id")) == bool(data.get("sample")):
            raise ValidationError("give either event_id or sample", "event_id")


class RuleFiltersSchema(StrictSchema):
    enabled = fields.Boolean()
    trigger_type = fields.String(validate=validate.OneOf(TRIGGER_TYPES))


class RunFiltersSchema(StrictSchema):
    rule_id = fields.String()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    event_id = fields.String()
    record_key = fields.String(metadata={"description": "e.g. lead:<id>"})
    correlation_id = fields.String()
    matched = fields.Boolean()


class TaskFiltersSchema(StrictSchema):
    record_type = fields.String(validate=validate.OneOf(RECORD_TYPES))
    record_id = fields.String()
    assignee_id = fields.String()
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    overdue = fields.Boolean()


TASK_RECORDS_MAX = 100


class TaskRecordSchema(StrictSchema):
    record_type = fields.String(required=True, validate=validate.OneOf(RECORD_TYPES))
    record_id = fields.String(required=True, validate=validate.Length(min=1, max=200))


class TaskRpcFiltersSchema(TaskFiltersSchema):
    """`list_tasks` over RPC: the HTTP filters, and `records`, the tasks on any of up to
    TASK_RECORDS_MAX records at once (a customer's 360 view asks for its own, its converted
    leads' and its open opportunities' in one call)."""

    records = fields.List(fields.Nested(TaskRecordSchema),
                          validate=validate.Length(min=1, max=TASK_RECORDS_MAX))


class SnoozeSchema(StrictSchema):
    until = fields.AwareDateTime(required=True, default_timezone=None)


class WebhookInputSchema(StrictSchema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    event_types = fields.List(
        fields.String(validate=validate.Regexp(r"^[a-z_*]+\.[a-z_*]+$",
                                               error="'<service>.<event_type>', '*' allowed")),
        required=True, validate=validate.Length(min=1),
    )
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    active = fields.Boolean(load_default=True)


class WebhookUpdateSchema(StrictSchema):
    url = fields.Url(schemes={"http", "https"}, require_tld=False)
    event_types = fields.List(fields.String(), validate=validate.Length(min=1))
    description = fields.String(allow_none=True)
    active = fields.Boolean()


class MemberSettingsSchema(StrictSchema):
    capacity = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=100000),
                              metadata={"description": "open leads at most; null = unlimited"})
    out_of_office_until = fields.AwareDateTime(allow_none=True)


class TaskCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    description = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True, validate=validate.OneOf(RECORD_TYPES))
    record_id = fields.String(allow_none=True)
    assignee_id = fields.String(required=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    due_at = fields.AwareDateTime(allow_none=True)


# --------------------------------------------------------------------------- events out


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


EVENT_NAME_PATTERN = validate.Regexp(
    r"^[a-z0-9_*?.\[\]-]{1,160}$",
    error="an event name '<service>.<event_type>' or a pattern such as 'leads.*'")
MAX_RECENT_EVENTS = 50


class RecentEventsQuerySchema(StrictSchema):
    """Which recent events (the rules service's event log, kept for dry runs) to list."""

    event = fields.List(fields.String(validate=EVENT_NAME_PATTERN), load_default=list,
                        validate=validate.Length(max=20), metadata={
                            "description": "the trigger's event names or patterns "
                                           "(leads.lead_created, leads.*); none: every event"})
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_RECENT_EVENTS))


class RecentEventSchema(Schema):
    event_id = fields.String(required=True)
    event_name = fields.String(required=True, metadata={"description": "<producer>.<event_type>"})
    event_type = fields.String(required=True)
    producer = fields.String(required=True)
    occurred_at = fields.String(allow_none=True)
    received_at = fields.String(required=True)
    actor = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    record_key = fields.String(allow_none=True, metadata={
        "description": "the record the event is about (lead:<id>), if any"})


class RecentEventListSchema(Schema):
    items = fields.List(fields.Nested(RecentEventSchema), required=True)
