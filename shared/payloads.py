"""Loading RPC payloads at a service's edge (marshmallow errors become `ValidationFailed`), and
the fields the services' schemas share."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields

from shared.errors import ValidationFailed


def load(schema: Schema, data: Any, **kwargs: Any) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict) and not kwargs.get("many"):
        raise ValidationFailed.for_fields({"_schema": ["expected a JSON object"]})
    try:
        return schema.load(data, **kwargs)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        raise ValidationFailed.for_fields(messages) from None


class PassesFormatted:
    """Field mixin: a value that is already a string (formatted) passes through unchanged, so
    the gateway can describe and relay a service's answers with the service's own schema."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)  # type: ignore[misc]


class Timestamp(PassesFormatted, fields.AwareDateTime):
    """ISO 8601 in UTC."""
