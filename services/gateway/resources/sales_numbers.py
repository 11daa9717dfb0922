"""Funnel, forecast, quotas, custom fields, import and export: one sales RPC per request,
with the caller's visibility scope. A `team_id` filter is resolved here to the team's members
(the gateway owns teams); custom-field filters are `custom.<key>[__op]=value` query params."""

from __future__ import annotations

import base64
import json
import logging
from datetime import date
from typing import Any

from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema
from sqlalchemy import select

from services.gateway.app import current_principal, gateway, require_role, rpc_call
from services.gateway.identity.models import Team, User
from services.gateway.problems import (
    PROBLEM_BASE,
    ApiProblem,
    validation_problem,
)
from services.gateway.resources.sales import custom_params, sales_scope
from services.gateway.resources.sales_numbers_schemas import (
    CUSTOM_FIELDS_DOC,
    EXPORT_FILTERS,
    CustomFieldCreateSchema,
    CustomFieldQuerySchema,
    CustomFieldSchema,
    CustomFieldUpdateSchema,
    DormantQuerySchema,
    DrillQuerySchema,
    ExportQuerySchema,
    ImportFileSchema,
    ImportFormSchema,
    ImportQuerySchema,
    QuotaQuerySchema,
    QuotaWriteSchema,
    ReportQuerySchema,
    SnapshotPageSchema,
    SnapshotQuerySchema,
)
from services.gateway.uploads import UploadLimit, allow_uploads
from services.sales.numbers import contract as cf
from services.sales.numbers import contract as import_rules

log = logging.getLogger("services.gateway.sales_numbers")

blp = Blueprint(
    "sales_numbers", __name__, description="Funnel, forecast, quotas, custom fields, import."
)

# Imports are bulk writes into other people's view of the data (duplicates, owners): like a
# mature CRM's "import" permission, admins and managers have it, reps do not.
IMPORT_ROLES = ("admin", "manager")
IMPORT_UPLOAD = UploadLimit("sales_numbers.start_import", "An import file",
                            import_rules.MAX_FILE_BYTES, IMPORT_ROLES)
MAX_UPLOAD_BYTES = IMPORT_UPLOAD.request_bytes
IMPORT_LIMITS_DOC = (
    f"Who: {' and '.join(IMPORT_ROLES)} (a rep gets 403). Limits: {import_rules.limits_text()}. "
    "A larger request is a 413 naming the limit; a file with too many rows is a 422 naming "
    "`file`; a user over their jobs or rows a day is a 409. The rows are processed in the "
    "background in batches; poll the job for `processed_rows` / `total_rows` and "
    "`progress_percent`. A dry run writes nothing: it reports `would_create`, `would_update` "
    "and `would_skip` (and 0 created)."
)
FIGURES = ("funnel", "won", "lost", "cycle", "forecast", "channel", "slippage", "dormant",
           "quota")


# -- helpers ---------------------------------------------------------------------------------


def _team_members(team_id: str) -> list[str]:
    with gateway().store.read() as session:
        if session.get(Team, team_id) is None:
            raise validation_problem({"team_id": ["No such team."]})
        return list(session.scalars(select(User.id).where(User.team_id == team_id)))


def _filters(query: dict[str, Any], schema: type[Schema] = ReportQuerySchema) -> dict[str, Any]:
    known = set(schema().fields)
    custom = custom_params(known)
    filters: dict[str, Any] = {}
    if query.get("owner_id"):
        filters["owner_ids"] = list(query["owner_id"])
    if query.get("team_id"):
        members = _team_members(query["team_id"])
        filters["owner_ids"] = [o for o in filters.get("owner_ids", members) if o in members]
    for name in ("pipeline_id", "period_kind"):
        if query.get(name):
            filters[name] = query[name]
    for name in ("date_from", "date_to"):
        if query.get(name):
            filters[name] = query[name].isoformat()
    if custom:
        filters["custom"] = custom
    return filters


def _report(method: str, query: dict[str, Any], **extra: Any) -> Any:
    return rpc_call("sales", method, filters=_filters(query), scope=sales_scope(), **extra)


# -- custom fields ---------------------------------------------------------------------------


@blp.route("/custom-fields", methods=["GET"])
@blp.arguments(CustomFieldQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, CustomFieldSchema(many=True), description=CUSTOM_FIELDS_DOC)
def list_custom_fields(query: dict[str, Any]) -> Any:
    """Custom field definitions (every user: forms need them)."""
    current_principal()
    return rpc_call("sales", "list_custom_fields", entity=query.get("entity"),
                    include_inactive=query["include_inactive"])


@blp.route("/custom-fields", methods=["POST"])
@blp.arguments(CustomFieldCreateSchema())
@blp.response(201, CustomFieldSchema, description=CUSTOM_FIELDS_DOC)
def create_custom_field(data: dict[str, Any]) -> Any:
    """Add a custom field to customers, contacts or opportunities (admin)."""
    require_role("admin")
    field = rpc_call("sales", "define_custom_field", data=data)
    return field, 201, {"Location": f"/custom-fields/{field['id']}"}


@blp.route("/custom-fields/<string:field_id>", methods=["PATCH"])
@blp.arguments(CustomFieldUpdateSchema())
@blp.response(200, CustomFieldSchema)
def update_custom_field(data: dict[str, Any], field_id: str) -> Any:
    """Change a custom field's label, rules, order or `active` (admin); entity, key and type
    stay."""
    require_role("admin")
    return rpc_call("sales", "update_custom_field", field_id=field_id, data=data)


# -- quotas ----------------------------------------------------------------------------------


@blp.route("/quotas", methods=["GET"])
@blp.arguments(QuotaQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, description="Quotas (a rep sees their own, a manager their team's).")
def list_quotas(query: dict[str, Any]) -> Any:
    """Quotas per user and team per month or quarter."""
    principal = current_principal()
    filters: dict[str, Any] = {k: v for k, v in query.items() if k in ("team_id", "period_kind")}
    for name in ("date_from", "date_to"):
        if query.get(name):
            filters[name] = query[name].isoformat()
    scope = sales_scope()
    users = query.get("user_id")
    if not scope.get("all"):
        allowed = scope["owner_ids"]
        users = [u for u in users if u in allowed] if users else allowed
        if query.get("team_id") and query["team_id"] != principal.team_id and \
                principal.role != "manager":
            filters.pop("team_id")
    if users is not None:
        filters["user_ids"] = users
    return rpc_call("sales", "list_quotas", filters=filters)


@blp.route("/quotas", methods=["PUT"])
@blp.arguments(QuotaWriteSchema())
@blp.response(200, description="The quota (created or replaced).")
def put_quota(data: dict[str, Any]) -> Any:
    """Set the quota of a user or a team for a month or quarter (manager within their teams,
    admin)."""
    principal = require_role("admin", "manager")
    if bool(data.get("user_id")) == bool(data.get("team_id")):
        raise validation_problem({"user_id": ["Give exactly one of user_id or team_id."]})
    with gateway().store.read() as session:
        if data.get("user_id") and session.get(User, data["user_id"]) is None:
            raise validation_problem({"user_id": ["No such user."]})
        team = session.get(Team, data["team_id"]) if data.get("team_id") else None
        if data.get("team_id") and team is None:
            raise validation_problem({"team_id": ["No such team."]})
    if principal.role == "manager":
        allowed = data.get("user_id") in principal.leads_scope()["owner_ids"] if \
            data.get("user_id") else team.manager_id == principal.user_id
        if not allowed:
            raise ApiProblem(403, "Managers set quotas within their own teams only.",
                             type_=PROBLEM_BASE + "forbidden")
    payload = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
    return rpc_call("sales", "set_quota", data=payload)


# -- reports ---------------------------------------------------------------------------------


@blp.route("/reports/funnel", methods=["GET"])
@blp.arguments(ReportQuerySchema(), location="query")
@blp.response(200, description="Per stage: open count and amount, reached, conversion to the "
              "next stage, average days in it; win rate, loss reasons, sales cycle.")
def funnel(query: dict[str, Any]) -> Any:
    """The sales funnel of a pipeline (default: the default pipeline); the period is when the
    opportunities were created (stages) or closed (wins, losses)."""
    return _report("funnel", query)


@blp.route("/reports/forecast", methods=["GET"])
@blp.arguments(ReportQuerySchema(), location="query")
@blp.response(200, description="Weighted, commit and best case by period, owner and team.")
def forecast(query: dict[str, Any]) -> Any:
    """Weighted forecast (amount x stage probability of open opportunities closing in the
    period, plus what was won in it); default: this quarter, by month."""
    return _report("forecast", query)


@blp.route("/reports/forecast/snapshots", methods=["GET"])
@blp.arguments(SnapshotQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, SnapshotPageSchema, description="A page of forecast snapshots, newest "
              "first, like every list: `items` and `next_cursor`.")
def list_snapshots(query: dict[str, Any]) -> Any:
    """Forecast snapshots (one a week by timer, and any taken on request)."""
    current_principal()
    return rpc_call("sales", "list_forecast_snapshots", limit=query["limit"],
                    cursor=query.get("cursor"))


@blp.route("/reports/forecast/snapshots", methods=["POST"])
@blp.response(201, description="The snapshot taken.")
def take_snapshot() -> Any:
    """Take a forecast snapshot now (manager, admin)."""
    require_role("admin", "manager")
    return rpc_call("sales", "take_forecast_snapshot"), 201


@blp.route("/reports/forecast/accuracy", methods=["GET"])
@blp.arguments(ReportQuerySchema(), location="query")
@blp.response(200, description="Per period: forecast at each snapshot vs actual won, and "
              "what slipped out of the period since.")
def forecast_accuracy(query: dict[str, Any]) -> Any:
    """Forecast accuracy and slippage (default: this quarter and the two before)."""
    return _report("forecast_accuracy", query)


@blp.route("/reports/quota-performance", methods=["GET"])
@blp.arguments(ReportQuerySchema(), location="query")
@blp.response(200, description="Quota, won, attainment and gap per user and team.")
def quota_performance(query: dict[str, Any]) -> Any:
    """Performance against quota per month or quarter."""
    filters = _filters(query)
    members: dict[str, list[str]] = {}
    with gateway().store.read() as session:
        teams = [query["team_id"]] if query.get("team_id") else list(
            session.scalars(select(Team.id)))
        for team_id in teams:
            members[team_id] = list(session.scalars(select(User.id).where(
                User.team_id == team_id)))
    if query.get("team_id"):
        filters["team_id"] = query["team_id"]
    return rpc_call("sales", "quota_performance", filters=filters, scope=sales_scope(),
                    team_members=members)


@blp.route("/reports/channels", methods=["GET"])
@blp.arguments(ReportQuerySchema(), location="query")
@blp.response(200, description="Per source: opportunities, won, lost, win rate, amounts.")
def channels(query: dict[str, Any]) -> Any:
    """Conversion by lead source / channel of opportunities created in the period."""
    return _report("channel_conversion", query)


@blp.route("/reports/dormant-customers", methods=["GET"])
@blp.arguments(DormantQuerySchema(), location="query")
@blp.response(200, description="Customers with no follow-up in `days` days.")
def dormant_customers(query: dict[str, Any]) -> Any:
    """Dormant customers, one page per cursor."""
    return rpc_call("sales", "dormant_customers", days=query["days"],
                    filters=_filters(query, DormantQuerySchema), scope=sales_scope(),
                    cursor=query.get("cursor"), limit=query["limit"])


@blp.route("/reports/<string:figure>/records", methods=["GET"])
@blp.arguments(DrillQuerySchema(), location="query")
@blp.response(200, description="The records behind a figure, one page per cursor.")
def drill_down(query: dict[str, Any], figure: str) -> Any:
    """Drill down: funnel (stage_id), won, lost (reason), cycle, forecast (period_start,
    period_kind), channel (source), quota, slippage (run_id, period_start, period_kind),
    dormant (days)."""
    if figure not in FIGURES:
        raise ApiProblem(404, f"No figure {figure!r}; one of: {', '.join(FIGURES)}.",
                         type_=PROBLEM_BASE + "not-found")
    params = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in query.items()
              if k in ("stage_id", "reason", "source", "run_id", "period_start", "days",
                       "period_kind")}
    return rpc_call("sales", "drill_down", figure=figure,
                    filters=_filters(query, DrillQuerySchema), scope=sales_scope(), params=params,
                    cursor=query.get("cursor"), limit=query["limit"])


# -- import and export -----------------------------------------------------------------------


allow_uploads(blp, IMPORT_UPLOAD, require_role=require_role)


@blp.route("/imports", methods=["POST"])
@blp.arguments(ImportFormSchema(), location="form")
@blp.arguments(ImportFileSchema(), location="files")
@blp.response(202, description="The queued job; poll its Location for progress and bad rows. "
              + IMPORT_LIMITS_DOC)
@blp.alt_response(403, description=f"Only {' and '.join(IMPORT_ROLES)} may import.")
@blp.alt_response(409, description="The user has the most imports queued or running at once "
                  f"({import_rules.MAX_ACTIVE_JOBS}), or the file would take them past "
                  f"{import_rules.MAX_ROWS_PER_DAY:,} rows in 24 hours.")
@blp.alt_response(413, description="The file has more than "
                  f"{import_rules.MAX_FILE_BYTES:,} bytes.")
@blp.alt_response(422, description="A file or header problem, or more than "
                  f"{import_rules.MAX_ROWS:,} rows (`file`).")
def start_import(form: dict[str, Any], files: dict[str, Any]) -> Any:
    """Import customers or contacts from CSV or xlsx (admin, manager; multipart: file, entity,
    dry_run, on_duplicate skip|update|create). A dry run reports every bad row and field and
    what it would create, update and skip, and writes nothing."""
    principal = current_principal()
    upload = files["file"]
    content = IMPORT_UPLOAD.read(upload)
    job = rpc_call(
        "sales", "start_import", entity=form["entity"], filename=upload.filename or "import",
        content_b64=base64.b64encode(content).decode(),
        options={"dry_run": form["dry_run"], "on_duplicate": form["on_duplicate"],
                 "owner_id": principal.user_id, "team_id": principal.team_id},
        scope=sales_scope(),
    )
    return job, 202, {"Location": f"/imports/{job['id']}"}


@blp.route("/imports/<string:job_id>", methods=["GET"])
@blp.arguments(ImportQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, description="Progress (processed_rows / total_rows), counts, bad rows.")
def get_import(query: dict[str, Any], job_id: str) -> Any:
    """An import job: status, progress and its bad rows (row number and field messages)."""
    return rpc_call("sales", "get_import", job_id=job_id, scope=sales_scope(), **query)


@blp.route("/exports/<string:entity>", methods=["GET"])
@blp.arguments(ExportQuerySchema(), location="query")
@blp.response(200, description="The file (CSV UTF-8 with BOM, or xlsx), at most "
              "50,000 rows (more is a 422 on `filters`: narrow them).")
def export(query: dict[str, Any], entity: str) -> Any:
    """Export a filtered list of customers, contacts or opportunities: `format=csv|xlsx` and
    the list's own filters (as on GET /customers etc.; each names the entities it applies
    to), plus `custom.<key>[__op]=value`."""
    entities = {"customers": "customer", "contacts": "contact",
                "opportunities": "opportunity"}
    if entity not in entities:
        raise ApiProblem(404, f"No export of {entity!r}; one of: {', '.join(entities)}.",
                         type_=PROBLEM_BASE + "not-found")
    allowed = EXPORT_FILTERS[entities[entity]]
    known = set(ExportQuerySchema().fields)
    custom = custom_params(known)  # an unknown name is a 400 naming it
    wrong = {name: [f"Not a filter of {entity}; they are: {', '.join(allowed)}."]
             for name in request.args if name in known and name != "format"
             and name not in allowed}
    if wrong:
        raise validation_problem(wrong)
    # the raw values: the sales service loads them with the list's own schema
    filters: dict[str, Any] = {name: request.args[name] for name in allowed
                               if name in request.args}
    if custom:
        filters["custom"] = custom
    result = rpc_call("sales", "export", entity=entities[entity], filters=filters,
                      scope=sales_scope(), format=query["format"])
    return Response(
        base64.b64decode(result["content_b64"]), mimetype=result["content_type"],
        headers={"Content-Disposition": f'attachment; filename="{result["filename"]}"'},
    )


# -- OpenAPI: the custom fields defined now --------------------------------------------------


def _custom_fields_component(definitions: list[dict[str, Any]]) -> dict[str, Any]:
    by_entity: dict[str, dict[str, Any]] = {}
    for definition in definitions:
        kind = {"number": "integer", "decimal": "string", "date": "string",
                "boolean": "boolean", "multi_choice": "array"}.get(definition["type"], "string")
        prop: dict[str, Any] = {"type": kind, "title": definition["label"],
                                "description": "; ".join(cf.rules_of(definition))}
        if definition["type"] == "choice":
            prop["enum"] = definition["options"]
        if definition["type"] == "multi_choice":
            prop["items"] = {"type": "string", "enum": definition["options"]}
        if definition["type"] == "date":
            prop["format"] = "date"
        if definition.get("regex"):
            prop["pattern"] = definition["regex"]
        entity = by_entity.setdefault(definition["entity"], {
            "type": "object", "additionalProperties": True, "properties": {}, "required": []})
        entity["properties"][definition["key"]] = prop
        if definition.get("required"):
            entity["required"].append(definition["key"])
    return {"type": "object", "description": CUSTOM_FIELDS_DOC,
            "properties": {e: by_entity.get(e, {"type": "object",
                                                "additionalProperties": True})
                           for e in cf.ENTITIES}}


@blp.record_once
def _document_custom_fields(state: Any) -> None:
    """The spec is built once, but custom fields change at run time: the served document gets
    the definitions of the moment (left static when the sales service does not answer)."""
    app = state.app
    endpoint = "api-docs.openapi_json"
    original = app.view_functions.get(endpoint)
    if original is None:
        return

    def openapi_json() -> Any:
        response = original()
        try:
            spec = json.loads(response.get_data())
            definitions = rpc_call("sales", "list_custom_fields") or []
        except Exception:  # noqa: BLE001 - the document is served without them
            log.info("custom fields left out of the OpenAPI document", exc_info=True)
            return response
        spec.setdefault("components", {}).setdefault("schemas", {})["CustomFields"] = \
            _custom_fields_component(definitions)
        return current_app.response_class(json.dumps(spec, ensure_ascii=False),
                                          mimetype="application/json")

    app.view_functions[endpoint] = openapi_json
    # the static part, in the built spec itself: the rules and that no field is defined yet
    api = app.extensions.get("flask-smorest", {}).get("blp_name_to_api", {}).get(blp.name)
    if api is not None and "CustomFields" not in api.spec.components.schemas:
        api.spec.components.schema("CustomFields", _custom_fields_component([]))
