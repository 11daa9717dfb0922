"""Service desk e-mail: a ticket's attachments (listed and downloaded) and its outgoing mail,
with the ticket's visibility (a ticket out of sight is a 404, its attachments too)."""

from __future__ import annotations

import base64
from typing import Any

from flask_smorest import Blueprint

from services.gateway.app import rpc_call
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.gateway.uploads import file_response
from services.service_desk import contract as desk

blp = Blueprint("service_desk_mail", __name__,
                description="Service desk e-mail: attachments and outgoing replies of tickets.")


@blp.route("/tickets/<string:ticket_id>/attachments", methods=["GET"])
@blp.response(200, desk.TicketAttachmentListSchema)
def list_ticket_attachments(ticket_id: str) -> Any:
    """The files that came with the ticket's mail (within the intake's size limits)."""
    return rpc_call("service_desk", "list_ticket_attachments", ticket_id=ticket_id,
                    scope=tickets_scope())


@blp.route("/tickets/<string:ticket_id>/attachments/<string:attachment_id>", methods=["GET"])
@blp.response(200, description="The file, with its content type.",
              content_type="application/octet-stream")
def download_ticket_attachment(ticket_id: str, attachment_id: str) -> Any:
    """Download one attachment (Content-Disposition: attachment, the original file name).
    Always served as application/octet-stream: the sender chose the declared type (in the
    list), and a text/html one must not run as a page of this origin."""
    found = rpc_call("service_desk", "get_ticket_attachment", ticket_id=ticket_id,
                     attachment_id=attachment_id, scope=tickets_scope())
    return file_response(found["filename"], base64.b64decode(found["content"]))


@blp.route("/tickets/<string:ticket_id>/mail", methods=["GET"])
@blp.response(200, desk.TicketMailListSchema)
def list_ticket_mail(ticket_id: str) -> Any:
    """The ticket's outgoing mail (one per public reply) and how far each got."""
    return rpc_call("service_desk", "list_ticket_mail", ticket_id=ticket_id,
                    scope=tickets_scope())
