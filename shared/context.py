"""The request context that flows from HTTP through RPC headers and event envelopes.

nameko carries `worker_ctx.data` in message headers (`nameko.<key>`); the gateway sets
`correlation_id` and `actor` there, services read them back with `CallContext`.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

current_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)


@dataclass(frozen=True)
class Context:
    correlation_id: str
    actor: str | None = None
    causation_id: str | None = None
    # Automated reactions between the original request and this call (see the rules service's
    # loop guard); events recorded in this context carry it in their envelope.
    causation_depth: int = 0


def context_of(worker_ctx) -> Context:
    """The context of a nameko worker; a call that arrived without one starts a new chain."""
    data = worker_ctx.data
    if not data.get("correlation_id"):
        data["correlation_id"] = str(uuid.uuid4())
    current_correlation_id.set(data["correlation_id"])
    return Context(
        correlation_id=data["correlation_id"],
        actor=data.get("actor"),
        causation_id=data.get("causation_id"),
        causation_depth=_depth(data.get("causation_depth")),
    )


def _depth(value: object) -> int:
    try:
        return max(0, int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


class CallContext(DependencyProvider):
    """Gives an entrypoint the correlation id and actor of the call that started it."""

    def get_dependency(self, worker_ctx) -> Context:
        return context_of(worker_ctx)
