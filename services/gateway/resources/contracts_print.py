"""Print templates (打印模板, admins): list, create, read, replace, and a preview of a template as
the PDF of a sample quote. A template is HTML+CSS with Jinja2 placeholders rendered in a sandbox;
one that does not render is refused at save with a 422 at `body`. Quote PDFs come with quotes."""

from __future__ import annotations

import base64
from typing import Any

from flask import Response
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from services.contracts import contract
from services.gateway.app import require_role, rpc_call
from services.gateway.http_schemas import StrictSchema

blp = Blueprint("contracts_print", __name__,
                description="Print templates (打印模板) for quote PDFs (admins).")


class PrintTemplateWriteSchema(contract.PrintTemplateWriteSchema):
    """A print template: HTML+CSS with Jinja2 placeholders (`{{ quote.number }}`,
    `{% for line in quote.lines %}`, `{{ company.name }}`, `{{ quote.amount_in_words }}`)."""


class PrintTemplateSchema(Schema):
    id = fields.String()
    record_type = fields.String(metadata={"enum": list(contract.PRINT_RECORD_TYPES)})
    name = fields.String()
    body = fields.String()
    is_default = fields.Boolean()
    version = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()


class PrintTemplateListSchema(Schema):
    items = fields.List(fields.Nested(PrintTemplateSchema))


class PrintTemplateQuerySchema(StrictSchema):
    record_type = fields.String(load_default=None,
                                validate=validate.OneOf(contract.PRINT_RECORD_TYPES))


@blp.route("/print-templates", methods=["GET"])
@blp.arguments(PrintTemplateQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, PrintTemplateListSchema)
def list_templates(query: dict[str, Any]) -> Any:
    """Print templates (admins), by record type and name."""
    require_role("admin")
    return {"items": rpc_call("contracts", "list_print_templates",
                              record_type=query.get("record_type"))}


@blp.route("/print-templates", methods=["POST"])
@blp.arguments(PrintTemplateWriteSchema())
@blp.response(201, PrintTemplateSchema)
def create_template(data: dict[str, Any]) -> Any:
    """Create a template (admins); one that fails to render is a 422 at `body`."""
    require_role("admin")
    row = rpc_call("contracts", "create_print_template", data=data)
    return row, 201, {"Location": f"/print-templates/{row['id']}"}


@blp.route("/print-templates/<string:template_id>", methods=["GET"])
@blp.response(200, PrintTemplateSchema)
def get_template(template_id: str) -> Any:
    require_role("admin")
    return rpc_call("contracts", "get_print_template", template_id=template_id)


@blp.route("/print-templates/<string:template_id>", methods=["PUT"])
@blp.arguments(PrintTemplateWriteSchema())
@blp.response(200, PrintTemplateSchema)
def update_template(data: dict[str, Any], template_id: str) -> Any:
    """Replace a template (a new version); a template that fails to render is a 422 at `body`."""
    require_role("admin")
    return rpc_call("contracts", "update_print_template", template_id=template_id, data=data)


@blp.route("/print-templates/<string:template_id>/preview", methods=["POST"])
@blp.response(200, description="The template rendered against a sample quote (application/pdf).",
              content_type="application/pdf")
def preview_template(template_id: str) -> Any:
    require_role("admin")
    pdf = rpc_call("contracts", "preview_print_template", template_id=template_id)
    return Response(base64.b64decode(pdf), mimetype="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="preview.pdf"'})
