"""The event envelope every service publishes (see the event conventions of the architecture)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields

from shared.context import Context


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = fields.String(required=True, metadata={"description": "uuid, unique per event"})
    event_type = fields.String(required=True, metadata={"description": "<aggregate>_<past_verb>"})
    version = fields.Integer(required=True, metadata={"description": "schema version of data"})
    occurred_at = fields.String(required=True, metadata={"description": "UTC ISO 8601"})
    producer = fields.String(required=True, metadata={"description": "the publishing service"})
    correlation_id = fields.String(
        required=True,
        metadata={"description": "the request that started it all (X-Correlation-ID)"},
    )
    causation_id = fields.String(
        allow_none=True,
        load_default=None,
        metadata={"description": "the event that caused this one; null for a direct request"},
    )
    actor = fields.String(
        allow_none=True, load_default=None, metadata={"description": "user id, null for the system"}
    )
    causation_depth = fields.Integer(
        load_default=0,
        metadata={
            "description": "how many automated reactions (rules acting on events) lie between "
            "the original request and this event; 0 for a direct request"
        },
    )
    data = fields.Dict(required=True, metadata={"description": "the event type's own schema"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_envelope(
    producer: str, event_type: str, data: dict[str, Any], ctx: Context, version: int = 1
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "version": version,
        "occurred_at": utcnow().isoformat(),
        "producer": producer,
        "correlation_id": ctx.correlation_id,
        "causation_id": ctx.causation_id,
        "actor": ctx.actor,
        "causation_depth": ctx.causation_depth,
        "data": data,
    }


def event_exchange_name(service: str) -> str:
    """nameko's naming, so `@event_handler(service, type)` consumers bind to our exchanges."""
    return f"{service}.events"


def context_headers(envelope: dict[str, Any]) -> dict[str, str]:
    """nameko context headers: a consumer's CallContext continues the chain of this event."""
    headers = {
        "nameko.correlation_id": envelope["correlation_id"],
        "nameko.causation_id": envelope["event_id"],
    }
    if envelope.get("actor"):
        headers["nameko.actor"] = envelope["actor"]
    # A consumer acting on this event is one step further from the request that started it.
    headers["nameko.causation_depth"] = int(envelope.get("causation_depth") or 0) + 1
    return headers
