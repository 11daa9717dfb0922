"""nameko entrypoints of the sales service: each loads its input with a contract schema, calls
one use case (services/sales/usecases/) and returns its answer.

Customers, contacts, follow-ups, pipelines, opportunities and lead conversion, then the
numbers (services/sales/numbers/: custom field definitions, quotas, funnel, forecast and its
snapshots, quota performance, channels, dormant customers, drill-down, import and export).
Every figure takes `filters` (owner_ids, team_id, pipeline_id, date_from, date_to,
period_kind, custom) and the caller's `scope`, which always narrows what is counted.
"""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from nameko.exceptions import UnknownService
from nameko.timer import timer

from services.sales.contract import (
    BoardFiltersSchema,
    ContactCreateSchema,
    ContactFiltersSchema,
    ContactWriteSchema,
    ConversionOptionsSchema,
    CustomerCreateSchema,
    CustomerFiltersSchema,
    CustomerWriteSchema,
    FollowupCreateSchema,
    FollowupFiltersSchema,
    MoveSchema,
    OpportunityCreateSchema,
    OpportunityFiltersSchema,
    OpportunityWriteSchema,
    PageSchema,
    PipelineWriteSchema,
    ScopeSchema,
    TagChangeSchema,
)
from services.sales.events import sales_outbox
from services.sales.numbers.contract import (
    filters_schema,
    import_options_schema,
    quota_filters_schema,
    quota_schema,
)
from services.sales.numbers.usecases import (
    custom_fields,
    exporting,
    importing,
    quotas,
    reports,
    snapshots,
)
from services.sales.usecases import (
    contacts,
    conversion,
    customers,
    followups,
    opportunities,
    pipelines,
)
from services.sales.usecases.common import Ports
from shared import config
from shared.consumer import BROKER_ERRORS
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import DependencyUnavailable
from shared.inbox import checked_command_id
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc, rpc_proxy

setup_logging("sales")
log = logging.getLogger(__name__)

# Schemas are built once: constructing one costs more than loading a payload with it.
scope_schema = ScopeSchema()
page_schema = PageSchema()
customer_create_schema = CustomerCreateSchema()
customer_write_schema = CustomerWriteSchema()
customer_filters_schema = CustomerFiltersSchema()
tag_change_schema = TagChangeSchema()
contact_create_schema = ContactCreateSchema()
contact_write_schema = ContactWriteSchema()
contact_filters_schema = ContactFiltersSchema()
followup_create_schema = FollowupCreateSchema()
followup_filters_schema = FollowupFiltersSchema()
pipeline_write_schema = PipelineWriteSchema()
opportunity_create_schema = OpportunityCreateSchema()
opportunity_write_schema = OpportunityWriteSchema()
opportunity_filters_schema = OpportunityFiltersSchema()
move_schema = MoveSchema()
conversion_options_schema = ConversionOptionsSchema()
board_filters_schema = BoardFiltersSchema()

IMPORT_POLL_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 3600.0
FOLD_SECONDS = 60.0


def _yield() -> None:
    """A cooperative yield (eventlet): long CPU-bound work calls it so that the service's
    other RPCs are served in between."""
    eventlet.sleep(0)


def paged(cursor: str | None, limit: int) -> dict[str, Any]:
    return load(page_schema, {"cursor": cursor, "limit": limit})


class SalesService(PlatformEndpoints):
    name = "sales"

    db = Database("sales")
    events = sales_outbox()
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()
    leads = rpc_proxy("leads")

    @property
    def ports(self) -> Ports:
        return Ports(self.db, self.events, self.context.actor, self._read_lead)

    def _read_lead(self, lead_id: str, scope: dict[str, Any]) -> dict[str, Any]:
        """The lead as the leads service shows it to the caller (NotFound when they may not
        see it); a leads service that does not answer is DependencyUnavailable (503)."""
        try:
            # An unknown service is told at the publish (mandatory flag), a slow one by the
            # timeout (cancelled when the block ends).
            reply = self.leads.get_lead.call_async(lead_id=lead_id, scope=scope)
            with eventlet.Timeout(config.rpc_timeout()):
                return reply.result()
        except eventlet.Timeout:
            reason = f"no reply within {config.rpc_timeout():g} s"
        except UnknownService:
            reason = "no running instance"
        except BROKER_ERRORS:
            reason = "message broker connection lost"
        raise DependencyUnavailable(f"the leads service is unavailable ({reason}); retry later",
                                    {"service": "leads", "reason": reason})

    # == customers =============================================================================

    @rpc
    def create_customer(
        self, data: dict, scope: dict | None = None, on_duplicate: str = "reject"
    ) -> dict[str, Any]:
        """A new customer; `on_duplicate` reject (default: a similar name is a Conflict) or
        create. The same credit code is always a Conflict."""
        customers.check_on_duplicate(on_duplicate)
        scope = load(scope_schema, scope)
        return customers.create(self.ports, load(customer_create_schema, data), scope,
                                on_duplicate)

    @rpc
    def update_customer(
        self, customer_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return customers.change(self.ports, customer_id, load(customer_write_schema, data),
                                scope)

    @rpc
    def get_customer(
        self, customer_id: str, scope: dict | None = None, include_contacts: bool = True
    ) -> dict[str, Any]:
        """The customer with its contacts and its insights (health score, RFM segment, and
        why), computed by the numbers part."""
        return customers.read(self.ports, customer_id, load(scope_schema, scope),
                              include_contacts)

    @rpc
    def list_customers(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(customer_filters_schema, filters)
        return customers.list_page(self.ports, filters, load(scope_schema, scope),
                                   paged(cursor, limit))

    @rpc
    def tag_customer(
        self, customer_id: str, add: list | None = None, remove: list | None = None,
        scope: dict | None = None,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        change = load(tag_change_schema, {"add": add or [], "remove": remove or []})
        return customers.tag(self.ports, customer_id, change, scope)

    @rpc
    def assign_customer(
        self, customer_id: str, owner_id: str, scope: dict | None = None,
        team_id: str | None = None, include_open_opportunities: bool = False,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        """Give the customer (and optionally its open opportunities) to `owner_id`. With a
        `command_id`, a repeat does nothing and answers the customer as it is now."""
        command_id = checked_command_id(command_id)
        return customers.assign(self.ports, customer_id, owner_id, load(scope_schema, scope),
                                team_id, include_open_opportunities, command_id)

    @rpc
    def find_duplicate_customers(
        self, customer_id: str, scope: dict | None = None
    ) -> list[dict[str, Any]]:
        """Customers that look like this one: the same credit code or a name at least 90 %
        similar (visible ones only), best first: candidates for `merge_customers`."""
        return customers.find_duplicates(self.ports, customer_id, load(scope_schema, scope))

    @rpc
    def merge_customers(
        self, target_id: str, source_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        """Merge the duplicate `source_id` into `target_id`: its contacts, opportunities and
        follow-ups move, what the target lacks is filled in, the source is kept as merged."""
        return customers.merge(self.ports, target_id, source_id, load(scope_schema, scope))

    # == contacts ==============================================================================

    @rpc
    def create_contact(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return contacts.create(self.ports, load(contact_create_schema, data), scope)

    @rpc
    def update_contact(
        self, contact_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return contacts.change(self.ports, contact_id, load(contact_write_schema, data), scope)

    @rpc
    def get_contact(self, contact_id: str, scope: dict | None = None) -> dict[str, Any]:
        return contacts.read(self.ports, contact_id, load(scope_schema, scope))

    @rpc
    def list_contacts(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(contact_filters_schema, filters)
        return contacts.list_page(self.ports, filters, load(scope_schema, scope),
                                  paged(cursor, limit))

    # == follow-ups ============================================================================

    @rpc
    def record_followup(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A call, email, meeting, visit (check-in required) or note; publishes
        `followup_recorded`. The customer is taken from the opportunity or contact when not
        given."""
        scope = load(scope_schema, scope)
        return followups.record(self.ports, load(followup_create_schema, data), scope)

    @rpc
    def list_followups(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(followup_filters_schema, filters)
        return followups.list_page(self.ports, filters, load(scope_schema, scope),
                                   paged(cursor, limit))

    # == pipelines =============================================================================

    @rpc
    def list_pipelines(self) -> list[dict[str, Any]]:
        return pipelines.list_all(self.ports)

    @rpc
    def get_pipeline(self, pipeline_id: str | None = None) -> dict[str, Any]:
        """A pipeline with its ordered stages; no id: the default pipeline."""
        return pipelines.read(self.ports, pipeline_id)

    @rpc
    def create_pipeline(self, data: dict) -> dict[str, Any]:
        return pipelines.create(self.ports, load(pipeline_write_schema, data))

    @rpc
    def update_pipeline(self, pipeline_id: str, data: dict) -> dict[str, Any]:
        """Replace name and stages. A stage keeps its identity by `id`; a stage left out is
        retired, which needs it to hold no opportunity."""
        return pipelines.change(self.ports, pipeline_id, load(pipeline_write_schema, data))

    # == opportunities =========================================================================

    @rpc
    def create_opportunity(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A new opportunity in the pipeline's first stage, or in a later open stage when the
        exit criteria of the stages before it hold."""
        scope = load(scope_schema, scope)
        return opportunities.create(self.ports, load(opportunity_create_schema, data), scope)

    @rpc
    def update_opportunity(
        self, opportunity_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        opportunities.refuse_stage_fields(data)
        return opportunities.change(self.ports, opportunity_id,
                                    load(opportunity_write_schema, data), scope)

    @rpc
    def get_opportunity(self, opportunity_id: str, scope: dict | None = None) -> dict[str, Any]:
        """The opportunity with its stage history (when each stage was entered and left)."""
        return opportunities.read(self.ports, opportunity_id, load(scope_schema, scope))

    @rpc
    def list_opportunities(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(opportunity_filters_schema, filters)
        return opportunities.list_page(self.ports, filters, load(scope_schema, scope),
                                       paged(cursor, limit))

    @rpc
    def move_opportunity(
        self, opportunity_id: str, stage_id: str, reason: str | None = None,
        scope: dict | None = None, command_id: str | None = None,
    ) -> dict[str, Any]:
        """Move to another stage of the opportunity's pipeline (the kanban drag; the rules use
        it too). Refused with PreconditionFailed listing `missing` exit criteria; won and lost
        need a reason. The stage history gets the stage left and the stage entered. With a
        `command_id`, a repeat does nothing and answers the opportunity as it is now."""
        command_id = checked_command_id(command_id)
        scope = load(scope_schema, scope)
        wanted = load(move_schema, {"stage_id": stage_id, "reason": reason})
        return opportunities.move(self.ports, opportunity_id, wanted, scope, command_id)

    @rpc
    def opportunity_board(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        """The kanban: one column per stage of the pipeline (default: the default pipeline)
        with its count, amounts per currency, weighted amounts and the newest cards."""
        filters = load(board_filters_schema, filters)
        return opportunities.board(self.ports, filters, load(scope_schema, scope))

    # == lead conversion =======================================================================

    @rpc
    def convert_lead(
        self, lead_id: str, options: dict | None = None, scope: dict | None = None,
        owner_teams: dict | None = None,
    ) -> dict[str, Any]:
        """Turn the qualified lead `lead_id` (asked of the leads service in the caller's scope:
        a lead they do not see is NotFound) into a customer (found by credit code or a close
        name, or created), a contact and an opportunity, in one transaction. Converting the
        same lead again answers the first result. `owner_teams`: the team of each user who
        may own the result (the gateway's), so the records are filed under the owner's team."""
        scope = load(scope_schema, scope)
        options = load(conversion_options_schema, options)
        return conversion.convert(self.ports, lead_id, options, scope, owner_teams)

    # == numbers: custom fields ================================================================

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

    # == quotas ================================================================================

    @rpc
    def set_quota(self, data: dict) -> dict[str, Any]:
        """Create or replace the quota of a user or team for one month or quarter."""
        return quotas.set_quota(self.db, load(quota_schema, data), self.context.actor)

    @rpc
    def list_quotas(self, filters: dict | None = None) -> list[dict[str, Any]]:
        return quotas.list_quotas(self.db, load(quota_filters_schema, filters))

    # == figures ===============================================================================

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

    # == import ================================================================================

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

    # == export ================================================================================

    @rpc
    def export(
        self, entity: str, filters: dict | None = None, scope: dict | None = None,
        format: str = "csv",
    ) -> dict[str, Any]:
        """A filtered list as a file: the same filters as list_customers / list_contacts /
        list_opportunities, plus `custom` (custom-field filters)."""
        return exporting.export(self.db, lambda name: getattr(self, name), entity, filters,
                                scope, format, pause=_yield)
