"""Loading RPC payloads at a service's edge: marshmallow errors become `ValidationFailed`."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

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
