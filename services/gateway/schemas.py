"""HTTP payload schemas; the OpenAPI document is generated from these same classes."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from services.gateway.models import ROLES
from services.leads import schemas as lead_schemas
from services.leads.domain import LEAD_STATUSES
from services.leads.schemas import ON_DUPLICATE

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


class LeadCreateSchema(lead_schemas.LeadCreateSchema):
    """The leads service's own capture schema, plus how to treat a duplicate."""

    on_duplicate = fields.String(
        validate=validate.OneOf(ON_DUPLICATE),
        metadata={"description": "May also be given as a query parameter; the body wins."},
    )


class OnDuplicateQuerySchema(StrictSchema):
    on_duplicate = fields.String(validate=validate.OneOf(ON_DUPLICATE))


class LeadListQuerySchema(lead_schemas.LeadFiltersSchema):
    cursor = text(1000)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


BehaviourCreateSchema = lead_schemas.BehaviourSchema


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


# -- system --------------------------------------------------------------------------------


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict()


class EchoSchema(Schema):
    class Meta:
        unknown = INCLUDE
