"""Lead endpoints: one leads RPC each, with the caller's visibility scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE
from sqlalchemy import select

from services.gateway.app import current_principal, gateway, require_role, rpc_call
from services.gateway.identity.models import User
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem
from services.gateway.schemas import (
    AssignSchema,
    BehaviourCreateSchema,
    LeadCreateSchema,
    LeadListQuerySchema,
    LeadPageSchema,
    LeadSchema,
    MergeSchema,
    OnDuplicateQuerySchema,
    ReleaseSchema,
    ScoringModelSchema,
    StatusChangeSchema,
)

blp = Blueprint("leads", __name__, description="Leads, the public pool and the scoring model.")

ERRORS_DOC = "Errors are application/problem+json."


def _scope() -> dict[str, Any]:
    """The caller's scope for the leads service; a manager also manages the public pool
    (may merge into and from pool leads without claiming them, see services/leads/README.md)."""
    principal = current_principal()
    scope = principal.leads_scope()
    if principal.role == "manager":
        scope["manage_pool"] = True
    return scope


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@blp.route("/leads", methods=["POST"])
@blp.arguments(OnDuplicateQuerySchema(), location="query", unknown=RAISE)
@blp.arguments(LeadCreateSchema())
@blp.response(201, LeadSchema, description="Created.")
@blp.alt_response(200, schema=LeadSchema, description="Merged into an existing lead (Location).")
@blp.alt_response(
    409,
    description="Duplicate: the problem names `existing_id` and `matches` of the duplicates the "
    "caller may see; a duplicate outside the caller's view is only said to exist "
    "(`existing_id` null, `matches` empty). `merge` needs edit rights on the existing lead.",
)
def create_lead(query: dict[str, Any], data: dict[str, Any]) -> Any:
    """Capture a lead; `on_duplicate` = reject (default), merge or create."""
    principal = current_principal()
    on_duplicate = data.pop("on_duplicate", None) or query.get("on_duplicate") or "reject"
    # The Idempotency-Key goes along (per user): a retry after a lost reply (a 503 behind
    # which the lead was created) is answered with the lead it created, not a 409 duplicate.
    key = g.get("idempotency_key")
    extra = {"idempotency_key": f"{principal.user_id}:{key}"} if key else {}
    result = rpc_call(
        "leads", "create_lead", data=data, on_duplicate=on_duplicate, scope=_scope(), **extra
    )
    lead = result["lead"]
    status = 200 if result.get("outcome") == "merged" else 201
    return lead, status, {"Location": f"/leads/{lead['id']}"}


@blp.route("/leads", methods=["GET"])
@blp.arguments(LeadListQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, LeadPageSchema)
def list_leads(query: dict[str, Any]) -> Any:
    """Leads visible to the caller, newest first, one page per cursor."""
    cursor = query.pop("cursor", None)
    limit = query.pop("limit", 50)
    filters = {name: _iso(value) for name, value in query.items()}
    return rpc_call(
        "leads", "list_leads", filters=filters, scope=_scope(), cursor=cursor, limit=limit
    )


@blp.route("/leads/<string:lead_id>", methods=["GET"])
@blp.response(200, LeadSchema)
def get_lead(lead_id: str) -> Any:
    """A lead with its score breakdown, behaviours and history."""
    return rpc_call("leads", "get_lead", lead_id=lead_id, scope=_scope())


@blp.route("/leads/<string:lead_id>/behaviours", methods=["POST"])
@blp.arguments(BehaviourCreateSchema())
@blp.response(201, LeadSchema)
def record_behaviour(behaviour: dict[str, Any], lead_id: str) -> Any:
    """Record a behaviour (e-mail open, visit, ...); the lead is rescored."""
    behaviour = {name: _iso(value) for name, value in behaviour.items()}
    return rpc_call(
        "leads", "record_behaviour", lead_id=lead_id, behaviour=behaviour, scope=_scope()
    )


@blp.route("/leads/<string:lead_id>/status", methods=["POST"])
@blp.arguments(StatusChangeSchema())
@blp.response(200, LeadSchema)
def change_status(data: dict[str, Any], lead_id: str) -> Any:
    """Move the lead to another status (the service enforces the allowed transitions)."""
    return rpc_call(
        "leads", "change_status", lead_id=lead_id, status=data["status"],
        reason=data.get("reason"), scope=_scope(),
    )


@blp.route("/leads/<string:lead_id>/claim", methods=["POST"])
@blp.response(200, LeadSchema)
def claim_lead(lead_id: str) -> Any:
    """Take a lead from the public pool (公海) for yourself."""
    return rpc_call(
        "leads", "claim_lead", lead_id=lead_id, user_id=current_principal().user_id,
        scope=_scope(),
    )


@blp.route("/leads/<string:lead_id>/release", methods=["POST"])
@blp.arguments(ReleaseSchema())
@blp.response(200, LeadSchema)
def release_lead(data: dict[str, Any], lead_id: str) -> Any:
    """Return a lead to the public pool."""
    return rpc_call(
        "leads", "release_lead", lead_id=lead_id, reason=data.get("reason"), scope=_scope()
    )


@blp.route("/leads/<string:lead_id>/assign", methods=["POST"])
@blp.arguments(AssignSchema())
@blp.response(200, LeadSchema)
def assign_lead(data: dict[str, Any], lead_id: str) -> Any:
    """Give the lead to an active user: admins to anyone, managers to themselves and their
    teams' members, and only leads they can see (another team's lead is a 404)."""
    principal = require_role("admin", "manager")
    owner_id = data["owner_id"]
    with gateway().store.read() as session:
        owner = session.scalar(select(User).where(User.id == owner_id))
        if owner is None or not owner.active:
            raise validation_problem({"owner_id": ["No such active user."]})
    if principal.role == "manager" and owner_id not in principal.leads_scope()["owner_ids"]:
        raise ApiProblem(
            403, "Managers assign leads within their own teams only.",
            type_=PROBLEM_BASE + "forbidden",
        )
    return rpc_call(
        "leads", "assign_lead", lead_id=lead_id, owner_id=owner_id, scope=_scope()
    )


@blp.route("/leads/<string:lead_id>/merge", methods=["POST"])
@blp.arguments(MergeSchema())
@blp.response(200, LeadSchema)
def merge_leads(data: dict[str, Any], lead_id: str) -> Any:
    """Merge `source_id` into this lead; the source is marked merged."""
    if data["source_id"] == lead_id:
        raise validation_problem({"source_id": ["Cannot merge a lead into itself."]})
    return rpc_call(
        "leads", "merge_leads", target_id=lead_id, source_id=data["source_id"], scope=_scope()
    )


@blp.route("/scoring-model", methods=["GET"])
@blp.response(200, description="The current scoring model (owned by the leads service).")
def get_scoring_model() -> Any:
    """The scoring model in force."""
    current_principal()
    return rpc_call("leads", "get_scoring_model")


@blp.route("/scoring-model", methods=["PUT"])
@blp.arguments(ScoringModelSchema())
@blp.response(200, description="The new model (version + 1); open leads are rescored.")
def put_scoring_model(model: dict[str, Any]) -> Any:
    """Replace the scoring model (admin or manager)."""
    require_role("admin", "manager")
    return rpc_call("leads", "set_scoring_model", model=model)
