"""The service_desk service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. The gateway (and any other party) imports this module and
no other of the service.

Events go to the exchange `service_desk.events` with the event type as routing key.
"""

from __future__ import annotations

from marshmallow import Schema

__all__ = ["EVENT_SCHEMAS"]

EVENT_SCHEMAS: dict[str, type[Schema]] = {}
