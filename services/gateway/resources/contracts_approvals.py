"""Approval flows (admins) and approvals: my inbox, one approval with its whole trail, and the
answers (approve, reject, recall, delegate). An approval is visible to those involved in it
(submitter, CC, approvers so far, whoever acted) and to admins; to anybody else it does not
exist (404). Records are submitted for approval over RPC by the service that owns them
(`contracts.submit_for_approval`)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from services.contracts import contract
from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.http_schemas import CURSOR_DESCRIPTION, StrictSchema, page_of, paged

blp = Blueprint("contracts_approvals", __name__,
                description="Approval flows and approvals (审批): inbox, trail, decisions.")


class ApprovalFlowWriteSchema(contract.ApprovalFlowWriteSchema):
    """An approval flow: for a record type, a condition on the terms, steps in sequence."""


class ApprovalFlowSchema(Schema):
    id = fields.String()
    record_type = fields.String()
    name = fields.String()
    position = fields.Integer()
    condition = fields.String(allow_none=True)
    steps = fields.List(fields.Dict())
    cc = fields.List(fields.Dict())
    fallback_approver = fields.String(allow_none=True)
    allow_self_approval = fields.Boolean()
    active = fields.Boolean()
    version = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()


class ApprovalFlowListSchema(Schema):
    items = fields.List(fields.Nested(ApprovalFlowSchema))


class ApprovalFlowQuerySchema(StrictSchema):
    record_type = fields.String(load_default=None, validate=validate.Length(max=64))


class ApprovalBoxSchema(StrictSchema):
    box = fields.String(load_default="inbox", validate=validate.OneOf(contract.APPROVAL_BOXES),
                        metadata={"description": "inbox (default): waiting for your answer; "
                                                 "submitted: your own submissions, any status"})


ApprovalPageQuerySchema = paged(ApprovalBoxSchema, "ApprovalPageQuerySchema",
                                cursor_description=CURSOR_DESCRIPTION)


class TrailEntrySchema(Schema):
    at = fields.String()
    actor = fields.String(allow_none=True)
    action = fields.String(metadata={"description": "submitted, approve, reject, returned, "
                                                    "rejected_instance, delegated, recalled, "
                                                    "approved, voided, escalated, "
                                                    "escalation_failed"})
    comment = fields.String(allow_none=True)
    step = fields.Integer(allow_none=True)
    to_user = fields.String(metadata={"description": "delegated: the user id the answer was "
                                                     "handed to"})
    # contract approval: escalation
    to_users = fields.List(fields.String(), metadata={
        "description": "escalated: the escalation approvers added to the step"})
    waiting = fields.List(fields.String(), metadata={
        "description": "escalated: the approvers who had not answered"})
    terms_hash = fields.String()
    terms_version = fields.Integer()


class ApprovalSchema(Schema):
    id = fields.String()
    record_type = fields.String()
    record_id = fields.String()
    status = fields.String(metadata={"enum": list(contract.APPROVAL_STATUSES)})
    flow_id = fields.String(allow_none=True)
    flow_name = fields.String(allow_none=True)
    submitter = fields.String()
    terms = fields.Dict()
    terms_hash = fields.String()
    terms_version = fields.Integer()
    current_step = fields.Integer(allow_none=True)
    pending_approvers = fields.List(fields.String())
    cc = fields.List(fields.String())
    steps = fields.List(fields.Dict())
    trail = fields.List(fields.Nested(TrailEntrySchema, unknown=RAISE))
    submitted_at = fields.String()
    finished_at = fields.String(allow_none=True)


ApprovalPageSchema = page_of(ApprovalSchema, "ApprovalPageSchema")


class ApprovalAnswerSchema(StrictSchema):
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    terms_hash = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(equal=64),
                               metadata={"description": "the hash of the terms you saw: a "
                                                        "decision on other terms is a 409"})


class ApprovalRecallSchema(StrictSchema):
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class ApprovalDelegateSchema(contract.ApprovalDelegateSchema):
    """Hand your answer on the current step to another user."""


@blp.route("/approval-flows", methods=["GET"])
@blp.arguments(ApprovalFlowQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, ApprovalFlowListSchema)
def list_flows(query: dict[str, Any]) -> Any:
    """Approval flows (admins), by record type and position."""
    require_role("admin")
    return {"items": rpc_call("contracts", "list_approval_flows",
                              record_type=query.get("record_type"))}


@blp.route("/approval-flows", methods=["POST"])
@blp.arguments(ApprovalFlowWriteSchema())
@blp.response(201, ApprovalFlowSchema)
def create_flow(data: dict[str, Any]) -> Any:
    """Define a flow (admins): a bad condition or step is a 422 naming it (`steps.0.mode`)."""
    require_role("admin")
    flow = rpc_call("contracts", "define_approval_flow", data=data)
    return flow, 201, {"Location": f"/approval-flows/{flow['id']}"}


@blp.route("/approval-flows/<string:flow_id>", methods=["GET"])
@blp.response(200, ApprovalFlowSchema)
def get_flow(flow_id: str) -> Any:
    require_role("admin")
    return rpc_call("contracts", "get_approval_flow", flow_id=flow_id)


@blp.route("/approval-flows/<string:flow_id>", methods=["PUT"])
@blp.arguments(ApprovalFlowWriteSchema())
@blp.response(200, ApprovalFlowSchema)
def update_flow(data: dict[str, Any], flow_id: str) -> Any:
    """Replace a flow (a new version); approvals already submitted keep their steps."""
    require_role("admin")
    return rpc_call("contracts", "update_approval_flow", flow_id=flow_id, data=data)


@blp.route("/approvals", methods=["GET"])
@blp.arguments(ApprovalPageQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, ApprovalPageSchema)
def my_approvals(query: dict[str, Any]) -> Any:
    """My approvals, newest submission first: `box=inbox` (default) those waiting for your
    answer, `box=submitted` your own submissions whatever their status."""
    return rpc_call("contracts", "list_my_approvals", user_id=current_principal().user_id,
                    cursor=query.get("cursor"), limit=query.get("limit") or 50,
                    box=query["box"])


@blp.route("/approvals/<string:approval_id>", methods=["GET"])
@blp.response(200, ApprovalSchema)
def get_approval(approval_id: str) -> Any:
    """One approval with its steps and whole trail (who, when, what, comment, which terms)."""
    principal = current_principal()
    return rpc_call("contracts", "get_approval", approval_id=approval_id,
                    user_id=principal.user_id, see_all=principal.role == "admin")


def _decide(approval_id: str, decision: str, data: dict[str, Any]) -> Any:
    return rpc_call("contracts", "decide_approval", approval_id=approval_id,
                    user_id=current_principal().user_id,
                    data={"decision": decision, **data})


@blp.route("/approvals/<string:approval_id>/approve", methods=["POST"])
@blp.arguments(ApprovalAnswerSchema())
@blp.response(200, ApprovalSchema)
def approve(data: dict[str, Any], approval_id: str) -> Any:
    """Approve the current step with an optional comment."""
    return _decide(approval_id, "approve", data)


@blp.route("/approvals/<string:approval_id>/reject", methods=["POST"])
@blp.arguments(ApprovalAnswerSchema())
@blp.response(200, ApprovalSchema)
def reject(data: dict[str, Any], approval_id: str) -> Any:
    """Reject: back to the submitter, or to the previous step when the step says so."""
    return _decide(approval_id, "reject", data)


@blp.route("/approvals/<string:approval_id>/recall", methods=["POST"])
@blp.arguments(ApprovalRecallSchema())
@blp.response(200, ApprovalSchema)
def recall(data: dict[str, Any], approval_id: str) -> Any:
    """The submitter takes a pending approval back."""
    return rpc_call("contracts", "recall_approval", approval_id=approval_id,
                    user_id=current_principal().user_id, comment=data.get("comment"))


@blp.route("/approvals/<string:approval_id>/delegate", methods=["POST"])
@blp.arguments(ApprovalDelegateSchema())
@blp.response(200, ApprovalSchema)
def delegate(data: dict[str, Any], approval_id: str) -> Any:
    """Hand your answer on the current step to another user."""
    return rpc_call("contracts", "delegate_approval", approval_id=approval_id,
                    user_id=current_principal().user_id, data=data)
