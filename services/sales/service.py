"""nameko entrypoints of the sales service: each loads its input with a contract schema, calls
one use case (services/sales/usecases/) and returns its answer.

Customers, contacts, follow-ups, pipelines, opportunities and lead conversion are here; the
numbers part (funnel, forecast, quotas, custom field definitions, import/export) comes in
through the `NumbersRpc` mixin.
"""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from nameko.exceptions import UnknownService

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
from services.sales.numbers.entrypoints import NumbersRpc
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


def paged(cursor: str | None, limit: int) -> dict[str, Any]:
    return load(page_schema, {"cursor": cursor, "limit": limit})


class SalesService(NumbersRpc, PlatformEndpoints):
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

    # == customers ================================================================================

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
    ) -> dict[str, Any]:
        """Give the customer (and optionally its open opportunities) to `owner_id`."""
        return customers.assign(self.ports, customer_id, owner_id, load(scope_schema, scope),
                                team_id, include_open_opportunities)

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

    # == contacts =================================================================================

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

    # == follow-ups ===============================================================================

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

    # == pipelines ================================================================================

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

    # == opportunities ============================================================================

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
        scope: dict | None = None,
    ) -> dict[str, Any]:
        """Move to another stage of the opportunity's pipeline (the kanban drag; the rules use
        it too). Refused with PreconditionFailed listing `missing` exit criteria; won and lost
        need a reason. The stage history gets the stage left and the stage entered."""
        scope = load(scope_schema, scope)
        wanted = load(move_schema, {"stage_id": stage_id, "reason": reason})
        return opportunities.move(self.ports, opportunity_id, wanted, scope)

    @rpc
    def opportunity_board(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        """The kanban: one column per stage of the pipeline (default: the default pipeline)
        with its count, amounts per currency, weighted amounts and the newest cards."""
        filters = load(board_filters_schema, filters)
        return opportunities.board(self.ports, filters, load(scope_schema, scope))

    # == lead conversion ==========================================================================

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
