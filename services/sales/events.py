"""Publishing the sales service's events: the outbox dependency that records them in the same
transaction as the change (a relay publishes them to `sales.events`). Their schemas are the
contract's (`EVENT_SCHEMAS`); the event catalogue reads them from here."""

from __future__ import annotations

from services.sales.contract import EVENT_SCHEMAS
from services.sales.models import outbox
from shared.outbox import EventOutbox

__all__ = ["EVENT_SCHEMAS", "sales_outbox"]


def sales_outbox() -> EventOutbox:
    return EventOutbox("sales", outbox, EVENT_SCHEMAS)
