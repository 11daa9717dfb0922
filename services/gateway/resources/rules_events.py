"""The recent events a rule's trigger listens to, for a dry run to pick from (rules service,
admins only: the event log holds every team's events)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import require_role, rpc_call
from services.gateway.resources.rules import _principal
from services.rules.contract import RecentEventListSchema, RecentEventsQuerySchema

blp = Blueprint("rules_events", __name__,
                description="Recent events for rule dry runs (rules service).")


@blp.route("/rule-events", methods=["GET"])
@blp.arguments(RecentEventsQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, RecentEventListSchema)
def list_recent_events(query: dict[str, Any]) -> Any:
    """The newest events (kept `CRM_RULES_EVENT_RETENTION_DAYS`) whose name matches one of
    `event` (repeat it: `?event=leads.lead_created&event=sales.*`), newest first; each can be
    dry-run by its `event_id` (POST /rules/dry-run). Admins only."""
    require_role("admin")
    return rpc_call("rules", "list_recent_events", query=query, principal=_principal())
