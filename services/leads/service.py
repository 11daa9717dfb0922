"""nameko entrypoints of the leads service: each loads its input with the contract's schemas
and calls one use case (services/leads/usecases/), whose result is the contract's plain dict."""

from __future__ import annotations

from typing import Any

from services.leads.contract import (
    EVENT_SCHEMAS,
    ON_DUPLICATE,
    BehaviourSchema,
    LeadCreateSchema,
    LeadFiltersSchema,
)
from services.leads.domain.visibility import check_owner_in_scope
from services.leads.models import outbox
from services.leads.usecases import capture, changes, queries, scoring
from shared.consumer import event_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import ValidationFailed
from shared.inbox import checked_command_id
from shared.kernel.schemas import PageSchema, ScopeSchema
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc

setup_logging("leads")

# Schemas are built once: constructing one costs more than loading a payload with it.
create_schema = LeadCreateSchema()
filters_schema = LeadFiltersSchema()
behaviour_schema = BehaviourSchema()
scope_schema = ScopeSchema()
page_schema = PageSchema()


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationFailed.for_fields({name: [f"must be one of {', '.join(allowed)}"]})
    return value


def _user_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed.for_fields({name: ["a user id is required"]})
    return value


class LeadsService(PlatformEndpoints):
    name = "leads"

    db = Database("leads")
    events = EventOutbox("leads", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # -- capture ---------------------------------------------------------------------------

    @rpc
    def create_lead(
        self,
        data: dict,
        on_duplicate: str = "reject",
        owner_id: str | None = None,
        scope: dict | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        on_duplicate = _one_of("on_duplicate", on_duplicate, ON_DUPLICATE)
        if owner_id is not None:  # before the payload: a refusal does not depend on it
            check_owner_in_scope(owner_id, scope,
                                 "a lead can be captured only for an owner within your scope",
                                 {"field": "owner_id"})
        fields = load(create_schema, data)
        return capture.create_lead(self, fields, data, on_duplicate, owner_id, scope,
                                   idempotency_key)

    # -- reads -----------------------------------------------------------------------------

    @rpc
    def get_lead(self, lead_id: str, scope: dict | None = None) -> dict[str, Any]:
        return queries.get_lead(self, lead_id, load(scope_schema, scope))

    @rpc
    def list_leads(
        self,
        filters: dict | None = None,
        scope: dict | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        return queries.list_leads(self, filters, scope, page)

    # -- changes ---------------------------------------------------------------------------

    @rpc
    def record_behaviour(
        self, lead_id: str, behaviour: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return changes.record_behaviour(self, lead_id, load(behaviour_schema, behaviour), scope)

    @rpc
    def change_status(
        self, lead_id: str, status: str, reason: str | None = None, scope: dict | None = None,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        command_id = checked_command_id(command_id)
        return changes.change_status(self, lead_id, status, reason, load(scope_schema, scope),
                                     command_id)

    @event_handler("sales", "lead_converted")
    def on_sales_lead_converted(self, envelope: dict[str, Any]) -> None:
        """The sales service turned the lead into a customer, contact and opportunity: the lead
        shows it, whatever its status was (sales is where conversion is decided)."""
        changes.convert_lead(self, envelope, "on_sales_lead_converted")

    @rpc
    def claim_lead(
        self, lead_id: str, user_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        return changes.claim_lead(self, lead_id, _user_id("user_id", user_id), scope)

    @rpc
    def release_lead(
        self, lead_id: str, reason: str | None = None, scope: dict | None = None,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        command_id = checked_command_id(command_id)
        return changes.release_lead(self, lead_id, reason, load(scope_schema, scope),
                                    command_id)

    @rpc
    def assign_lead(
        self, lead_id: str, owner_id: str, scope: dict | None = None,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        command_id = checked_command_id(command_id)
        scope = load(scope_schema, scope)
        return changes.assign_lead(self, lead_id, _user_id("owner_id", owner_id), scope,
                                   command_id)

    @rpc
    def merge_leads(
        self, target_id: str, source_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if target_id == source_id:
            raise ValidationFailed.for_fields({"source_id": ["cannot merge a lead into itself"]})
        return changes.merge_leads(self, target_id, source_id, scope)

    # -- scoring model ---------------------------------------------------------------------

    @rpc
    def get_scoring_model(self) -> dict[str, Any]:
        return scoring.get_scoring_model(self)

    @rpc
    def set_scoring_model(self, model: dict) -> dict[str, Any]:
        if not isinstance(model, dict):
            raise ValidationFailed.for_fields({"_schema": ["expected a JSON object"]})
        return scoring.set_scoring_model(self, model)
