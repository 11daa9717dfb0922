"""The payloads of the sales service's RPC methods and the constants a caller needs to build
one. Money travels as a decimal string ("12345.67") with an ISO 4217 currency; custom field
values are a free-form `custom` object checked against the definitions the numbers part keeps.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.kernel.schemas import PageSchema, ScopeSchema, StrictSchema
from shared.payloads import PassesFormatted, Timestamp

__all__ = ["PageSchema", "ScopeSchema", "StrictSchema"]  # the kernel's, as sales loads them

TIERS = ("A", "B", "C")
LIFECYCLE_STAGES = ("prospect", "customer", "advocate", "churned")
CONTACT_ROLES = (
    "decision_maker",
    "technical_evaluator",
    "user",
    "business_approver",
    "influencer",
)
CHANNELS = ("phone", "email", "wechat")
STAGE_KINDS = ("open", "won", "lost")
FOLLOWUP_KINDS = ("call", "email", "meeting", "visit", "note")
ON_DUPLICATE = ("reject", "create")
# The answer for an owner or author a caller may not give records to, the same as for a user
# that does not exist (the gateway's and the service's): another team's user ids are hidden.
NO_SUCH_USER = "no such active user in your view"
OPPORTUNITY_STATUSES = ("open", "won", "lost")
short_text = validate.Length(min=1, max=200)
currency_code = validate.Regexp(r"^[A-Z]{3}$", error="an ISO 4217 code such as CNY or USD")


def optional_text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(
        allow_none=True, validate=validate.Length(max=max_length), **kwargs
    )


def string_list(max_items: int = 50, max_length: int = 100, **kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=max_length)),
        validate=validate.Length(max=max_items),
        **kwargs,
    )


class DateField(PassesFormatted, fields.Date):
    """An ISO date."""


class Money(PassesFormatted, fields.Decimal):
    """A decimal with two places, as a string on the way out; numbers or strings on the way in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(places=2, as_string=True, allow_nan=False, **kwargs)


# -- customers -------------------------------------------------------------------------------


def custom_values(entity: str) -> fields.Dict:
    """The free-form `custom` object of a record; its keys and rules are described by the
    gateway's `components.schemas.CustomFields` (made from the definitions)."""
    return fields.Dict(keys=fields.String(), metadata={"description": (
        f"custom field values keyed by field key; the {entity} fields defined now and their "
        f"rules: components.schemas.CustomFields.properties.{entity}, GET /custom-fields")})


CUSTOM_FILTER_DOC = (
    "custom-field filters: {\"<key>\": value} or {\"<key>__<op>\": value}, op one of eq, ne, "
    "gte, lte, in (comma-separated), contains, exists; over HTTP `custom.<key>[__op]=value`"
)


def custom_filters() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Raw(),
                       metadata={"description": CUSTOM_FILTER_DOC})


class CustomerWriteSchema(StrictSchema):
    name = fields.String(validate=short_text)
    credit_code = fields.String(
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"description": "统一社会信用代码, 18 characters with a check digit"},
    )
    tier = fields.String(allow_none=True, validate=validate.OneOf(TIERS))
    lifecycle_stage = fields.String(validate=validate.OneOf(LIFECYCLE_STAGES))
    tags = string_list(30, 32)
    region = optional_text(64)
    industry = optional_text(64)
    source = optional_text(64, metadata={"description": "channel the customer came from"})
    campaign = optional_text(128)
    phone = optional_text(40)
    website = optional_text(300)
    address = optional_text(500)
    custom = custom_values("customer")


class CustomerCreateSchema(CustomerWriteSchema):
    name = fields.String(required=True, validate=short_text)
    lifecycle_stage = fields.String(
        load_default="prospect", validate=validate.OneOf(LIFECYCLE_STAGES)
    )
    owner_id = fields.String(
        load_default=None, allow_none=True, metadata={"description": "default: the caller"}
    )
    team_id = fields.String(load_default=None, allow_none=True)


class CustomerSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    name = fields.String()
    credit_code = fields.String(allow_none=True)
    tier = fields.String(allow_none=True, metadata={"enum": list(TIERS)})
    lifecycle_stage = fields.String(metadata={"enum": list(LIFECYCLE_STAGES)})
    tags = fields.List(fields.String())
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    campaign = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    custom = custom_values("customer")
    merged_into_id = fields.String(allow_none=True)
    last_activity_at = Timestamp(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class CustomerFiltersSchema(StrictSchema):
    q = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "text over name, its key and tags; Chinese works"},
    )
    tier = fields.String(validate=validate.OneOf(TIERS))
    lifecycle_stage = fields.String(validate=validate.OneOf(LIFECYCLE_STAGES))
    owner_id = fields.String()
    team_id = fields.String()
    tag = fields.String(validate=validate.Length(min=1, max=32))
    region = fields.String()
    industry = fields.String()
    source = fields.String()
    credit_code = fields.String()
    created_from = fields.AwareDateTime()
    created_to = fields.AwareDateTime()
    include_merged = fields.Boolean(load_default=False)
    custom = custom_filters()


class TagChangeSchema(StrictSchema):
    add = string_list(30, 32, load_default=list)
    remove = string_list(30, 32, load_default=list)


# -- contacts --------------------------------------------------------------------------------


class ContactWriteSchema(StrictSchema):
    name = fields.String(validate=short_text)
    title = optional_text(200)
    role = fields.String(
        allow_none=True,
        validate=validate.OneOf(CONTACT_ROLES),
        metadata={"description": "role in the decision chain"},
    )
    phone = optional_text(40, metadata={"description": "stored as E.164, region CN by default"})
    email = fields.String(
        allow_none=True, validate=validate.Length(max=254), metadata={"format": "email"}
    )
    wechat = optional_text(64)
    preferred_channel = fields.String(allow_none=True, validate=validate.OneOf(CHANNELS))
    birthday = fields.Date(allow_none=True)
    consent = fields.Boolean(metadata={"description": "agreed to be contacted"})
    custom = custom_values("contact")


class ContactCreateSchema(ContactWriteSchema):
    customer_id = fields.String(required=True)
    name = fields.String(required=True, validate=short_text)
    consent = fields.Boolean(load_default=False)
    owner_id = fields.String(load_default=None, allow_none=True)


class ContactSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    customer_id = fields.String()
    name = fields.String()
    title = fields.String(allow_none=True)
    role = fields.String(allow_none=True, metadata={"enum": list(CONTACT_ROLES)})
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    wechat = fields.String(allow_none=True)
    preferred_channel = fields.String(allow_none=True, metadata={"enum": list(CHANNELS)})
    birthday = DateField(allow_none=True)
    consent = fields.Boolean()
    custom = custom_values("contact")
    owner_id = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class ContactFiltersSchema(StrictSchema):
    customer_id = fields.String()
    role = fields.String(validate=validate.OneOf(CONTACT_ROLES))
    owner_id = fields.String()
    consent = fields.Boolean()
    q = fields.String(validate=validate.Length(min=1, max=200))
    custom = custom_filters()


# -- follow-ups ------------------------------------------------------------------------------


class KeyPointsSchema(StrictSchema):
    pain_points = string_list(20, 500, load_default=list)
    competitors = string_list(20, 100, load_default=list)
    objections = string_list(20, 500, load_default=list)


class CheckInSchema(StrictSchema):
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    lng = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class FollowupCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(FOLLOWUP_KINDS))
    customer_id = fields.String(load_default=None, allow_none=True)
    contact_id = fields.String(load_default=None, allow_none=True)
    opportunity_id = fields.String(load_default=None, allow_none=True)
    lead_id = fields.String(load_default=None, allow_none=True)
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)
    subject = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20000))
    tags = string_list(
        20, 64, load_default=list,
        metadata={"description": "labels stage exit criteria look for, e.g. needs_analysis"},
    )
    key_points = fields.Nested(KeyPointsSchema, load_default=dict)
    check_in = fields.Nested(
        CheckInSchema, load_default=None, allow_none=True,
        metadata={"description": "required for a visit: where the rep checked in"},
    )
    next_followup_at = fields.AwareDateTime(load_default=None, allow_none=True)
    owner_id = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _anchored(self, data: dict[str, Any], **_: Any) -> None:
        if not any(data.get(k) for k in ("customer_id", "contact_id", "opportunity_id",
                                           "lead_id")):
            message = "One of customer_id, contact_id, opportunity_id or lead_id is required."
            raise ValidationError(message, "customer_id")
        if data.get("kind") == "visit" and not data.get("check_in"):
            raise ValidationError("A visit needs a check-in {lat, lng, address}.", "check_in")


class FollowupSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    kind = fields.String(metadata={"enum": list(FOLLOWUP_KINDS)})
    customer_id = fields.String(allow_none=True)
    contact_id = fields.String(allow_none=True)
    opportunity_id = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    occurred_at = Timestamp()
    subject = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    key_points = fields.Dict()
    check_in = fields.Dict(allow_none=True)
    next_followup_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class FollowupFiltersSchema(StrictSchema):
    customer_id = fields.String()
    contact_id = fields.String()
    opportunity_id = fields.String()
    lead_id = fields.String()
    kind = fields.String(validate=validate.OneOf(FOLLOWUP_KINDS))
    owner_id = fields.String()
    occurred_from = fields.AwareDateTime()
    occurred_to = fields.AwareDateTime()


# -- pipelines -------------------------------------------------------------------------------


class ActivityCriterionSchema(Schema):
    class Meta:
        ordered = True

    kind = fields.String(metadata={"enum": list(FOLLOWUP_KINDS)})
    tag = fields.String(allow_none=True)
    min_count = fields.Integer()


class ExitCriteriaSchema(Schema):
    """Every criterion of a stage. The Python name `fields_` avoids the `fields` module; the
    value lives under "fields" both in the stored criteria (`attribute`) and on the wire."""

    class Meta:
        ordered = True

    fields_ = fields.List(
        fields.String(), data_key="fields", attribute="fields",
        metadata={"description": "opportunity fields that must be filled (custom.<key> too: "
                  "an active opportunity custom field)"},
    )
    activities = fields.List(
        fields.Nested(ActivityCriterionSchema),
        metadata={"description": "follow-ups on the opportunity that must exist"},
    )


class StageSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    name = fields.String()
    position = fields.Integer()
    probability = fields.Integer(metadata={"description": "percent"})
    kind = fields.String(metadata={"enum": list(STAGE_KINDS)})
    exit_criteria = fields.Nested(ExitCriteriaSchema)


class PipelineSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    name = fields.String()
    is_default = fields.Boolean()
    stages = fields.List(fields.Nested(StageSchema))
    created_at = Timestamp()
    updated_at = Timestamp()


class PipelineWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    is_default = fields.Boolean(load_default=False)
    stages = fields.List(
        fields.Dict(), required=True,
        metadata={"description": "ordered stages: {id?, name, probability, kind, exit_criteria}"},
    )


# -- opportunities ---------------------------------------------------------------------------


class OpportunityWriteSchema(StrictSchema):
    name = fields.String(validate=short_text)
    contact_id = fields.String(allow_none=True)
    amount = Money(allow_none=True, validate=validate.Range(min=0))
    currency = fields.String(validate=currency_code)
    expected_close_date = fields.Date(allow_none=True)
    products = string_list(50, 100)
    competitors = string_list(20, 100)
    source = optional_text(64)
    campaign = optional_text(128)
    custom = custom_values("opportunity")
    owner_id = fields.String()
    team_id = fields.String(allow_none=True)


class OpportunityCreateSchema(OpportunityWriteSchema):
    customer_id = fields.String(required=True)
    name = fields.String(required=True, validate=short_text)
    pipeline_id = fields.String(load_default=None, allow_none=True)
    stage_id = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "default: the pipeline's first stage"},
    )
    owner_id = fields.String(load_default=None, allow_none=True)
    lead_id = fields.String(load_default=None, allow_none=True)


class StageRefSchema(Schema):
    id = fields.String()
    name = fields.String()
    probability = fields.Integer()
    kind = fields.String()


class StageHistorySchema(Schema):
    stage_id = fields.String()
    stage_name = fields.String(allow_none=True)
    entered_at = Timestamp()
    left_at = Timestamp(allow_none=True)
    moved_by = fields.String(allow_none=True)


class OpportunitySchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    customer_id = fields.String()
    contact_id = fields.String(allow_none=True)
    pipeline_id = fields.String()
    stage_id = fields.String()
    stage = fields.Nested(StageRefSchema)
    name = fields.String()
    amount = Money(allow_none=True)
    currency = fields.String()
    probability = fields.Integer()
    weighted_amount = Money(allow_none=True)
    expected_close_date = DateField(allow_none=True)
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    products = fields.List(fields.String())
    competitors = fields.List(fields.String())
    source = fields.String(allow_none=True)
    campaign = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(OPPORTUNITY_STATUSES)})
    won_lost_reason = fields.String(allow_none=True)
    closed_at = Timestamp(allow_none=True)
    custom = custom_values("opportunity")
    stage_entered_at = Timestamp()
    created_at = Timestamp()
    updated_at = Timestamp()
    history = fields.List(fields.Nested(StageHistorySchema))


class OpportunityFiltersSchema(StrictSchema):
    customer_id = fields.String()
    pipeline_id = fields.String()
    stage_id = fields.String()
    status = fields.String(validate=validate.OneOf(OPPORTUNITY_STATUSES))
    owner_id = fields.String()
    team_id = fields.String()
    source = fields.String()
    lead_id = fields.String()
    close_from = fields.Date(metadata={"description": "expected close date from (inclusive)"})
    close_to = fields.Date(metadata={"description": "expected close date to (inclusive)"})
    q = fields.String(validate=validate.Length(min=1, max=200))
    custom = custom_filters()


class MoveSchema(StrictSchema):
    stage_id = fields.String(required=True)
    reason = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=2000),
        metadata={"description": "required for won and lost"},
    )


# -- lead conversion -------------------------------------------------------------------------


class ConversionOpportunitySchema(StrictSchema):
    name = fields.String(validate=short_text)
    amount = Money(allow_none=True, validate=validate.Range(min=0))
    currency = fields.String(validate=currency_code)
    expected_close_date = fields.Date(allow_none=True)
    pipeline_id = fields.String(allow_none=True)
    products = string_list(50, 100)


class ConversionOptionsSchema(StrictSchema):
    customer_id = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "link this existing customer instead of finding or creating"},
    )
    customer = fields.Nested(
        CustomerWriteSchema, load_default=dict,
        metadata={"description": "values for a new customer (name defaults to the company)"},
    )
    create_opportunity = fields.Boolean(load_default=True)
    opportunity = fields.Nested(ConversionOpportunitySchema, load_default=dict)
    owner_id = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "default: the lead's owner, else the caller"},
    )
    team_id = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "the owner's team (the gateway fills it in)"},
    )


class ConversionSchema(Schema):
    class Meta:
        ordered = True

    lead_id = fields.String()
    customer_id = fields.String()
    contact_id = fields.String(allow_none=True)
    opportunity_id = fields.String(allow_none=True)
    customer_created = fields.Boolean()
    replayed = fields.Boolean(metadata={"description": "true: the lead was converted before"})
    converted_by = fields.String(allow_none=True)
    converted_at = Timestamp()
    customer = fields.Nested(CustomerSchema)
    contact = fields.Nested(ContactSchema, allow_none=True)
    opportunity = fields.Nested(OpportunitySchema, allow_none=True)


class BoardFiltersSchema(StrictSchema):
    pipeline_id = fields.String()
    owner_id = fields.String()
    team_id = fields.String()
    customer_id = fields.String()
    close_from = fields.Date()
    close_to = fields.Date()
    include_closed = fields.Boolean(
        load_default=True, metadata={"description": "won and lost columns (closed this year)"}
    )
    per_stage = fields.Integer(load_default=50, validate=validate.Range(min=0, max=200))


