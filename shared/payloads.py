"""Loading RPC payloads at a service's edge (marshmallow errors become `ValidationFailed`), and
the fields the services' schemas share."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

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


# An ISO 8601 date-time with seconds and an explicit offset, as isoformat() writes it.
ISO_WITH_OFFSET = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"
)


def utc_iso(value: datetime | str) -> str:
    """`value` as ISO 8601 in UTC (`+00:00`). A naive datetime is taken as UTC (storage is UTC);
    a string that is not an ISO date-time with an offset is returned unchanged."""
    if isinstance(value, str):
        if value.endswith("+00:00") or not ISO_WITH_OFFSET.fullmatch(value):
            return value
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC).isoformat()
    return value.astimezone(UTC).isoformat()


class Timestamp(fields.AwareDateTime):
    """ISO 8601 in UTC, whatever offset the value was given with: a follow-up created with
    `+08:00` is answered in UTC, as it is when it is read back from storage. A value that is
    already a string passes through (normalised to UTC when it carries an offset)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str | datetime):
            return utc_iso(value)
        return super()._serialize(value, attr, obj, **kwargs)


class JsonObject(fields.Dict):
    """A free-form JSON object with bounded size: lead `attributes`, follow-up key points,
    rule definitions. Without it a 1 MB `attributes` is stored and every list that includes
    the record answers 1 MB to everyone.

    The bounds are documented in the OpenAPI document (`maxProperties`, `maxLength` of keys and
    string values, `x-max-bytes`, `x-max-depth`), and checked on load: the number of
    properties, the key length, every string's length, nesting depth, list lengths and the
    size of the whole value encoded as JSON (UTF-8).
    """

    default_error_messages = {
        "too_many_properties": "At most {limit} properties.",
        "key_too_long": "Keys are at most {limit} characters: {name!r}.",
        "string_too_long": "Strings are at most {limit} characters (at {path}).",
        "list_too_long": "Lists have at most {limit} items (at {path}).",
        "too_deep": "Nested at most {limit} levels deep (at {path}).",
        "too_large": "At most {limit} bytes as JSON; this is {size}.",
    }

    def __init__(
        self,
        *,
        max_properties: int = 50,
        max_key_length: int = 64,
        max_string_length: int = 2000,
        max_items: int = 100,
        max_depth: int = 4,
        max_bytes: int = 16 * 1024,
        **kwargs: Any,
    ) -> None:
        self.max_properties = max_properties
        self.max_key_length = max_key_length
        self.max_string_length = max_string_length
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        metadata = {
            "maxProperties": max_properties,
            "additionalProperties": {"maxLength": max_string_length},
            "x-max-key-length": max_key_length,
            "x-max-bytes": max_bytes,
            "x-max-depth": max_depth,
            **kwargs.pop("metadata", {}),
        }
        description = metadata.get("description", "")
        metadata["description"] = (
            f"{description + ' ' if description else ''}(JSON object: at most {max_properties}"
            f" properties, keys of at most {max_key_length} characters, strings of at most "
            f"{max_string_length}, lists of at most {max_items} items, {max_depth} levels, "
            f"{max_bytes} bytes as JSON.)"
        )
        super().__init__(
            keys=fields.String(validate=validate.Length(min=1, max=max_key_length)),
            metadata=metadata,
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Mapping):
            if len(value) > self.max_properties:
                raise self.make_error("too_many_properties", limit=self.max_properties)
            for key in value:
                # one message on the field, not marshmallow's nested {key: {"key": [...]}}
                if isinstance(key, str) and len(key) > self.max_key_length:
                    raise self.make_error("key_too_long", limit=self.max_key_length,
                                          name=key[:80])
        loaded = super()._deserialize(value, attr, data, **kwargs)
        self._check_nested(loaded)
        size = len(json.dumps(loaded, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.max_bytes:
            raise self.make_error("too_large", limit=self.max_bytes, size=size)
        return loaded

    def _check_nested(self, root: dict[str, Any]) -> None:
        # iterative, so no input can exhaust the stack
        stack: list[tuple[Any, str, int]] = [(root, "", 1)]
        while stack:
            value, path, depth = stack.pop()
            if isinstance(value, str):
                if len(value) > self.max_string_length:
                    raise self.make_error(
                        "string_too_long", limit=self.max_string_length, path=path)
            elif isinstance(value, dict | list):
                if depth > self.max_depth:
                    raise self.make_error("too_deep", limit=self.max_depth, path=path)
                if isinstance(value, list):
                    if len(value) > self.max_items:
                        raise self.make_error("list_too_long", limit=self.max_items, path=path)
                    children = ((f"{path}[{i}]", item) for i, item in enumerate(value))
                else:
                    if depth > 1 and len(value) > self.max_properties:
                        raise self.make_error("too_many_properties", limit=self.max_properties)
                    for key in value:
                        if not isinstance(key, str) or len(key) > self.max_key_length:
                            raise self.make_error(
                                "key_too_long", limit=self.max_key_length, name=str(key)[:80])
                    children = ((f"{path}.{k}" if path else k, v) for k, v in value.items())
                stack.extend((child, child_path, depth + 1) for child_path, child in children)
