"""HTTP schemas of the leads routes, the errors and the system routes; the OpenAPI document is
generated from these same classes (the convention: services/gateway/http_schemas.py; identity's
are services/gateway/identity/schemas.py, the other areas' beside their routes in resources/).

Size limits: every free-form JSON object a client can store (lead `attributes`, follow-up key
points, rule definitions...) is a `JsonObject` (from shared/payloads.py, so a service's own
schema can use the same field): bounded properties, key and string lengths, list lengths,
depth and encoded bytes, all written into the OpenAPI document. Every text field has a
maximum length (`text()`).
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from services.gateway.http_schemas import StrictSchema, page_of, paged, text
from services.leads import contract as lead_schemas
from services.leads.contract import LEAD_STATUSES, ON_DUPLICATE
from shared.payloads import JsonObject

__all__ = ["JsonObject", "ProblemSchema", "StrictSchema", "text"]


# -- leads ---------------------------------------------------------------------------------


LEAD_ATTRIBUTES = {"max_properties": 50, "max_string_length": 2000, "max_bytes": 16 * 1024}


class LeadCreateSchema(lead_schemas.LeadCreateSchema):
    """The leads service's own capture schema, plus how to treat a duplicate."""

    attributes = JsonObject(
        load_default=dict, metadata={"description": "free-form attributes, usable in scoring"},
        **LEAD_ATTRIBUTES,
    )
    on_duplicate = fields.String(
        validate=validate.OneOf(ON_DUPLICATE),
        metadata={"description": "May also be given as a query parameter; the body wins."},
    )


class OnDuplicateQuerySchema(StrictSchema):
    on_duplicate = fields.String(validate=validate.OneOf(ON_DUPLICATE))


LeadListQuerySchema = paged(lead_schemas.LeadFiltersSchema, "LeadListQuerySchema",
                            cursor_min_length=0)


class BehaviourSchema(lead_schemas.BehaviourSchema):
    attributes = JsonObject(load_default=dict, **LEAD_ATTRIBUTES)


BehaviourCreateSchema = BehaviourSchema


class StatusChangeSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(LEAD_STATUSES))
    reason = text(500, allow_none=True)


class ReleaseSchema(StrictSchema):
    reason = text(500, allow_none=True)


class AssignSchema(StrictSchema):
    owner_id = text(64, required=True)


class MergeSchema(StrictSchema):
    source_id = text(64, required=True, metadata={"description": "Lead merged into this one."})


class LeadSchema(lead_schemas.LeadSchema):
    """A lead as the leads service returns it; passed through, never reshaped."""

    score_breakdown = fields.Raw(metadata={"description": "Only on GET /leads/{id}."})
    behaviours = fields.Raw(metadata={"description": "Only on GET /leads/{id}."})
    history = fields.Raw(metadata={"description": "Only on GET /leads/{id}."})


LeadPageSchema = page_of(LeadSchema, "LeadPageSchema")


class ScoringModelSchema(Schema):
    """The leads service owns the model's shape and validates it; the gateway passes it on."""

    class Meta:
        unknown = INCLUDE


# -- errors --------------------------------------------------------------------------------


class ProblemSchema(Schema):
    """An error (RFC 9457), sent as application/problem+json; extra members by problem type."""

    class Meta:
        ordered = True
        unknown = INCLUDE

    type = fields.String(required=True, metadata={
        "description": "urn:problem-type:crm:<kind> (validation-failed, not-found, ...)"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(metadata={"description": "The request path."})
    correlation_id = fields.String()
    errors = fields.Dict(
        keys=fields.String(), values=fields.Raw(),
        metadata={"description": "422: {field: [messages]}; a nested field is named by its "
                                 "path (`attributes.size`, `items[2]`)."},
    )


# -- system --------------------------------------------------------------------------------


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict()


class EchoSchema(Schema):
    class Meta:
        unknown = INCLUDE
