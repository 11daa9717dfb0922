"""Service desk groups (queues), routing rules and web forms: one service_desk RPC each.
Everybody signed in reads groups and routing rules; admins and managers write them (a
manager the groups they manage, the service checks); web forms are the admins'. The public
side of the forms (no API key) is services/gateway/resources/service_desk_forms_public.py."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.service_desk import contract as desk

blp = Blueprint("service_desk_groups", __name__,
                description="Service desk groups (queues) and their members, routing rules "
                            "and web forms.")

WRITERS = ("admin", "manager")


class TicketGroupListSchema(Schema):
    items = fields.List(fields.Nested(desk.TicketGroupSchema))


class TicketRoutingRuleListSchema(Schema):
    items = fields.List(fields.Nested(desk.TicketRoutingRuleSchema))


class TicketFormListSchema(Schema):
    items = fields.List(fields.Nested(desk.TicketFormSchema))


class TicketGroupUpdateBody(desk.TicketGroupWriteSchema):
    """Any fields of a group; those left out keep their values (`members` replaces)."""


class TicketRoutingRuleUpdateBody(desk.TicketRoutingRuleWriteSchema):
    """Any fields of a routing rule; those left out keep their values."""


class TicketFormUpdateBody(desk.TicketFormWriteSchema):
    """Any fields of a web form; those left out keep their values."""


def _principal() -> dict[str, Any]:
    principal = current_principal()
    return {"user_id": principal.user_id, "role": principal.role}


# -- groups ----------------------------------------------------------------------------------


@blp.route("/ticket-groups", methods=["GET"])
@blp.response(200, TicketGroupListSchema)
def list_ticket_groups() -> Any:
    """Every group with its members, their skills, capacity and open tickets."""
    current_principal()
    return {"items": rpc_call("service_desk", "list_ticket_groups")}


@blp.route("/ticket-groups", methods=["POST"])
@blp.arguments(desk.TicketGroupWriteSchema())
@blp.response(201, desk.TicketGroupSchema)
def create_ticket_group(data: dict[str, Any]) -> Any:
    """Create a group (admins; a manager creates groups they manage)."""
    require_role(*WRITERS)
    group = rpc_call("service_desk", "create_ticket_group", data=data, principal=_principal())
    return group, 201, {"Location": f"/ticket-groups/{group['id']}"}


@blp.route("/ticket-groups/<string:group_id>", methods=["GET"])
@blp.response(200, desk.TicketGroupSchema)
def get_ticket_group(group_id: str) -> Any:
    """A group with its members."""
    current_principal()
    return rpc_call("service_desk", "get_ticket_group", group_id=group_id)


@blp.route("/ticket-groups/<string:group_id>", methods=["PATCH"])
@blp.arguments(TicketGroupUpdateBody(partial=True))
@blp.response(200, desk.TicketGroupSchema)
def update_ticket_group(data: dict[str, Any], group_id: str) -> Any:
    """Change a group (admins; its manager): members, skills, capacity, availability,
    strategy."""
    require_role(*WRITERS)
    return rpc_call("service_desk", "update_ticket_group", group_id=group_id, data=data,
                    principal=_principal())


@blp.route("/ticket-groups/<string:group_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(409, description="Routing rules, forms or tickets still refer to it.")
def delete_ticket_group(group_id: str) -> Any:
    """Delete a group nothing refers to any more (admins; its manager)."""
    require_role(*WRITERS)
    rpc_call("service_desk", "delete_ticket_group", group_id=group_id, principal=_principal())
    return None


# -- routing rules ---------------------------------------------------------------------------


@blp.route("/ticket-routing-rules", methods=["GET"])
@blp.response(200, TicketRoutingRuleListSchema)
def list_routing_rules() -> Any:
    """The routing rules in order: the first enabled one matching a ticket routes it."""
    current_principal()
    return {"items": rpc_call("service_desk", "list_routing_rules")}


@blp.route("/ticket-routing-rules", methods=["POST"])
@blp.arguments(desk.TicketRoutingRuleWriteSchema())
@blp.response(201, desk.TicketRoutingRuleSchema)
def create_routing_rule(data: dict[str, Any]) -> Any:
    """A routing rule, placed last (admins; a manager for the groups they manage)."""
    require_role(*WRITERS)
    rule = rpc_call("service_desk", "create_routing_rule", data=data, principal=_principal())
    return rule, 201, {"Location": f"/ticket-routing-rules/{rule['id']}"}


@blp.route("/ticket-routing-rules/order", methods=["PUT"])
@blp.arguments(desk.TicketRoutingReorderSchema())
@blp.response(200, TicketRoutingRuleListSchema)
def reorder_routing_rules(data: dict[str, Any]) -> Any:
    """Put the routing rules in a new order (admin): every rule id exactly once."""
    require_role("admin")
    return {"items": rpc_call("service_desk", "reorder_routing_rules", data=data,
                              principal=_principal())}


@blp.route("/ticket-routing-rules/<string:rule_id>", methods=["GET"])
@blp.response(200, desk.TicketRoutingRuleSchema)
def get_routing_rule(rule_id: str) -> Any:
    """A routing rule."""
    current_principal()
    return rpc_call("service_desk", "get_routing_rule", rule_id=rule_id)


@blp.route("/ticket-routing-rules/<string:rule_id>", methods=["PATCH"])
@blp.arguments(TicketRoutingRuleUpdateBody(partial=True))
@blp.response(200, desk.TicketRoutingRuleSchema)
def update_routing_rule(data: dict[str, Any], rule_id: str) -> Any:
    """Change a routing rule (admins; a manager of its group)."""
    require_role(*WRITERS)
    return rpc_call("service_desk", "update_routing_rule", rule_id=rule_id, data=data,
                    principal=_principal())


@blp.route("/ticket-routing-rules/<string:rule_id>", methods=["DELETE"])
@blp.response(204)
def delete_routing_rule(rule_id: str) -> Any:
    """Delete a routing rule (admins; a manager of its group)."""
    require_role(*WRITERS)
    rpc_call("service_desk", "delete_routing_rule", rule_id=rule_id, principal=_principal())
    return None


# -- web forms -------------------------------------------------------------------------------


@blp.route("/ticket-forms", methods=["GET"])
@blp.response(200, TicketFormListSchema)
def list_ticket_forms() -> Any:
    """Every web form (admin); tokens are never listed."""
    require_role("admin")
    return {"items": rpc_call("service_desk", "list_ticket_forms", principal=_principal())}


@blp.route("/ticket-forms", methods=["POST"])
@blp.arguments(desk.TicketFormWriteSchema())
@blp.response(201, desk.TicketFormSchema)
def create_ticket_form(data: dict[str, Any]) -> Any:
    """Create a web form (admin). The answer's `token` is shown this once: the site sends it
    with every post (rotate it if it leaks)."""
    require_role("admin")
    form = rpc_call("service_desk", "create_ticket_form", data=data, principal=_principal())
    return form, 201, {"Location": f"/ticket-forms/{form['id']}"}


@blp.route("/ticket-forms/<string:form_id>", methods=["GET"])
@blp.response(200, desk.TicketFormSchema)
def get_ticket_form(form_id: str) -> Any:
    """A web form (admin), without its token."""
    require_role("admin")
    return rpc_call("service_desk", "get_ticket_form", form_id=form_id, principal=_principal())


@blp.route("/ticket-forms/<string:form_id>", methods=["PATCH"])
@blp.arguments(TicketFormUpdateBody(partial=True))
@blp.response(200, desk.TicketFormSchema)
def update_ticket_form(data: dict[str, Any], form_id: str) -> Any:
    """Change a web form (admin): origins, default group and type, limits, enabled."""
    require_role("admin")
    return rpc_call("service_desk", "update_ticket_form", form_id=form_id, data=data,
                    principal=_principal())


@blp.route("/ticket-forms/<string:form_id>/token", methods=["POST"])
@blp.response(200, desk.TicketFormSchema)
def rotate_ticket_form_token(form_id: str) -> Any:
    """A new token for the form (admin), shown this once; the old one stops working."""
    require_role("admin")
    return rpc_call("service_desk", "rotate_ticket_form_token", form_id=form_id,
                    principal=_principal())


# -- merging duplicate tickets ---------------------------------------------------------------


@blp.route("/tickets/<string:ticket_id>/merge", methods=["POST"])
@blp.arguments(desk.TicketMergeSchema())
@blp.response(200, desk.TicketSchema)
@blp.alt_response(409, description="The ticket was merged into another one already.")
@blp.alt_response(412, description="A closed ticket is neither merged nor merged into.")
def merge_tickets(data: dict[str, Any], ticket_id: str) -> Any:
    """Merge this duplicate ticket `into` another you see: it closes with a link
    (`merged_into_id`), the other keeps a note with its requester and conversation, both
    histories say so. Answers the ticket merged into; a repeat changes nothing."""
    return rpc_call("service_desk", "merge_tickets", ticket_id=ticket_id, data=data,
                    scope=tickets_scope())
