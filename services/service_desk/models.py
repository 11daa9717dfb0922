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


# -- knowledge base ----
# The full-text index (kb_search) is not a table here: an FTS5 virtual table on SQLite and a
# table with a tsvector column and a GIN index on PostgreSQL, created by migration 0004k.

from datetime import datetime  # noqa: E402

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text  # noqa: E402
from sqlalchemy.orm import Mapped, mapped_column  # noqa: E402

from shared.db import UTCDateTime  # noqa: E402


class KbCategory(Base):
    __tablename__ = "kb_categories"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbArticle(Base):
    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[str] = mapped_column(String(20))  # markdown | text
    category_id: Mapped[str | None] = mapped_column(ForeignKey("kb_categories.id"))
    tags: Mapped[list[str]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # draft | published | archived
    version: Mapped[int] = mapped_column(Integer)  # 0 until first published
    author_id: Mapped[str | None] = mapped_column(String(64))
    source_ticket_id: Mapped[str | None] = mapped_column(String(36))
    helpful_yes: Mapped[int] = mapped_column(Integer)
    helpful_no: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"

    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[str | None] = mapped_column(String(36))
    tags: Mapped[list[str]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbFeedback(Base):
    __tablename__ = "kb_feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id"), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
