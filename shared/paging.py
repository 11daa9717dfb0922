"""Keyset pagination shared by every list RPC: newest first, then id; the cursor is the last
row's (timestamp, id), opaque to clients. And LIKE patterns that match user text literally."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_

from shared.errors import ValidationFailed


def escape_like(term: str) -> str:
    """`term` with LIKE's wildcards escaped (use with `escape="\\\\"`)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(at: datetime, record_id: str) -> str:
    raw = json.dumps([at.isoformat(), record_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(record_id)
    except (ValueError, TypeError):
        raise ValidationFailed.for_fields({"cursor": ["not a cursor this API returned"]}) from None


def page_after(
    query: Any, column: Any, id_column: Any, cursor: str | None, limit: int | None = None
) -> Any:
    """`query` newest first by `column`, then id, continuing after `cursor`; with `limit`, one
    row more than a page, so the caller knows whether a next page exists."""
    if cursor:
        at, record_id = decode_cursor(cursor)
        query = query.where(or_(column < at, and_(column == at, id_column < record_id)))
    query = query.order_by(column.desc(), id_column.desc())
    return query if limit is None else query.limit(limit + 1)


def page_of(
    rows: Sequence[Any], limit: int, at: str, to_dict: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """The answer of a list: `rows` fetched by `page_after(..., limit)` (one too many when a
    next page exists) as at most `limit` items and the next page's cursor, from the last row's
    `at` attribute and id (None on the last page)."""
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(getattr(rows[-1], at), rows[-1].id) if more else None
    return {"items": [to_dict(row) for row in rows], "next_cursor": cursor}
