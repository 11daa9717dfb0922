"""nameko entrypoints of the service_desk service: each loads its input with the contract's
schemas and calls one use case (services/service_desk/usecases/), whose result is a plain dict."""

from __future__ import annotations

from typing import Any

from services.service_desk.contract import (  # SLA part
    EVENT_SCHEMAS,
    CalendarWriteSchema,
    CheckSlaSchema,
    ComputeClocksSchema,
    SlaPolicyWriteSchema,
    SlaPreviewSchema,
    SlaReorderSchema,
)
from services.service_desk.models import outbox
from services.service_desk.usecases import sla  # SLA part
from shared.context import CallContext, Context
from shared.db import Database
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc

setup_logging("service_desk")

# SLA part: schemas are built once
calendar_create_schema = CalendarWriteSchema()
calendar_update_schema = CalendarWriteSchema(partial=True)
policy_create_schema = SlaPolicyWriteSchema()
policy_update_schema = SlaPolicyWriteSchema(partial=True)
reorder_schema = SlaReorderSchema()
compute_clocks_schema = ComputeClocksSchema()
preview_schema = SlaPreviewSchema()
check_sla_schema = CheckSlaSchema()


class ServiceDeskService(PlatformEndpoints):
    name = "service_desk"

    db = Database("service_desk")
    events = EventOutbox("service_desk", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # -- SLA: business calendars and SLA policies ----

    @property
    def sla_ports(self) -> sla.SlaPorts:
        return sla.SlaPorts(self.db, self.events)

    @rpc
    def list_business_calendars(self) -> list[dict[str, Any]]:
        return sla.list_calendars(self.sla_ports)

    @rpc
    def get_business_calendar(self, calendar_id: str) -> dict[str, Any]:
        return sla.get_calendar(self.sla_ports, calendar_id)

    @rpc
    def create_business_calendar(self, data: dict) -> dict[str, Any]:
        return sla.create_calendar(self.sla_ports, load(calendar_create_schema, data))

    @rpc
    def update_business_calendar(self, calendar_id: str, data: dict) -> dict[str, Any]:
        """Change the given fields; an edited calendar applies to the next clock computation."""
        return sla.update_calendar(self.sla_ports, calendar_id, load(calendar_update_schema, data))

    @rpc
    def list_sla_policies(self) -> list[dict[str, Any]]:
        """In order: the first that matches a ticket applies."""
        return sla.list_policies(self.sla_ports)

    @rpc
    def get_sla_policy(self, policy_id: str) -> dict[str, Any]:
        return sla.get_policy(self.sla_ports, policy_id)

    @rpc
    def create_sla_policy(self, data: dict) -> dict[str, Any]:
        return sla.create_policy(self.sla_ports, load(policy_create_schema, data))

    @rpc
    def update_sla_policy(self, policy_id: str, data: dict) -> dict[str, Any]:
        return sla.update_policy(self.sla_ports, policy_id, load(policy_update_schema, data))

    @rpc
    def reorder_sla_policies(self, data: dict) -> list[dict[str, Any]]:
        return sla.reorder_policies(self.sla_ports, load(reorder_schema, data)["policy_ids"])

    @rpc
    def compute_clocks(self, data: dict) -> dict[str, Any]:
        """SLA clocks of a ticket's event log ({events, policy_id?, now?})."""
        values = load(compute_clocks_schema, data)
        return sla.compute_clocks(self.sla_ports, values["events"], values["policy_id"],
                                  values["now"])

    @rpc
    def sla_preview(self, data: dict) -> dict[str, Any]:
        """The policy and due instants a new ticket ({priority, customer_tier, start}) gets."""
        values = load(preview_schema, data)
        return sla.preview(self.sla_ports, values["priority"], values["customer_tier"],
                           values["start"])

    @rpc
    def check_sla(self, data: dict) -> dict[str, Any]:
        """Publish the warnings and breaches due by now for a ticket ({ticket_id, events,
        policy_id?, now?}), each once; answer them and `next_check_at`."""
        values = load(check_sla_schema, data)
        return sla.check_sla(self.sla_ports, values["ticket_id"], values["events"],
                             values["policy_id"], values["now"])
