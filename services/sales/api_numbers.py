"""RPC of the sales numbers: custom fields, quotas, funnel, forecast and its snapshots,
quota performance, channels, dormant customers, drill-down, import and export.

`NumbersRpc` is a mixin of `SalesService`: it uses the service's `db`, `events` and
`context`. Every figure takes `filters` (owner_ids, team_id, pipeline_id, date_from, date_to,
period_kind, custom) and the caller's `scope`, which always narrows what is counted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import eventlet
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from nameko.timer import timer
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from services.sales import analytics, rollups
from services.sales import imports as importing
from services.sales.domain import custom_fields as cf
from services.sales.domain import numbers
from services.sales.models import Contact, Customer, Opportunity
from services.sales.models_numbers import CustomFieldDefinition, Quota, load_field_definitions
from shared import config
from shared.db import is_statement_timeout, limit_statements
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.kernel.schemas import ScopeSchema
from shared.payloads import load
from shared.rpc import rpc

log = logging.getLogger(__name__)

IMPORT_POLL_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 3600.0
FOLD_SECONDS = 60.0
# A report's statements must end well within the gateway's RPC timeout (CRM_RPC_TIMEOUT, 10).
REPORT_STATEMENT_SECONDS = float(config.env("SALES_REPORT_STATEMENT_SECONDS", "5"))
# An export is built in one RPC (within the RPC timeout): more rows than this is a 422.
EXPORT_MAX_ROWS = int(config.env("SALES_EXPORT_MAX_ROWS", "50000"))
ENTITY_OF = {Customer: "customer", Contact: "contact", Opportunity: "opportunity"}
MODEL_OF = {entity: model for model, entity in ENTITY_OF.items()}


def custom_clauses(session, entity: str, custom: dict[str, Any] | None) -> list[Any]:
    """WHERE clauses for `custom` filters ({"<key>[__op]": value}) on an entity's records;
    a bad key, operator or value raises ValidationFailed naming `custom.<key>`."""
    if not custom:
        return []
    definitions = load_field_definitions(session, entity, include_inactive=True)
    return analytics.custom_filter_clause(MODEL_OF[entity], definitions, custom,
                                          session.get_bind().dialect.name)

IMPORT_EVENTS = {"customer": "customers_imported", "contact": "contacts_imported"}


class StrictSchema(Schema):
    class Meta:
        unknown = "raise"


class NumbersFiltersSchema(StrictSchema):
    owner_ids = fields.List(fields.String(), load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    pipeline_id = fields.String(load_default=None, allow_none=True)
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    period_kind = fields.String(load_default=None, allow_none=True,
                                validate=validate.OneOf(numbers.PERIOD_KINDS))
    custom = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        try:
            numbers.check_dates(data.get("date_from"), data.get("date_to"))
        except numbers.RangeError as exc:
            raise ValidationError(str(exc), exc.field) from None


class QuotaSchema(StrictSchema):
    user_id = fields.String(load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    period_kind = fields.String(required=True, validate=validate.OneOf(numbers.PERIOD_KINDS))
    period_start = fields.Date(required=True)
    amount = fields.Decimal(required=True, places=2, validate=validate.Range(min=0),
                            allow_nan=False)
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"))

    @validates_schema
    def _subject(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("user_id")) == bool(data.get("team_id")):
            raise ValidationError("give exactly one of user_id or team_id", "user_id")
        if "period_start" in data and "period_kind" in data:
            try:
                numbers.check_period_start(data["period_kind"], data["period_start"])
            except ValueError as exc:
                raise ValidationError(str(exc), "period_start") from None


class QuotaFiltersSchema(StrictSchema):
    user_ids = fields.List(fields.String(), load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    period_kind = fields.String(load_default=None, allow_none=True,
                                validate=validate.OneOf(numbers.PERIOD_KINDS))
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)


class ImportOptionsSchema(StrictSchema):
    dry_run = fields.Boolean(load_default=False)
    on_duplicate = fields.String(load_default="skip",
                                 validate=validate.OneOf(("skip", "update", "create")))
    owner_id = fields.String(load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)


class LooseScopeSchema(ScopeSchema):
    class Meta:
        unknown = EXCLUDE


filters_schema = NumbersFiltersSchema()
quota_schema = QuotaSchema()
quota_filters_schema = QuotaFiltersSchema()
import_options_schema = ImportOptionsSchema()
scope_schema = LooseScopeSchema()


def _yield() -> None:
    """A cooperative yield (eventlet): long CPU-bound work calls it so that the service's
    other RPCs are served in between."""
    eventlet.sleep(0)


def _now() -> datetime:
    return datetime.now(UTC)


def _money(value: Any) -> str:
    return str(numbers.money(value))


def quota_to_dict(quota: Quota) -> dict[str, Any]:
    return {
        "id": quota.id,
        "user_id": quota.subject_id if quota.subject_kind == "user" else None,
        "team_id": quota.subject_id if quota.subject_kind == "team" else None,
        "period_kind": quota.period_kind, "period_start": quota.period_start.isoformat(),
        "period": numbers.period_label(quota.period_kind, quota.period_start),
        "amount": _money(quota.amount), "currency": quota.currency,
        "updated_at": quota.updated_at.isoformat(),
    }


class NumbersRpc:
    """Mixin of SalesService (which provides db, events, context)."""

    # -- custom fields -------------------------------------------------------------------

    @rpc
    def define_custom_field(self, data: dict) -> dict[str, Any]:
        definition = cf.validate_definition(data)
        now = _now()
        with self.db.begin() as session:
            taken = session.scalar(select(CustomFieldDefinition.id).where(
                CustomFieldDefinition.entity == definition["entity"],
                CustomFieldDefinition.key == definition["key"]))
            if taken:
                raise Conflict(f"{definition['entity']} already has a field {definition['key']}",
                               {"field": "key", "existing_id": taken})
            row = CustomFieldDefinition(id=str(uuid.uuid4()), created_at=now, updated_at=now,
                                        **self._definition_columns(definition))
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"{definition['entity']} already has a field "
                               f"{definition['key']}", {"field": "key"}) from None
            return row.to_dict()

    @rpc
    def update_custom_field(self, field_id: str, data: dict) -> dict[str, Any]:
        with self.db.begin() as session:
            row = self._definition(session, field_id)
            definition = cf.validate_definition(data, existing=row.to_dict() | {
                "created_at": None, "updated_at": None, "id": None})
            for name, value in self._definition_columns(definition).items():
                setattr(row, name, value)
            row.updated_at = _now()
            return row.to_dict()

    @rpc
    def list_custom_fields(
        self, entity: str | None = None, include_inactive: bool = False
    ) -> list[dict[str, Any]]:
        if entity is not None and entity not in cf.ENTITIES:
            raise ValidationFailed.for_fields(
                {"entity": [f"must be one of {', '.join(cf.ENTITIES)}"]})
        with self.db.read() as session:
            if entity:
                return load_field_definitions(session, entity, include_inactive=include_inactive)
            return [d for e in cf.ENTITIES
                    for d in load_field_definitions(session, e,
                                                    include_inactive=include_inactive)]

    @staticmethod
    def _definition_columns(definition: dict[str, Any]) -> dict[str, Any]:
        columns = {k: v for k, v in definition.items() if k not in ("min", "max")}
        columns["min_value"], columns["max_value"] = definition["min"], definition["max"]
        return columns

    @staticmethod
    def _definition(session, field_id: str) -> CustomFieldDefinition:
        row = session.get(CustomFieldDefinition, field_id) if isinstance(field_id, str) else None
        if row is None:
            raise NotFound(f"custom field {field_id} not found", {"field": "field_id"})
        return row

    # -- quotas --------------------------------------------------------------------------

    @rpc
    def set_quota(self, data: dict) -> dict[str, Any]:
        """Create or replace the quota of a user or team for one month or quarter."""
        values = load(quota_schema, data)
        kind, subject = ("user", values["user_id"]) if values.get("user_id") else \
            ("team", values["team_id"])
        now = _now()
        with self.db.begin() as session:
            quota = session.scalar(select(Quota).where(
                Quota.subject_kind == kind, Quota.subject_id == subject,
                Quota.period_kind == values["period_kind"],
                Quota.period_start == values["period_start"]))
            if quota is None:
                quota = Quota(id=str(uuid.uuid4()), subject_kind=kind, subject_id=subject,
                              period_kind=values["period_kind"],
                              period_start=values["period_start"], created_at=now)
                session.add(quota)
            quota.amount = values["amount"]
            quota.currency = values.get("currency") or config.default_currency()
            quota.updated_by = self.context.actor
            quota.updated_at = now
            session.flush()
            return quota_to_dict(quota)

    @rpc
    def list_quotas(self, filters: dict | None = None) -> list[dict[str, Any]]:
        filters = load(quota_filters_schema, filters)
        query = select(Quota)
        subjects = []
        if filters.get("user_ids") is not None:
            subjects.append((Quota.subject_kind == "user")
                            & Quota.subject_id.in_(filters["user_ids"]))
        if filters.get("team_id"):
            subjects.append((Quota.subject_kind == "team")
                            & (Quota.subject_id == filters["team_id"]))
        if subjects:
            query = query.where(or_(*subjects))
        if filters.get("period_kind"):
            query = query.where(Quota.period_kind == filters["period_kind"])
        if filters.get("date_from"):
            query = query.where(Quota.period_start >= numbers.period_start(
                filters.get("period_kind") or "month", filters["date_from"]))
        if filters.get("date_to"):
            query = query.where(Quota.period_start <= filters["date_to"])
        with self.db.read() as session:
            rows = session.scalars(query.order_by(Quota.period_start, Quota.subject_kind,
                                                  Quota.subject_id).limit(2000))
            return [quota_to_dict(q) for q in rows]

    # -- figures -------------------------------------------------------------------------

    @contextmanager
    def _report_session(self) -> Iterator[Session]:
        """A read session whose every statement must finish within REPORT_STATEMENT_SECONDS
        (under the RPC timeout); one that does not is a 422 asking for narrower filters."""
        with self.db.read() as session:
            session.info[analytics.STATEMENT_LIMIT] = REPORT_STATEMENT_SECONDS
            limit_statements(session, REPORT_STATEMENT_SECONDS)
            try:
                yield session
            except OperationalError as exc:
                if not is_statement_timeout(exc):
                    raise
                log.info("a report was cancelled after %s s", REPORT_STATEMENT_SECONDS)
                raise ValidationFailed.for_fields({"filters": [
                    f"the report took longer than {REPORT_STATEMENT_SECONDS:g} s: narrow the "
                    "date range, owners or pipeline"]}) from None

    def _filters(self, session, filters: dict | None, model: Any = Opportunity) -> dict:
        loaded = load(filters_schema, filters)
        custom = loaded.pop("custom", None)
        if custom:
            loaded["custom"] = custom_clauses(session, ENTITY_OF[model], custom)
        return loaded

    @rpc
    def funnel(self, filters: dict | None = None, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.begin() as session:  # brings the stage-flow pre-aggregate up to date
            analytics.fold_stage_flow(session)
        with self._report_session() as session:
            return analytics.funnel(session, self._filters(session, filters), scope)

    @timer(interval=FOLD_SECONDS)
    def fold_stage_flow_timer(self) -> None:
        """Keeps the stage-flow pre-aggregate close to the history, so a funnel request has
        only the last minute's moves to fold."""
        with self.db.begin() as session:
            analytics.fold_stage_flow(session)

    @rpc
    def forecast(self, filters: dict | None = None, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self._report_session() as session:
            return analytics.forecast(session, self._filters(session, filters), scope)

    @rpc
    def take_forecast_snapshot(self) -> dict[str, Any]:
        with self.db.begin() as session:
            return analytics.take_snapshot(session, _now(), "manual", self.context.actor)

    @rpc
    def list_forecast_snapshots(
        self, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of snapshots, newest first: {items, next_cursor}."""
        limit = self._positive(limit, "limit", 200)
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationFailed.for_fields({"cursor": ["must be a string"]})
        with self._report_session() as session:
            return analytics.list_snapshots(session, limit, cursor)

    @timer(interval=SNAPSHOT_CHECK_SECONDS)
    def forecast_snapshot_timer(self) -> None:
        """Weekly snapshots: each hour, take one if none was taken this ISO week. Also rebuilds
        the roll-ups when CRM_TIMEZONE's offset is not the one they were built with."""
        now = _now()
        with self.db.begin() as session:
            if rollups.check_offset(session.connection()):
                log.info("opportunity roll-ups rebuilt for the offset of %s",
                         config.timezone_name())
        with self.db.begin() as session:
            if numbers.snapshot_due(analytics.last_snapshot_at(session), now):
                result = analytics.take_snapshot(session, now, "schedule")
                log.info("forecast snapshot %s taken (%s opportunities)", result["id"],
                         result["opportunities"])

    @rpc
    def forecast_accuracy(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self._report_session() as session:
            return analytics.forecast_accuracy(session, self._filters(session, filters), scope)

    @rpc
    def quota_performance(
        self, filters: dict | None = None, scope: dict | None = None,
        team_members: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """`team_members` ({team_id: [user ids]}, from the gateway, which owns teams): a team's
        achievement is what its members won; without it, the opportunities' team_id."""
        scope = load(scope_schema, scope)
        with self._report_session() as session:
            return analytics.quota_performance(session, self._filters(session, filters), scope,
                                               team_members)

    @rpc
    def channel_conversion(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self._report_session() as session:
            return analytics.channel_conversion(session, self._filters(session, filters), scope)

    @rpc
    def dormant_customers(
        self, days: int = 30, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        days, limit = self._positive(days, "days", 3650), self._positive(limit, "limit", 200)
        with self._report_session() as session:
            return analytics.dormant_customers(
                session, days, self._filters(session, filters, Customer), scope, cursor, limit)

    @rpc
    def drill_down(
        self, figure: str, filters: dict | None = None, scope: dict | None = None,
        params: dict | None = None, cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        limit = self._positive(limit, "limit", 200)
        model = Customer if figure == "dormant" else Opportunity
        with self._report_session() as session:
            return analytics.drill_down(session, figure, self._filters(session, filters, model),
                                        scope, params or {}, cursor, limit)

    @rpc
    def customer_insights(self, customer_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            if session.get(Customer, customer_id) is None:
                raise NotFound(f"customer {customer_id} not found", {"field": "customer_id"})
            return analytics.customer_insights(session, customer_id)

    @staticmethod
    def _positive(value: Any, field: str, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise ValidationFailed.for_fields({field: [f"must be an integer 1..{maximum}"]})
        return value

    # -- import --------------------------------------------------------------------------

    @rpc
    def start_import(
        self, entity: str, filename: str, content_b64: str, options: dict | None = None,
        scope: dict | None = None,
    ) -> dict[str, Any]:
        """Queue an import (answered at once; the rows are processed in the background).
        A file or header problem, or a file over the limits (bytes, rows), is answered now as
        ValidationFailed naming `file`/`header`; a user over their limits (imports queued or
        running at once, rows in 24 hours) is a Conflict. The gateway lets only admins and
        managers import."""
        values = load(import_options_schema, options)
        scope = load(scope_schema, scope)
        try:
            content = base64.b64decode(content_b64 or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ValidationFailed.for_fields({"file": ["content_b64 is not base64"]}) from None
        values["owner_id"] = values.get("owner_id") or self.context.actor
        values["scope"] = scope
        with self.db.begin() as session:
            job = importing.start_job(session, entity, filename or "import.csv", content,
                                      values, self.context.actor, pause=_yield)
            return importing.job_to_dict(session, job)

    @rpc
    def get_import(
        self, job_id: str, scope: dict | None = None, errors_offset: int = 0,
        errors_limit: int = importing.ERRORS_PAGE,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            job = importing.get_job(session, job_id, scope, self.context.actor)
            return importing.job_to_dict(session, job, max(0, int(errors_offset)),
                                         max(0, min(int(errors_limit), 5000)))

    @timer(interval=IMPORT_POLL_SECONDS)
    def run_import_jobs(self) -> int:
        """Process queued imports one after another; returns how many ran."""
        ran = 0
        while True:
            with self.db.begin() as session:
                job_id = importing.claim_next_job(session)
            if job_id is None:
                return ran
            self.run_import(job_id)
            ran += 1

    def run_import(self, job_id: str) -> dict[str, Any]:
        importer = importing.Importer(self.db, job_id, between_batches=_yield)

        def record(session, summary: dict[str, Any]) -> None:
            self.events.record(session, IMPORT_EVENTS[summary["entity"]], summary)

        importer.record_summary = record
        return importer.run()

    # -- export --------------------------------------------------------------------------

    @rpc
    def export(
        self, entity: str, filters: dict | None = None, scope: dict | None = None,
        format: str = "csv",
    ) -> dict[str, Any]:
        """A filtered list as a file: the same filters as list_customers / list_contacts /
        list_opportunities, plus `custom` (custom-field filters)."""
        if entity not in ("customer", "contact", "opportunity"):
            raise ValidationFailed.for_fields(
                {"entity": ["must be one of customer, contact, opportunity"]})
        if format not in importing.EXPORT_FORMATS:
            raise ValidationFailed.for_fields({"format": ["must be csv or xlsx"]})
        lister = {"customer": "list_customers", "contact": "list_contacts",
                  "opportunity": "list_opportunities"}[entity]
        with self.db.read() as session:
            definitions = load_field_definitions(session, entity)
        records = self._all_pages(getattr(self, lister), dict(filters or {}), scope)
        content = importing.export_file(entity, records, definitions, format,
                                        pause=importing.Pacer(_yield))
        stamp = datetime.now(analytics.tz()).strftime("%Y%m%d-%H%M%S")
        return {"filename": f"{entity}s-{stamp}.{format}",
                "content_type": "text/csv; charset=utf-8" if format == "csv" else
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "content_b64": base64.b64encode(content).decode()}

    @staticmethod
    def _all_pages(lister, filters: dict, scope: dict | None):
        cursor, count = None, 0
        while True:
            page = lister(filters=filters, scope=scope, cursor=cursor, limit=200)
            _yield()  # each page is its own short read: others get the database in between
            count += len(page["items"])
            if count > EXPORT_MAX_ROWS:
                raise ValidationFailed.for_fields({"filters": [
                    f"the list has more than {EXPORT_MAX_ROWS:,} rows: narrow the filters"]})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

