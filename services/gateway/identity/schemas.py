"""HTTP schemas of identity's routes: sign-in, the caller, users, teams and API keys."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.gateway.http_schemas import CURSOR_DESCRIPTION, StrictSchema, page_of, paged, text
from services.gateway.identity.models import ROLES

USERNAME = validate.Regexp(
    r"^[A-Za-z0-9_.\-]{3,64}$", error="3-64 characters: letters, digits, '_', '.', '-'."
)


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
    locked = fields.Boolean(metadata={
        "description": "in the user list and a user's read (admins and managers): sign-ins "
                       "are locked after failed attempts until `locked_until`; POST "
                       "/users/{id}/unlock lifts it"})
    locked_until = fields.AwareDateTime(allow_none=True)


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


class ApiKeyFilters(StrictSchema):
    user_id = text(36)
    include_revoked = fields.Boolean(load_default=False)


# Its cursors are short (a time and an id): bounded well under what a request line may carry.
ApiKeyQuerySchema = paged(ApiKeyFilters, "ApiKeyQuerySchema", default_limit=50,
                          cursor_max_length=200, cursor_description=CURSOR_DESCRIPTION)


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


UserPageSchema = page_of(UserSchema, "UserPageSchema")
TeamPageSchema = page_of(TeamSchema, "TeamPageSchema")
ApiKeyPageSchema = page_of(ApiKeySchema, "ApiKeyPageSchema")


class UnblockSchema(StrictSchema):
    address = fields.String(required=True, validate=validate.Length(min=1, max=100),
                            metadata={"description": "Client address as the gateway sees it."})


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, load_only=True,
                                     validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, load_only=True,
                                 validate=validate.Length(min=8, max=256))
