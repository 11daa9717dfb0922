"""Every table of the gateway's database, on one MetaData (what its migrations build, and what
tests/integration/test_migrations.py compares them with): identity's (users, teams, API keys,
auth throttles: services/gateway/identity/models.py) and the request bookkeeping declared
here. Never business data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.gateway.identity import models as identity_models
from services.gateway.store import Base, metadata, utcnow
from shared.db import UTCDateTime
from shared.outbox import outbox_table

__all__ = ["IdempotencyKey", "identity_models", "metadata", "outbox"]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(36))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    request_hash: Mapped[str] = mapped_column(String(64))
    # NULL while the first request is still in flight.
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, index=True
    )


# Directory events (services/gateway/events.py), written in the transaction of the change.
outbox = outbox_table(metadata)
