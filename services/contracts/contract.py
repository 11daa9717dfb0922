"""The contracts service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. The gateway (and any other party) imports this module and
no other of the service.

Events go to the exchange `contracts.events` with the event type as routing key.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.kernel.schemas import PageSchema, StrictSchema

__all__ = ["EVENT_SCHEMAS"]

EVENT_SCHEMAS: dict[str, type[Schema]] = {}


# -- approvals ----
# Approval flows and instances, generic over the record they approve (services/contracts/
# domain/approvals.py explains flows, modes, fallback and the terms hash).
APPROVAL_MODES = ("all", "any", "quorum")
APPROVER_KINDS = ("user", "role", "manager", "manager_chain", "team")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "recalled", "voided")
_record_type = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$",
                               error="lower-case letters, digits and _, at most 64")


class ApproverSpecSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(APPROVER_KINDS))
    id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=36))
    role = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    levels = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(min=1, max=10))


class ApprovalStepSchema(StrictSchema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    condition = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=2000))
    approvers = fields.List(fields.Nested(ApproverSpecSchema), required=True,
                            validate=validate.Length(min=1, max=50))
    mode = fields.String(load_default="all", validate=validate.OneOf(APPROVAL_MODES))
    quorum = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(min=1, max=50))
    on_reject = fields.String(load_default="submitter",
                              validate=validate.OneOf(("submitter", "previous")))


class ApprovalFlowWriteSchema(StrictSchema):
    record_type = fields.String(required=True, validate=_record_type)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    position = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10000))
    condition = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=2000))
    steps = fields.List(fields.Nested(ApprovalStepSchema), required=True,
                        validate=validate.Length(min=1, max=20))
    cc = fields.List(fields.Nested(ApproverSpecSchema), load_default=list,
                     validate=validate.Length(max=50))
    fallback_approver = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(max=36))
    allow_self_approval = fields.Boolean(load_default=False)
    active = fields.Boolean(load_default=True)


class ApprovalSubmitSchema(StrictSchema):
    record_type = fields.String(required=True, validate=_record_type)
    record_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    terms = fields.Dict(keys=fields.String(), required=True)
    terms_version = fields.Integer(load_default=1, validate=validate.Range(min=1))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class ApprovalDecisionSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    terms_hash = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(equal=64))


class ApprovalDelegateSchema(StrictSchema):
    to_user = fields.String(required=True, validate=validate.Length(min=1, max=36))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class ApprovalAbsenceSchema(StrictSchema):
    delegate_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    until = fields.AwareDateTime(required=True)


APPROVAL_BOXES = ("inbox", "submitted")


class ApprovalPageSchema(PageSchema):
    """A page of my approvals: `inbox` (waiting for my answer) or `submitted` (mine, any
    status)."""

    box = fields.String(load_default="inbox", validate=validate.OneOf(APPROVAL_BOXES))


class ApprovalEvent(Schema):
    """About one approval instance of a record."""

    instance_id = fields.String(required=True)
    record_type = fields.String(required=True)
    record_id = fields.String(required=True)
    submitter = fields.String(required=True)
    terms_hash = fields.String(required=True)
    terms_version = fields.Integer(required=True)


class ApprovalRequested(ApprovalEvent):
    """A step waits for its approvers (`approver_ids`, to be notified); also sent to a delegate."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    mode = fields.String(required=True)
    approver_ids = fields.List(fields.String(), required=True)
    cc_ids = fields.List(fields.String(), required=True)
    delegated_by = fields.String()


class ApprovalStepCompleted(ApprovalEvent):
    """A step was decided (`outcome` approved or rejected) with every answer given."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    outcome = fields.String(required=True)
    answers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ApprovalApproved(ApprovalEvent):
    """Every step approved: the terms with this hash are approved."""

    cc_ids = fields.List(fields.String(), required=True)


class ApprovalRejected(ApprovalEvent):
    """An approver rejected: back to the submitter."""

    step = fields.Integer(required=True)
    by = fields.String(required=True)
    comment = fields.String(allow_none=True)


class ApprovalRecalled(ApprovalEvent):
    """The submitter took the submission back."""

    comment = fields.String(allow_none=True)


class ApprovalVoided(ApprovalEvent):
    """The record's terms no longer match the hash approved or submitted: void, with why."""

    current_hash = fields.String(required=True)
    reason = fields.String(required=True)


EVENT_SCHEMAS.update({
    "approval_requested": ApprovalRequested,
    "approval_step_completed": ApprovalStepCompleted,
    "approval_approved": ApprovalApproved,
    "approval_rejected": ApprovalRejected,
    "approval_recalled": ApprovalRecalled,
    "approval_voided": ApprovalVoided,
})
