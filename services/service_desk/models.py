"""Tables of the service_desk service (its own database)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.inbox import inbox_table
from shared.kernel.naming import service_metadata
from shared.outbox import outbox_table

metadata = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
