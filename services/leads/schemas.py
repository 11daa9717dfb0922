"""Schemas of the leads service's RPC payloads (the gateway reuses them for its API docs)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.leads.domain import LEAD_STATUSES
from shared.payloads import Timestamp

ON_DUPLICATE = ("reject", "merge", "create")
QUALIFICATIONS = ("mql", "sql")
short_text = validate.Length(min=1, max=200)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class LeadCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=short_text)
    company = fields.String(load_default=None, allow_none=True, validate=short_text)
    title = fields.String(load_default=None, allow_none=True, validate=short_text)
    email = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(max=254), validate.Email()],
        metadata={"format": "email"},
    )
    phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"description": "any common notation; stored as E.164, region CN by default"},
    )
    source = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "channel: website, referral, trade_show..."},
    )
    region = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    industry = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    product_interest = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        validate=validate.Length(max=50),
    )
    campaign = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))
    attributes = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        load_default=dict,
        metadata={"description": "free-form attributes, usable in scoring"},
    )

    @validates_schema
    def _reachable(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("email") and not data.get("phone"):
            message = "At least one of email or phone is required."
            raise ValidationError({"email": [message], "phone": [message]})


class LeadSchema(Schema):
    """A lead as it leaves the service."""

    class Meta:
        ordered = True

    id = fields.String()
    name = fields.String()
    company = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "E.164"})
    source = fields.String()
    region = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    product_interest = fields.List(fields.String())
    campaign = fields.String(allow_none=True)
    attributes = fields.Dict()
    status = fields.String(metadata={"enum": list(LEAD_STATUSES)})
    disqualify_reason = fields.String(allow_none=True)
    qualification = fields.String(allow_none=True, metadata={"enum": list(QUALIFICATIONS)})
    score = fields.Integer()
    owner_id = fields.String(allow_none=True, metadata={"description": "null = public pool"})
    in_pool = fields.Boolean()
    merged_into_id = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()
    last_activity_at = Timestamp(allow_none=True)
    claimed_at = Timestamp(allow_none=True)
    conversion = fields.Dict(
        allow_none=True,
        metadata={"description": "when converted: customer_id, contact_id, opportunity_id, "
                                 "converted_by, converted_at"},
    )


class LeadFiltersSchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(LEAD_STATUSES))
    owner_id = fields.String()
    source = fields.String()
    qualification = fields.String(validate=validate.OneOf(QUALIFICATIONS))
    in_pool = fields.Boolean()
    score_min = fields.Integer()
    score_max = fields.Integer()
    created_from = fields.AwareDateTime()
    created_to = fields.AwareDateTime()
    q = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Text over name and company; Chinese works."},
    )

    @validates_schema
    def _ranges(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not exceed score_max.", "score_min")
        start, end = data.get("created_from"), data.get("created_to")
        if start is not None and end is not None and start > end:
            raise ValidationError("Must not be after created_to.", "created_from")


class BehaviourSchema(StrictSchema):
    type = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "visited_pricing_page, downloaded_whitepaper..."},
    )
    occurred_at = fields.AwareDateTime(load_default=None, allow_none=True)
    attributes = fields.Dict(load_default=dict)


class ScopeSchema(StrictSchema):
    """Row-level visibility and edit rights of the caller (services/leads/README.md)."""

    all = fields.Boolean(load_default=False)
    owner_ids = fields.List(fields.String(), load_default=list)
    include_pool = fields.Boolean(load_default=False)
    # Who manages the public pool (a manager) may merge into and from pool leads without
    # claiming them; a rep claims first.
    manage_pool = fields.Boolean(load_default=False)


class PageSchema(StrictSchema):
    cursor = fields.String(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
