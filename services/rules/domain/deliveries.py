"""A webhook delivery's replay: sent again with the same webhook-id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from shared.errors import Conflict


class DeliveryState(Protocol):
    status: str
    next_attempt_at: datetime | None
    attempt_log: list[dict[str, Any]] | None


def replay(delivery: DeliveryState, subscription_active: bool, now: datetime,
           by: str | None) -> None:
    """Pending again, now (the attempt log says who asked); not while the subscription is
    disabled nor while the delivery is still being attempted."""
    if not subscription_active:
        raise Conflict("the subscription is disabled; enable it first",
                       {"field": "subscription_id"})
    if delivery.status in ("pending", "sending"):
        raise Conflict("the delivery is still being attempted", {"field": "status"})
    delivery.status, delivery.next_attempt_at = "pending", now
    delivery.attempt_log = [*(delivery.attempt_log or []), {
        "at": now.isoformat(), "replayed_by": by}]
