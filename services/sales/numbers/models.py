"""Tables of the sales numbers: custom field definitions, quotas, forecast snapshots, import
jobs, the opportunity roll-up and the stage-flow pre-aggregate, on the sales service's own
`metadata` (services/sales/models.py). This module imports the core's models, never the
reverse: whoever needs every table (migrations/env.py) imports both.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.sales.models import Base
from shared.db import UTCDateTime


class CustomFieldDefinition(Base):
    __tablename__ = "custom_field_definitions"
    __table_args__ = (UniqueConstraint("entity", "key", name="uq_custom_field_entity_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))  # customer / contact / opportunity
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    regex: Mapped[str | None] = mapped_column(Text)
    # JSON-native like the values: int, decimal as string, date as "YYYY-MM-DD", text length
    min_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    max_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    unique: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "entity": self.entity, "key": self.key, "label": self.label,
            "type": self.type, "required": self.required, "options": list(self.options or []),
            "regex": self.regex, "min": self.min_value, "max": self.max_value,
            "unique": self.unique, "position": self.position, "active": self.active,
            "description": self.description,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


class Quota(Base):
    """A target for one user or one team over one month or quarter."""

    __tablename__ = "quotas"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject_id", "period_kind", "period_start",
                         name="uq_quotas_subject_period"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(8))  # user / team
    subject_id: Mapped[str] = mapped_column(String(36))
    period_kind: Mapped[str] = mapped_column(String(8))  # month / quarter
    period_start: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    updated_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ForecastSnapshotRun(Base):
    """One snapshot of the forecast (weekly by timer, or on request)."""

    __tablename__ = "forecast_snapshot_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    week: Mapped[str] = mapped_column(String(10), index=True)  # ISO week, 2026-W48
    trigger: Mapped[str] = mapped_column(String(10))  # schedule / manual
    first_day: Mapped[date] = mapped_column(Date)  # the periods it covers
    last_day: Mapped[date] = mapped_column(Date)
    actor: Mapped[str | None] = mapped_column(String(36))


class ForecastSnapshot(Base):
    """The forecast of one period for one owner (and their team, pipeline) at a snapshot."""

    __tablename__ = "forecast_snapshots"
    __table_args__ = (
        Index("ix_forecast_snapshots_run_period", "run_id", "period_kind", "period_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forecast_snapshot_runs.id"))
    period_kind: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[date] = mapped_column(Date)
    owner_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    pipeline_id: Mapped[str] = mapped_column(String(36))
    open_count: Mapped[int] = mapped_column(Integer)
    weighted: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # weighted open + closed won
    best_case: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    commit: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    closed_won: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class ForecastSnapshotItem(Base):
    """An open opportunity as a snapshot saw it: slippage compares it with the present."""

    __tablename__ = "forecast_snapshot_items"
    __table_args__ = (Index("ix_forecast_snapshot_items_run_close", "run_id",
                            "expected_close_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forecast_snapshot_runs.id"))
    opportunity_id: Mapped[str] = mapped_column(String(36))
    expected_close_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    probability: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[str] = mapped_column(String(36))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    pipeline_id: Mapped[str] = mapped_column(String(36))


class StageFlow(Base):
    """Pre-aggregated stage movements, so conversion and time-in-stage over a million
    opportunities read thousands of rows, not millions. Grain: pipeline, stage, owner and team
    at the time of the move ('' for none), and the day (in CRM_TIMEZONE) the opportunity was
    created (the funnel's cohort). Folded in from stage_history past `StageFlowMark`."""

    __tablename__ = "stage_flow"

    pipeline_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cohort_day: Mapped[date] = mapped_column(Date, primary_key=True)
    reached: Mapped[int] = mapped_column(Integer, default=0)  # first entries
    reached_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)
    stays: Mapped[int] = mapped_column(Integer, default=0)  # completed stays
    stay_seconds: Mapped[Decimal] = mapped_column(Numeric(20, 0), default=0)


Index("ix_stage_flow_cohort", StageFlow.cohort_day, StageFlow.pipeline_id)


class StageFlowMonth(Base):
    """`stage_flow` rolled up by the month of creation (`cohort_day` is the month's first day):
    a period reads whole months here and only its partial edge months by day."""

    __tablename__ = "stage_flow_month"

    pipeline_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cohort_day: Mapped[date] = mapped_column(Date, primary_key=True)
    reached: Mapped[int] = mapped_column(Integer, default=0)
    reached_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)
    stays: Mapped[int] = mapped_column(Integer, default=0)
    stay_seconds: Mapped[Decimal] = mapped_column(Numeric(20, 0), default=0)


class OpportunityRollup(Base):
    """Opportunity figures kept by triggers (see queries/rollups.py): count, amount, cycle
    seconds per kind, grain ('d' / 'm'), pipeline, stage, owner, team ('' for none), day and
    key."""

    __tablename__ = "opportunity_rollup"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=0)
    seconds: Mapped[Decimal] = mapped_column(Numeric(20, 0), default=0)


Index("ix_opportunity_rollup_day", OpportunityRollup.kind, OpportunityRollup.grain,
      OpportunityRollup.day)


class NumbersSettings(Base):
    """The UTC offset (minutes) the roll-ups' local days were computed with."""

    __tablename__ = "numbers_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_minutes: Mapped[int] = mapped_column(Integer)


class StageFlowMark(Base):
    """How far stage_history has been folded into stage_flow (its last id)."""

    __tablename__ = "stage_flow_mark"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)


class ImportJob(Base):
    __tablename__ = "import_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), index=True)  # queued/running/done/failed
    dry_run: Mapped[bool] = mapped_column(Boolean)
    on_duplicate: Mapped[str] = mapped_column(String(8))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)  # bad rows
    # file-level problems and the ignored columns; bad rows are in import_errors
    errors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # who imports (owner of new records, visibility scope); the file until it is processed
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    actor: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # each batch
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ImportError_(Base):
    """One bad row of an import: its spreadsheet row number and messages by field."""

    __tablename__ = "import_errors"

    job_id: Mapped[str] = mapped_column(ForeignKey("import_jobs.id"), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    errors: Mapped[dict[str, Any]] = mapped_column(JSON)
