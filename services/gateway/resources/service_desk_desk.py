"""The agents' desk in the console (console-desk): the queue with each ticket's SLA state and a
draft knowledge-base article from a solved ticket (a ticket's clocks: `GET
/tickets/{ticket_id}/sla`, service_desk_sla.py). One service_desk
RPC each, with the tickets' visibility (a ticket out of sight is a 404 like a missing one)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.http_schemas import paged
from services.gateway.resources.service_desk_kb import WRITERS
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.service_desk import contract as desk

blp = Blueprint("service_desk_desk", __name__,
                description="The agents' desk: the queue with SLA states, draft articles.")

DeskQueueQuery = paged(desk.DeskQueueFiltersSchema, "DeskQueueQuery")


@blp.route("/desk/queue", methods=["GET"])
@blp.arguments(DeskQueueQuery(), location="query", unknown=RAISE)
@blp.response(200, desk.DeskQueuePageSchema)
def desk_queue(query: dict[str, Any]) -> Any:
    """The tickets you see, newest first, in a view: `mine` (assigned to you), `groups` (your
    groups' tickets), `unassigned`, `all`; filters status, priority, group_id and `q` (number,
    subject, requester). Each ticket has its SLA `state` (none, ok, warning, breached) and the
    next due instant."""
    cursor = query.pop("cursor", None)
    limit = query.pop("limit", 50)
    return rpc_call("service_desk", "desk_queue", filters=query, scope=tickets_scope(),
                    cursor=cursor, limit=limit)


@blp.route("/tickets/<string:ticket_id>/kb-draft", methods=["POST"])
@blp.arguments(desk.DeskKbDraftSchema())
@blp.response(201, desk.KbArticleSchema)
@blp.alt_response(412, description="The ticket is not solved.")
def kb_draft(data: dict[str, Any], ticket_id: str) -> Any:
    """A draft article from a solved ticket (agents, managers, admins): the title defaults to
    the subject, the body to the public conversation (internal notes stay out)."""
    require_role(*WRITERS)
    principal = current_principal()
    article = rpc_call("service_desk", "desk_kb_draft", ticket_id=ticket_id, data=data,
                       scope=tickets_scope(),
                       principal={"user_id": principal.user_id, "role": principal.role})
    return article, 201, {"Location": f"/kb/articles/{article['id']}"}
