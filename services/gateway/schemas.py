"""HTTP payload schemas; the OpenAPI document is generated from these same classes.

Size limits: every free-form JSON object a client can store (lead `attributes`, follow-up key
points, rule definitions...) is a `JsonObject` (from shared/payloads.py, so a service's own
schema can use the same field): bounded properties, key and string lengths, list lengths,
depth and encoded bytes, all written into the OpenAPI document. Every text field has a
maximum length (`text()`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from services.gateway.models import ROLES
from services.leads import contract as lead_schemas
from services.leads.contract import LEAD_STATUSES, ON_DUPLICATE
from shared.payloads import JsonObject

__all__ = ["JsonObject", "ProblemSchema", "StrictSchema", "text"]

USERNAME = validate.Regexp(
    r"^[A-Za-z0-9_.\-]{3,64}$", error="3-64 characters: letters, digits, '_', '.', '-'."
)


def text(
    max_len: int, *, required: bool = False, min_len: int | None = None, **kw: Any
) -> fields.String:
    return fields.String(
        required=required,
        validate=validate.Length(
            min=min_len if min_len is not None else (1 if required else 0), max=max_len
        ),
        **kw,
    )


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


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


class LeadListQuerySchema(lead_schemas.LeadFiltersSchema):
    cursor = text(1000)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


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


class LeadPageSchema(Schema):
    items = fields.List(fields.Nested(LeadSchema))
    next_cursor = fields.String(allow_none=True)


class ScoringModelSchema(Schema):
    """The leads service owns the model's shape and validates it; the gateway passes it on."""

    class Meta:
        unknown = INCLUDE


# -- identities ----------------------------------------------------------------------------


class TokenRequestSchema(StrictSchema):
    username = text(64, required=True)
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=256)
    )


class TokenSchema(Schema):
    token = fields.String()
    token_type = fields.String()
    expires_at = fields.AwareDateTime()


class UserSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    username = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    role = fields.String(metadata={"enum": list(ROLES)})
    team_id = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.AwareDateTime()


class MeSchema(UserSchema):
    auth = fields.String(metadata={"enum": ["api_key", "token"]})
    scope = fields.Dict(metadata={"description": "Lead visibility passed to the leads service."})


class UserCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=USERNAME)
    display_name = text(200, required=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=256))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    team_id = text(36, allow_none=True)


class UserPatchSchema(StrictSchema):
    display_name = text(200, min_len=1)
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=256))
    role = fields.String(validate=validate.OneOf(ROLES))
    team_id = text(36, allow_none=True)
    active = fields.Boolean()


class TeamCreateSchema(StrictSchema):
    name = text(200, required=True)
    manager_id = text(36, allow_none=True)


class TeamPatchSchema(StrictSchema):
    name = text(200)
    manager_id = text(36, allow_none=True)


class TeamSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    name = fields.String()
    manager_id = fields.String(allow_none=True)
    member_ids = fields.List(fields.String())
    created_at = fields.AwareDateTime()


class ApiKeyCreateSchema(StrictSchema):
    name = text(200, required=True)
    user_id = text(36, metadata={"description": "Admins only: create a key for another user."})


class ApiKeyQuerySchema(StrictSchema):
    user_id = text(36)
    include_revoked = fields.Boolean(load_default=False)


class ApiKeySchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    user_id = fields.String()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.AwareDateTime()
    last_used_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "Shown once; only its hash is stored."})


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
