"""The gateway's convention for HTTP schemas, used by every resource module.

- Bodies and queries the gateway defines are `StrictSchema`s (the shared kernel's: an unknown
  key is refused, naming it); what a service defines comes from its contract.
- Every text field has a maximum length: `text()`.
- Every list answers `{items, next_cursor}`: `page_of(item, name)`; its query is the list's
  filters plus `cursor` and `limit`: `paged(filters, name)`, or `PageQuerySchema` when it has
  no filters. `page_fields()` are those two parameters; the options keep what each list
  documents today (see the README's "HTTP schemas").

The OpenAPI component of a schema is named by its class name without "Schema", so `name`
decides what integrators see: keep it when moving a schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate

from shared.kernel.schemas import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, StrictSchema

__all__ = [
    "CURSOR_MAX_LENGTH", "PageQuerySchema", "StrictSchema", "page_fields", "page_of", "paged",
    "text",
]

CURSOR_MAX_LENGTH = 1000
CURSOR_DESCRIPTION = "`next_cursor` of the previous page."
# Every cursor a list hands out is URL-safe base64; anything else is refused before a service
# sees it (and a cursor of multi-byte characters would make a request line gunicorn refuses).
CURSOR_PATTERN = validate.Regexp(
    r"^[A-Za-z0-9_-]*={0,2}$",
    error="A cursor is the `next_cursor` of a previous page: URL-safe base64 (A-Z, a-z, 0-9, "
          "'-', '_' and up to two '=' at the end).",
)


def text(
    max_len: int, *, required: bool = False, min_len: int | None = None, **kw: Any
) -> fields.String:
    """A string of at most `max_len` characters (at least one when required)."""
    return fields.String(
        required=required,
        validate=validate.Length(
            min=min_len if min_len is not None else (1 if required else 0), max=max_len
        ),
        **kw,
    )


def page_fields(*, cursor_max_length: int | None = CURSOR_MAX_LENGTH,
                cursor_min_length: int | None = None,
                default_limit: int | None = PAGE_LIMIT_DEFAULT,
                cursor_description: str | None = None) -> dict[str, fields.Field]:
    """`cursor` (the previous page's `next_cursor`, URL-safe base64) and `limit` (1..200) of a
    list's query.

    A `cursor_max_length` of None leaves the cursor unbounded and a `default_limit` of None
    leaves the default to the route (both as some lists document them today).
    """
    cursor_options: dict[str, Any] = {"validate": [CURSOR_PATTERN]}
    if cursor_max_length is not None:
        cursor_options["validate"].append(
            validate.Length(min=cursor_min_length, max=cursor_max_length))
    if cursor_description is not None:
        cursor_options["metadata"] = {"description": cursor_description}
    limit_options: dict[str, Any] = {}
    if default_limit is not None:
        limit_options["load_default"] = default_limit
    return {
        "cursor": fields.String(**cursor_options),
        "limit": fields.Integer(validate=validate.Range(min=1, max=PAGE_LIMIT_MAX),
                                **limit_options),
    }


def paged(filters: type[Schema], name: str, extra: Mapping[str, fields.Field] | None = None,
          **page_options: Any) -> type[Schema]:
    """The list's `filters` as query parameters, then the `extra` ones the gateway adds, then
    paging (`page_fields(**page_options)`).

    A `custom` filter is not a parameter: custom-field filters come as
    `custom.<key>[__op]=value` and the route reads them from the query string itself.
    """
    options = {"exclude": ("custom",)} if "custom" in filters._declared_fields else {}
    meta = type("Meta", (filters.Meta,), options)  # the filters' options (unknown...) hold
    return type(name, (filters,), {"Meta": meta, **(extra or {}), **page_fields(**page_options)})


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """One page of a list: `items` of `item` and the cursor of the next page (null: the last)."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item)),
        "next_cursor": fields.String(allow_none=True),
    })


PageQuerySchema = paged(StrictSchema, "PageQuerySchema", cursor_description=CURSOR_DESCRIPTION)
