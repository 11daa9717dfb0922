"""Print templates (打印模板): admins create, edit and list them; a template that does not render
against the sample quote is refused at save (422 at `body`); one default per record type; the
shipped default (printing.DEFAULT_TEMPLATE) applies while none is stored. PDFs travel over RPC as
base64 text (the RPC serializer is JSON)."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

from sqlalchemy import select, update

from services.contracts import printing
from services.contracts.models import PrintTemplate
from shared.envelope import utcnow
from shared.errors import NotFound, ValidationFailed


def company_header(env: dict[str, str] | None = None) -> dict[str, str]:
    """The company header from config: CRM_COMPANY_NAME, _ADDRESS, _PHONE, _TAX_NUMBER."""
    env = os.environ if env is None else env
    return {"name": env.get("CRM_COMPANY_NAME", "示例软件有限公司"),
            "address": env.get("CRM_COMPANY_ADDRESS", ""),
            "phone": env.get("CRM_COMPANY_PHONE", ""),
            "tax_number": env.get("CRM_COMPANY_TAX_NUMBER", "")}


def template_to_dict(row: PrintTemplate) -> dict[str, Any]:
    return {"id": row.id, "record_type": row.record_type, "name": row.name, "body": row.body,
            "is_default": row.is_default, "version": row.version,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _validate(body: str) -> None:
    try:
        printing.validate_template(body, company_header())
    except printing.TemplateInvalid as exc:
        raise ValidationFailed.for_fields({"body": [str(exc)[:500]]}) from exc


def _fill(session: Any, row: PrintTemplate, data: dict[str, Any]) -> None:
    row.record_type, row.name, row.body = data["record_type"], data["name"], data["body"]
    row.is_default = data["is_default"]
    if row.is_default:
        session.execute(update(PrintTemplate)
                        .where(PrintTemplate.record_type == row.record_type,
                               PrintTemplate.id != row.id)
                        .values(is_default=False))


def create_template(worker: Any, data: dict[str, Any]) -> dict[str, Any]:
    _validate(data["body"])
    now = utcnow()
    row = PrintTemplate(id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now)
    with worker.db.begin() as session:
        _fill(session, row, data)
        session.add(row)
        session.flush()
        return template_to_dict(row)


def update_template(worker: Any, template_id: str, data: dict[str, Any]) -> dict[str, Any]:
    _validate(data["body"])
    with worker.db.begin() as session:
        row = session.get(PrintTemplate, template_id)
        if row is None:
            raise NotFound("No such print template")
        _fill(session, row, data)
        row.version += 1
        row.updated_at = utcnow()
        session.flush()
        return template_to_dict(row)


def get_template(worker: Any, template_id: str) -> dict[str, Any]:
    with worker.db.begin() as session:
        row = session.get(PrintTemplate, template_id)
        if row is None:
            raise NotFound("No such print template")
        return template_to_dict(row)


def list_templates(worker: Any, record_type: str | None = None) -> list[dict[str, Any]]:
    query = select(PrintTemplate).order_by(PrintTemplate.record_type, PrintTemplate.name,
                                           PrintTemplate.id)
    if record_type:
        query = query.where(PrintTemplate.record_type == record_type)
    with worker.db.begin() as session:
        return [template_to_dict(r) for r in session.scalars(query)]


def default_body(session: Any, record_type: str) -> str:
    row = session.scalars(select(PrintTemplate).where(PrintTemplate.record_type == record_type,
                                                      PrintTemplate.is_default)).first()
    return row.body if row else printing.DEFAULT_TEMPLATE


def preview_template(worker: Any, template_id: str) -> str:
    """The template rendered against the sample quote: the PDF as base64."""
    body = get_template(worker, template_id)["body"]
    try:
        pdf = printing.render_pdf(body, printing.sample_quote(3), company_header())
    except printing.TemplateInvalid as exc:
        raise ValidationFailed.for_fields({"body": [str(exc)[:500]]}) from exc
    return base64.b64encode(pdf).decode("ascii")


def render_quote_pdf(worker: Any, quote: dict[str, Any], template_id: str | None = None) -> str:
    """A quote (plain dict) rendered with the given template or the default one; base64 PDF."""
    with worker.db.begin() as session:
        if template_id:
            row = session.get(PrintTemplate, template_id)
            if row is None:
                raise NotFound("No such print template")
            body = row.body
        else:
            body = default_body(session, "quote")
    try:
        pdf = printing.render_pdf(body, quote, company_header())
    except printing.TemplateInvalid as exc:
        raise ValidationFailed.for_fields({"body": [str(exc)[:500]]}) from exc
    return base64.b64encode(pdf).decode("ascii")


def _percent(value: Any) -> str:
    return f"{value}%"


def _discount_text(discount: dict[str, Any] | None) -> str:
    if not discount:
        return ""
    return _percent(discount["value"]) if discount["kind"] == "percent" else f"¥{discount['value']}"


def printable_quote(quote: dict[str, Any], customer_name: str) -> dict[str, Any]:
    """The fields a print template reads (printing.sample_quote's shape) from a stored quote
    (usecases/quotes.py's dict). An optional line is printed with a note: it is in no total."""
    lines = []
    for line in quote["lines"]:
        note = line.get("note")
        if line.get("optional"):
            note = f"{note}（可选，不计入合计）" if note else "可选，不计入合计"
        lines.append({
            "product_code": line["product_code"], "product_name": line["product_name"],
            "unit": line["unit"], "quantity": line["quantity"], "unit_price": line["unit_price"],
            "discount": _discount_text(line.get("discount")),
            "tax_rate": _percent(line["tax_rate"]), "net": line["net"], "tax": line["tax"],
            "total": line["total"], "section": line.get("section"), "note": note,
        })
    totals = quote["totals"]
    return {"id": quote["id"], "number": quote["id"][:8].upper(), "version": quote["version"],
            "customer_name": customer_name, "lines": lines,
            "totals": {"net": totals["net_total"], "tax": totals["tax_total"],
                       "total": totals["grand_total"]},
            "amount_in_words": quote["amount_in_words"], "valid_until": quote["valid_until"]}
