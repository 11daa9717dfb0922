"""Base marshmallow schemas of every service's RPC payloads."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 200


class StrictSchema(Schema):
    """A payload with a key the schema does not know is refused, naming the key."""

    class Meta:
        unknown = RAISE


class ScopeSchema(StrictSchema):
    """The caller's row-level visibility, as the gateway computes it (services/gateway/identity/):
    `{"all": true}`, or the owners whose records the caller sees. `include_pool`: leads in the
    public pool (公海) are visible too; `manage_pool`: the caller manages the pool (a manager may
    merge pool leads without claiming them). Services without a pool ignore both."""

    all = fields.Boolean(load_default=False)
    owner_ids = fields.List(fields.String(), load_default=list)
    include_pool = fields.Boolean(load_default=False)
    manage_pool = fields.Boolean(load_default=False)


class PageSchema(StrictSchema):
    """Keyset paging of a list RPC: the `next_cursor` of the previous page and a page size."""

    cursor = fields.String(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=PAGE_LIMIT_DEFAULT,
                           validate=validate.Range(min=1, max=PAGE_LIMIT_MAX))
