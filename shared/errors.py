"""Typed errors that cross RPC and map to HTTP problem responses in the gateway.

Each is registered with nameko so that an RPC caller re-raises the same class with the same
arguments (`deserialize_to_instance`). Arguments must be JSON-serialisable.
"""

from __future__ import annotations

import json
from typing import Any

from nameko.exceptions import deserialize_to_instance


class CrmError(Exception):
    """Base of the errors a service raises on purpose; `status` is the HTTP mapping."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", extra: dict[str, Any] | str | None = None):
        # nameko stringifies every non-string leaf of exception args on the wire (True ->
        # "True"), so the extras travel as one JSON string and are decoded on arrival.
        if isinstance(extra, str):
            extra = json.loads(extra)
        self.detail = detail
        self.extra = extra or {}
        super().__init__(detail, json.dumps(self.extra, ensure_ascii=False, default=str))

    def __str__(self) -> str:
        return self.detail or self.title


@deserialize_to_instance
class ValidationFailed(CrmError):
    """Input that does not fit; `extra["errors"]` maps field names to lists of messages."""

    status = 422
    title = "Validation failed"

    @classmethod
    def for_fields(cls, errors: dict[str, Any], detail: str = "") -> ValidationFailed:
        fields = ", ".join(sorted(errors))
        return cls(detail or f"Invalid input in: {fields}", {"errors": errors})

    @property
    def errors(self) -> dict[str, Any]:
        return self.extra.get("errors", {})


@deserialize_to_instance
class NotFound(CrmError):
    status = 404
    title = "Not found"


@deserialize_to_instance
class Conflict(CrmError):
    """The request conflicts with stored state, e.g. a duplicate (`extra["existing_id"]`)."""

    status = 409
    title = "Conflict"


@deserialize_to_instance
class Forbidden(CrmError):
    status = 403
    title = "Forbidden"


@deserialize_to_instance
class PreconditionFailed(CrmError):
    """A state transition that the current state does not allow."""

    status = 412
    title = "Precondition failed"


@deserialize_to_instance
class DependencyUnavailable(CrmError):
    """A service this one had to ask did not answer (`extra["service"]`, `extra["reason"]`):
    nothing was changed, the caller should retry later."""

    status = 503
    title = "Service unavailable"
