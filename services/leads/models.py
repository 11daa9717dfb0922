"""Tables of the leads service (its own database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime
from shared.inbox import inbox_table
from shared.kernel.naming import service_metadata
from shared.outbox import outbox_table

metadata = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    # Normalised company name and its first characters: the blocking key for fuzzy dedupe.
    company_key: Mapped[str | None] = mapped_column(String(200))
    company_block: Mapped[str | None] = mapped_column(String(8), index=True)
    title: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    region: Mapped[str | None] = mapped_column(String(64))
    industry: Mapped[str | None] = mapped_column(String(64))
    product_interest: Mapped[list[str]] = mapped_column(JSON, default=list)
    campaign: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    disqualify_reason: Mapped[str | None] = mapped_column(Text)
    qualification: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer, default=0, index=True)
    score_breakdown: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_id: Mapped[str | None] = mapped_column(String(36), index=True)
    merged_into_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set from the sales service's lead_converted event: the customer, contact and
    # opportunity the lead became.
    conversion: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Behaviour(Base):
    __tablename__ = "lead_behaviours"
    __table_args__ = (Index("ix_lead_behaviours_lead", "lead_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class HistoryEntry(Base):
    """What happened to a lead: status, score, owner, merges (the score history lives here)."""

    __tablename__ = "lead_history"
    __table_args__ = (Index("ix_lead_history_lead", "lead_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str | None] = mapped_column(String(36))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScoringModelVersion(Base):
    __tablename__ = "scoring_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(36))


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
