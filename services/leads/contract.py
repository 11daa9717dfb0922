"""The leads service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. Nothing else: the gateway (and any other party) imports this
module and no other of the leads service, so it depends on nothing of the service itself.

Events go to the exchange `leads.events` with the event type as routing key. Every lead event
carries a snapshot of the lead, so subscribers (rules, integrators) need no call back to
evaluate conditions on it. The caller's scope and a list's page are the kernel's
(`shared.kernel.schemas.ScopeSchema`, `PageSchema`; services/leads/README.md says what a scope
lets a caller see).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.kernel.schemas import StrictSchema
from shared.payloads import Timestamp

__all__ = [
    "EVENT_SCHEMAS",
    "LEAD_STATUSES",
    "ON_DUPLICATE",
    "QUALIFICATIONS",
    "BehaviourSchema",
    "LeadCreateSchema",
    "LeadFiltersSchema",
    "LeadSchema",
]

LEAD_STATUSES = ("new", "contacted", "qualified", "disqualified", "converted")
# What a capture does with a duplicate: refuse it (Conflict), merge it into the stored lead,
# or store it anyway.
ON_DUPLICATE = ("reject", "merge", "create")
# In rising order: a lead only ever moves up automatically.
QUALIFICATIONS = ("mql", "sql")
short_text = validate.Length(min=1, max=200)


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


# --------------------------------------------------------------------------------------------
# Events (exchange `leads.events`, routing key = event type)
# --------------------------------------------------------------------------------------------


class LeadEvent(Schema):
    lead = fields.Nested(LeadSchema, required=True)


class LeadCreated(LeadEvent):
    """A lead was captured (after normalisation, dedupe and the first scoring)."""

    duplicate_of = fields.List(fields.String(), metadata={"description": "possible duplicates"})


class LeadScored(LeadEvent):
    """The score of a lead changed."""

    score = fields.Integer(required=True)
    previous_score = fields.Integer(required=True)
    reason = fields.String(required=True, metadata={"description": "behaviour, model_changed..."})


class LeadQualified(LeadEvent):
    """The score crossed a threshold upwards: the lead became MQL or SQL."""

    qualification = fields.String(required=True)
    previous_qualification = fields.String(allow_none=True)


class LeadBehaviourRecorded(LeadEvent):
    """A behaviour (page visit, download, webinar...) was recorded for a lead."""

    behaviour_type = fields.String(required=True)
    occurred_at = fields.String(required=True)


class LeadStatusChanged(LeadEvent):
    """A user or a rule moved the lead to another status (contacted, disqualified...)."""

    status = fields.String(required=True)
    previous_status = fields.String(required=True)
    reason = fields.String(allow_none=True)


class LeadAssigned(LeadEvent):
    """The lead was given to an owner by a manager, an admin or a rule."""

    owner_id = fields.String(required=True)
    previous_owner_id = fields.String(allow_none=True)


class LeadClaimed(LeadEvent):
    """A user took the lead from the public pool (公海)."""

    owner_id = fields.String(required=True)


class LeadReleased(LeadEvent):
    """The lead went back to the public pool (公海)."""

    previous_owner_id = fields.String(required=True)
    reason = fields.String(allow_none=True)


class LeadMerged(LeadEvent):
    """A duplicate was merged into the lead of the snapshot, which survives."""

    source_id = fields.String(
        required=True, allow_none=True,
        metadata={"description": "the merged lead; null when a new capture was merged in"},
    )


class ScoringModelChanged(Schema):
    """A new version of the scoring model was saved and open leads were rescored."""

    version = fields.Integer(required=True)
    rescored = fields.Integer(required=True, metadata={"description": "leads whose score moved"})


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "lead_created": LeadCreated,
    "lead_scored": LeadScored,
    "lead_qualified": LeadQualified,
    "lead_behaviour_recorded": LeadBehaviourRecorded,
    "lead_status_changed": LeadStatusChanged,
    "lead_assigned": LeadAssigned,
    "lead_claimed": LeadClaimed,
    "lead_released": LeadReleased,
    "lead_merged": LeadMerged,
    "scoring_model_changed": ScoringModelChanged,
}
