"""HTTP schemas of the rules routes (resources/rules.py): the rules service's own payload
schemas where it has them, and the gateway's description of what it answers."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.gateway.http_schemas import StrictSchema, page_of, paged
from services.rules import contract as rules_schemas

# The rules lists document an unbounded cursor and no default limit (50 when absent).
RULES_PAGING = {"cursor_max_length": None, "default_limit": None}


class RuleWriteSchema(rules_schemas.RuleInputSchema):
    """A rule: a trigger, conditions (an expression) and ordered actions."""


class RuleSchema(Schema):
    id = fields.String()
    key = fields.String(allow_none=True)
    name = fields.String()
    description = fields.String(allow_none=True)
    enabled = fields.Boolean()
    version = fields.Integer(metadata={"description": "each edit is a new version"})
    trigger = fields.Dict()
    conditions = fields.String()
    actions = fields.List(fields.Dict())
    created_at = fields.String()
    updated_at = fields.String()
    updated_by = fields.String(allow_none=True)
    acts_for = fields.Dict(metadata={"description": "kind: organisation (admins' and the "
                                                    "shipped rules) or team (a manager's: "
                                                    "their teams' records only); user_id"})
    versions = fields.List(fields.Dict(), metadata={"description": "GET /rules/<id> only"})
    shipped_update_available = fields.Boolean(metadata={
        "description": "admins, a shipped rule (GET /rules and GET /rules/<id>): a new "
                       "shipped definition waits, the rule having been changed since it was "
                       "installed"})
    shipped_update = fields.Dict(metadata={
        "description": "that definition (name, description, trigger, conditions, actions), "
                       "taken by POST /rules/<id>/adopt-shipped"})


class RuleListSchema(Schema):
    items = fields.List(fields.Nested(RuleSchema))


class RuleListQuerySchema(rules_schemas.RuleFiltersSchema):
    pass


class DryRunRequestSchema(rules_schemas.DryRunSchema):
    pass


class DryRunResultSchema(StrictSchema):
    rule_version = fields.Integer(allow_none=True)
    event = fields.Dict()
    trigger = fields.Dict(metadata={"description": "matches, would_fire_at, next_at"})
    conditions = fields.Dict(metadata={"description": "expression, matched, error"})
    actions = fields.List(fields.Dict(), metadata={"description": "what each would do"})
    would_act = fields.Boolean()
    outside_authority = fields.Boolean(
        metadata={"description": "the record is outside the rule's authority: no run"})


class RunSchema(Schema):
    id = fields.String()
    rule_id = fields.String()
    rule_version = fields.Integer()
    trigger = fields.String(metadata={"description": "event, timer, schedule"})
    event_id = fields.String(allow_none=True)
    event_type = fields.String(allow_none=True)
    timer_id = fields.String(allow_none=True)
    record_key = fields.String(allow_none=True)
    matched = fields.Boolean(allow_none=True)
    status = fields.String(metadata={"description": ", ".join(rules_schemas.RUN_STATUSES)})
    reason = fields.String(allow_none=True, metadata={"description": "why stopped / failed"})
    actions = fields.List(fields.Dict(), metadata={"description": "each action's outcome"})
    correlation_id = fields.String(allow_none=True)
    causation_depth = fields.Integer()
    started_at = fields.String()
    finished_at = fields.String(allow_none=True)
    duration_ms = fields.Float(allow_none=True)


RunPageSchema = page_of(RunSchema, "RunPageSchema")


RunQuerySchema = paged(rules_schemas.RunFiltersSchema, "RunQuerySchema", **RULES_PAGING)


class TaskSchema(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    assignee_id = fields.String(allow_none=True)
    status = fields.String()
    priority = fields.String()
    due_at = fields.String(allow_none=True)
    snoozed_until = fields.String(allow_none=True)
    overdue = fields.Boolean()
    rule_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()
    completed_at = fields.String(allow_none=True)
    completed_by = fields.String(allow_none=True)


TaskPageSchema = page_of(TaskSchema, "TaskPageSchema")


TaskQuerySchema = paged(
    rules_schemas.TaskFiltersSchema, "TaskQuerySchema",
    extra={"mine": fields.Boolean(metadata={"description": "only the caller's tasks"})},
    **RULES_PAGING,
)


class TaskCreateSchema(rules_schemas.TaskCreateSchema):
    pass


class ReassignSchema(StrictSchema):
    assignee_id = fields.String(required=True, validate=validate.Length(min=1))


class SnoozeSchema(StrictSchema):
    until = fields.AwareDateTime(required=True)


class NotificationSchema(Schema):
    id = fields.String()
    user_id = fields.String()
    title = fields.String()
    body = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    rule_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    created_at = fields.String()
    read_at = fields.String(allow_none=True)


NotificationPageSchema = page_of(NotificationSchema, "NotificationPageSchema")


NotificationQuerySchema = paged(StrictSchema, "NotificationQuerySchema",
                                extra={"unread": fields.Boolean()}, **RULES_PAGING)


class WebhookCreateSchema(rules_schemas.WebhookInputSchema):
    pass


class WebhookUpdateSchema(rules_schemas.WebhookUpdateSchema):
    pass


class WebhookSchema(Schema):
    id = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    description = fields.String(allow_none=True)
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    created_at = fields.String()
    created_by = fields.String(allow_none=True)
    acts_for = fields.Dict(metadata={"description": "organisation (every event) or team (a "
                                                    "manager's: events about their teams' "
                                                    "records only)"})


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "whsec_...; shown in this answer only"})


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema))


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "the webhook-id header sent"})
    subscription_id = fields.String()
    event_id = fields.String(allow_none=True)
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, sending, delivered, failed"})
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempt_log = fields.List(fields.Dict())
    created_at = fields.String()
    delivered_at = fields.String(allow_none=True)


DeliveryPageSchema = page_of(DeliverySchema, "DeliveryPageSchema")


DeliveryQuerySchema = paged(StrictSchema, "DeliveryQuerySchema", extra={
    "status": fields.String(validate=validate.OneOf(("pending", "sending", "delivered",
                                                     "failed")))}, **RULES_PAGING)


class MemberSettingsWriteSchema(rules_schemas.MemberSettingsSchema):
    pass


class MemberSettingsSchema(Schema):
    user_id = fields.String()
    username = fields.String()
    team_id = fields.String(allow_none=True)
    active = fields.Boolean()
    capacity = fields.Integer(allow_none=True)
    out_of_office_until = fields.String(allow_none=True)
    open_leads = fields.Integer()


class ClockAdvanceSchema(StrictSchema):
    advance_seconds = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False)
    )


class ClockSchema(Schema):
    now = fields.String()
    offset_seconds = fields.Float()
    controllable = fields.Boolean()
