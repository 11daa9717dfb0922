"""Tables of the contracts service (its own database)."""

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


# -- quotes (products, price books, quotes) ----

from datetime import date, datetime  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import JSON, Boolean, Date, Index, Integer, Numeric, String, Text  # noqa: E402
from sqlalchemy.orm import Mapped, mapped_column  # noqa: E402

from shared.db import UTCDateTime  # noqa: E402


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(100))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))  # percent: 13, 9, 6 or 0
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PriceBookRecord(Base):
    """A price book; `tiers` is a list of {product_id, min_quantity, unit_price} (strings)."""

    __tablename__ = "price_books"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    customer_tier: Mapped[str | None] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Quote(Base):
    """A quote; its terms (lines, discount, totals) are in its versions, `version` is the
    current one. Owner and team come from the opportunity (row-level visibility)."""

    __tablename__ = "quotes"
    __table_args__ = (Index("ix_quotes_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(String(36), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), index=True)
    team_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(36))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuoteVersion(Base):
    """One version's terms: title, currency, valid_until, price context, discount, notes,
    lines and totals. Versions other than the quote's current one never change."""

    __tablename__ = "quote_versions"

    quote_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_until: Mapped[date | None] = mapped_column(Date)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
