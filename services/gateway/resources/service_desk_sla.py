"""Business calendars and SLA policies of the service desk: one service_desk RPC each. Every
signed-in user reads them (an agent sees why a ticket is due when it is); admins write them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.service_desk import contract as desk

blp = Blueprint(
    "service_desk_sla", __name__,
    description="Business calendars (hours, holidays, make-up workdays) and SLA policies.",
)


class CalendarListSchema(Schema):
    items = fields.List(fields.Nested(desk.CalendarSchema))


class SlaPolicyListSchema(Schema):
    items = fields.List(fields.Nested(desk.SlaPolicySchema))


class CalendarUpdateBody(desk.CalendarWriteSchema):
    """Any fields of a business calendar; those left out keep their values."""


class SlaPolicyUpdateBody(desk.SlaPolicyWriteSchema):
    """Any fields of an SLA policy; those left out keep their values."""


def _plain(value: Any) -> Any:
    """What marshmallow loaded, back to JSON for the RPC: dates and instants as ISO."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- business calendars ----------------------------------------------------------------------


@blp.route("/business-calendars", methods=["GET"])
@blp.response(200, CalendarListSchema)
def list_business_calendars() -> Any:
    """Every business calendar with its data coverage (which years it can compute)."""
    current_principal()
    return {"items": rpc_call("service_desk", "list_business_calendars")}


@blp.route("/business-calendars", methods=["POST"])
@blp.arguments(desk.CalendarWriteSchema())
@blp.response(201, desk.CalendarSchema)
def create_business_calendar(data: dict[str, Any]) -> Any:
    """Create a business calendar (admin). Default: Asia/Shanghai, Monday to Friday
    09:00-12:00 and 13:30-18:00, China's public holidays and make-up workdays."""
    require_role("admin")
    calendar = rpc_call("service_desk", "create_business_calendar", data=_plain(data))
    return calendar, 201, {"Location": f"/business-calendars/{calendar['id']}"}


@blp.route("/business-calendars/<string:calendar_id>", methods=["GET"])
@blp.response(200, desk.CalendarSchema)
def get_business_calendar(calendar_id: str) -> Any:
    """A business calendar with its coverage."""
    current_principal()
    return rpc_call("service_desk", "get_business_calendar", calendar_id=calendar_id)


@blp.route("/business-calendars/<string:calendar_id>", methods=["PATCH"])
@blp.arguments(CalendarUpdateBody(partial=True))
@blp.response(200, desk.CalendarSchema)
def update_business_calendar(data: dict[str, Any], calendar_id: str) -> Any:
    """Change a business calendar (admin): e.g. add next year's holidays and make-up workdays
    and declare the year. Open tickets' clocks follow at their next computation."""
    require_role("admin")
    return rpc_call("service_desk", "update_business_calendar", calendar_id=calendar_id,
                    data=_plain(data))


# -- SLA policies ----------------------------------------------------------------------------


@blp.route("/sla-policies", methods=["GET"])
@blp.response(200, SlaPolicyListSchema)
def list_sla_policies() -> Any:
    """The SLA policies in order: the first whose conditions match a ticket applies."""
    current_principal()
    return {"items": rpc_call("service_desk", "list_sla_policies")}


@blp.route("/sla-policies", methods=["POST"])
@blp.arguments(desk.SlaPolicyWriteSchema())
@blp.response(201, desk.SlaPolicySchema)
def create_sla_policy(data: dict[str, Any]) -> Any:
    """Create an SLA policy (admin), placed last in the order."""
    require_role("admin")
    policy = rpc_call("service_desk", "create_sla_policy", data=_plain(data))
    return policy, 201, {"Location": f"/sla-policies/{policy['id']}"}


@blp.route("/sla-policies/order", methods=["PUT"])
@blp.arguments(desk.SlaReorderSchema())
@blp.response(200, SlaPolicyListSchema)
def reorder_sla_policies(data: dict[str, Any]) -> Any:
    """Put the SLA policies in a new order (admin): every policy id exactly once."""
    require_role("admin")
    return {"items": rpc_call("service_desk", "reorder_sla_policies", data=data)}


@blp.route("/sla-policies/preview", methods=["POST"])
@blp.arguments(desk.SlaPreviewSchema())
@blp.response(200, desk.SlaClocksSchema)
def sla_preview(data: dict[str, Any]) -> Any:
    """The policy a new ticket with this priority and customer tier gets when created at
    `start`, and the instants each target and warning fall due."""
    current_principal()
    return rpc_call("service_desk", "sla_preview", data=_plain(data))


@blp.route("/tickets/<string:ticket_id>/sla", methods=["GET"])
@blp.response(200, desk.TicketSlaSchema)
def ticket_sla(ticket_id: str) -> Any:
    """A ticket's SLA now: the policy that applies and, per target (first reply, next reply,
    periodic update, resolution), its due instant, elapsed and remaining seconds, paused,
    breached or achieved, and its warnings. A ticket you do not see is a 404."""
    return rpc_call("service_desk", "ticket_sla", ticket_id=ticket_id, scope=tickets_scope())


@blp.route("/sla-policies/<string:policy_id>", methods=["GET"])
@blp.response(200, desk.SlaPolicySchema)
def get_sla_policy(policy_id: str) -> Any:
    """An SLA policy."""
    current_principal()
    return rpc_call("service_desk", "get_sla_policy", policy_id=policy_id)


@blp.route("/sla-policies/<string:policy_id>", methods=["PATCH"])
@blp.arguments(SlaPolicyUpdateBody(partial=True))
@blp.response(200, desk.SlaPolicySchema)
def update_sla_policy(data: dict[str, Any], policy_id: str) -> Any:
    """Change an SLA policy (admin). Open tickets' clocks follow at their next computation."""
    require_role("admin")
    return rpc_call("service_desk", "update_sla_policy", policy_id=policy_id, data=_plain(data))
