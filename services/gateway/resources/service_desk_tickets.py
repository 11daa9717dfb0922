"""Service desk tickets: one service_desk RPC each, with the caller's row-level visibility
(admins all tickets; managers their teams' members' and unassigned ones; everybody else the
tickets assigned to them and unassigned ones). A ticket out of sight is a 404 like a missing
one; a refused status move is a 412 naming the statuses."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import current_principal, rpc_call
from services.gateway.http_schemas import page_of, paged
from services.service_desk import contract as desk

blp = Blueprint("service_desk_tickets", __name__,
                description="Service desk tickets, their history and replies.")

# A new ticket's group comes from routing (the RPC takes it from trusted internal callers); an
# agent moves a ticket to another group with the command POST /tickets/{id}/group, never
# through create or PATCH (whose schema refuses `group_id` as an unknown field).
HTTP_CREATE_EXCLUDED = ("group_id",)
TicketPage = page_of(desk.TicketSchema, "TicketPage")
TicketListQuery = paged(desk.TicketFiltersSchema, "TicketListQuery")


class TicketReplyResultSchema(desk.TicketSchema):
    entry = desk._f.Nested(desk.TicketEntrySchema)


def tickets_scope() -> dict[str, Any]:
    """The caller's tickets scope (see Principal.tickets_scope)."""
    return current_principal().tickets_scope()


@blp.route("/tickets", methods=["POST"])
@blp.arguments(desk.TicketCreateSchema(exclude=HTTP_CREATE_EXCLUDED))
@blp.response(201, desk.TicketSchema)
def create_ticket(data: dict[str, Any]) -> Any:
    """A new ticket (status new, number T-000123); its assignee must be within your scope, its
    `customer_id` (optional: the requester's address finds it) a customer you see in sales
    (the service desk asks sales with your scope; hidden or missing: 422 on the field)."""
    ticket = rpc_call("service_desk", "create_ticket", data=data, scope=tickets_scope())
    return ticket, 201, {"Location": f"/tickets/{ticket['id']}"}


@blp.route("/tickets", methods=["GET"])
@blp.arguments(TicketListQuery(), location="query", unknown=RAISE)
@blp.response(200, TicketPage)
def list_tickets(query: dict[str, Any]) -> Any:
    """Tickets the caller sees, newest first, one page per cursor."""
    cursor = query.pop("cursor", None)
    limit = query.pop("limit", 50)
    return rpc_call("service_desk", "list_tickets", filters=query, scope=tickets_scope(),
                    cursor=cursor, limit=limit)


@blp.route("/tickets/<string:ticket_id>", methods=["GET"])
@blp.response(200, desk.TicketSchema)
def get_ticket(ticket_id: str) -> Any:
    """The ticket with its entries (history and conversation, internal notes included)."""
    return rpc_call("service_desk", "get_ticket", ticket_id=ticket_id, scope=tickets_scope())


@blp.route("/tickets/<string:ticket_id>", methods=["PATCH"])
@blp.arguments(desk.TicketUpdateSchema())
@blp.response(200, desk.TicketSchema)
@blp.alt_response(412, description="The status move is not allowed (`from`, `to`).")
def update_ticket(data: dict[str, Any], ticket_id: str) -> Any:
    """Change status (through the allowed transitions), priority, assignee or tags."""
    return rpc_call("service_desk", "update_ticket", ticket_id=ticket_id, data=data,
                    scope=tickets_scope())


@blp.route("/tickets/<string:ticket_id>/group", methods=["POST"])
@blp.arguments(desk.TicketGroupMoveSchema())
@blp.response(200, desk.TicketSchema)
@blp.alt_response(403, description="The caller may not move this ticket.")
@blp.alt_response(412, description="A closed ticket stays in its group.")
def move_ticket_to_group(data: dict[str, Any], ticket_id: str) -> Any:
    """Move the ticket to another group: by an admin, the manager of its group or of the
    target group, a member of its group or its assignee (403 otherwise); the target must exist
    (422 naming `group_id`). The assignee stays only when the new group is theirs. The move is
    in the ticket's history (`group_changed`) and publishes `ticket_group_changed`."""
    return rpc_call("service_desk", "move_ticket_to_group", ticket_id=ticket_id, data=data,
                    scope=tickets_scope())


@blp.route("/tickets/<string:ticket_id>/replies", methods=["POST"])
@blp.arguments(desk.TicketReplyCreateSchema())
@blp.response(201, TicketReplyResultSchema)
@blp.alt_response(412, description="A closed ticket takes no replies.")
def add_ticket_reply(data: dict[str, Any], ticket_id: str) -> Any:
    """A public reply or an internal note (`public` false); a customer's public reply reopens a
    pending or solved ticket. Answers the ticket and the new `entry`."""
    return rpc_call("service_desk", "add_ticket_reply", ticket_id=ticket_id, data=data,
                    scope=tickets_scope()), 201
