"""RPC of the sales numbers: custom fields, quotas, funnel, forecast and its snapshots,
quota performance, channels, dormant customers, drill-down, import and export.

`NumbersRpc` is a mixin of `SalesService`: it uses the service's `db`, `events` and
`context`. Each entrypoint loads its input with the contract's schemas, calls one use case
and returns its answer. Every figure takes `filters` (owner_ids, team_id, pipeline_id,
date_from, date_to, period_kind, custom) and the caller's `scope`, which always narrows what
is counted.
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.timer import timer

from services.sales.numbers.contract import (
    filters_schema,
    import_options_schema,
    quota_filters_schema,
    quota_schema,
    scope_schema,
)
from services.sales.numbers.usecases import (
    custom_fields,
    exporting,
    importing,
    quotas,
    reports,
    snapshots,
)
from services.sales.numbers.usecases.custom_fields import custom_clauses
from shared.payloads import load
from shared.rpc import rpc

__all__ = ["NumbersRpc", "custom_clauses"]  # custom_clauses: the core's lists use it

IMPORT_POLL_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 3600.0
FOLD_SECONDS = 60.0


def _yield() -> None:
    """A cooperative yield (eventlet): long CPU-bound work calls it so that the service's
    other RPCs are served in between."""
    eventlet.sleep(0)


class NumbersRpc:
    """Mixin of SalesService (which provides db, events, context)."""

    # -- custom fields -------------------------------------------------------------------

    @rpc
    def define_custom_field(self, data: dict) -> dict[str, Any]:
        return custom_fields.define(self.db, data)

    @rpc
    def update_custom_field(self, field_id: str, data: dict) -> dict[str, Any]:
        return custom_fields.update(self.db, field_id, data)

    @rpc
    def list_custom_fields(
        self, entity: str | None = None, include_inactive: bool = False
    ) -> list[dict[str, Any]]:
        return custom_fields.list_fields(self.db, entity, include_inactive)

    # -- quotas --------------------------------------------------------------------------

    @rpc
    def set_quota(self, data: dict) -> dict[str, Any]:
        """Create or replace the quota of a user or team for one month or quarter."""
        return quotas.set_quota(self.db, load(quota_schema, data), self.context.actor)

    @rpc
    def list_quotas(self, filters: dict | None = None) -> list[dict[str, Any]]:
        return quotas.list_quotas(self.db, load(quota_filters_schema, filters))

    # -- figures -------------------------------------------------------------------------

    @rpc
    def funnel(self, filters: dict | None = None, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_funnel(self.db, load(filters_schema, filters), scope)

    @timer(interval=FOLD_SECONDS)
    def fold_stage_flow_timer(self) -> None:
        """Keeps the stage-flow pre-aggregate close to the history, so a funnel request has
        only the last minute's moves to fold."""
        reports.fold_stage_flow(self.db)

    @rpc
    def forecast(self, filters: dict | None = None, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_forecast(self.db, load(filters_schema, filters), scope)

    @rpc
    def take_forecast_snapshot(self) -> dict[str, Any]:
        return snapshots.take(self.db, self.context.actor)

    @rpc
    def list_forecast_snapshots(
        self, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of snapshots, newest first: {items, next_cursor}."""
        return snapshots.list_page(self.db, limit, cursor)

    @timer(interval=SNAPSHOT_CHECK_SECONDS)
    def forecast_snapshot_timer(self) -> None:
        """Weekly snapshots: each hour, take one if none was taken this ISO week. Also rebuilds
        the roll-ups when CRM_TIMEZONE's offset is not the one they were built with."""
        snapshots.take_when_due(self.db)

    @rpc
    def forecast_accuracy(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_forecast_accuracy(self.db, load(filters_schema, filters), scope)

    @rpc
    def quota_performance(
        self, filters: dict | None = None, scope: dict | None = None,
        team_members: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """`team_members` ({team_id: [user ids]}, from the gateway, which owns teams): a team's
        achievement is what its members won; without it, the opportunities' team_id."""
        scope = load(scope_schema, scope)
        return reports.run_quota_performance(self.db, load(filters_schema, filters), scope,
                                             team_members)

    @rpc
    def channel_conversion(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_channel_conversion(self.db, load(filters_schema, filters), scope)

    @rpc
    def dormant_customers(
        self, days: int = 30, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_dormant_customers(self.db, days, load(filters_schema, filters),
                                             scope, cursor, limit)

    @rpc
    def drill_down(
        self, figure: str, filters: dict | None = None, scope: dict | None = None,
        params: dict | None = None, cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return reports.run_drill_down(self.db, figure, load(filters_schema, filters), scope,
                                      params, cursor, limit)

    @rpc
    def customer_insights(self, customer_id: str) -> dict[str, Any]:
        return reports.run_customer_insights(self.db, customer_id)

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
        options = load(import_options_schema, options)
        scope = load(scope_schema, scope)
        return importing.start_import(self.db, entity, filename, content_b64, options, scope,
                                      self.context.actor, pause=_yield)

    @rpc
    def get_import(
        self, job_id: str, scope: dict | None = None, errors_offset: int = 0,
        errors_limit: int = importing.ERRORS_PAGE,
    ) -> dict[str, Any]:
        return importing.get_import(self.db, job_id, load(scope_schema, scope),
                                    self.context.actor, errors_offset, errors_limit)

    @timer(interval=IMPORT_POLL_SECONDS)
    def run_import_jobs(self) -> int:
        """Process queued imports one after another; returns how many ran."""
        return importing.run_queued(self.db, self.events.record, pause=_yield)

    def run_import(self, job_id: str) -> dict[str, Any]:
        return importing.run_import(self.db, job_id, self.events.record, pause=_yield)

    # -- export --------------------------------------------------------------------------

    @rpc
    def export(
        self, entity: str, filters: dict | None = None, scope: dict | None = None,
        format: str = "csv",
    ) -> dict[str, Any]:
        """A filtered list as a file: the same filters as list_customers / list_contacts /
        list_opportunities, plus `custom` (custom-field filters)."""
        return exporting.export(self.db, lambda name: getattr(self, name), entity, filters,
                                scope, format, pause=_yield)
