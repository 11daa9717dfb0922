"""nameko entrypoints of the contracts service: each loads its input with the contract's
schemas and calls one use case (services/contracts/usecases/), whose result is a plain dict."""

from __future__ import annotations

# -- approvals (imports) ----
from typing import Any

from services.contracts.contract import (
    EVENT_SCHEMAS,
    ApprovalAbsenceSchema,
    ApprovalDecisionSchema,
    ApprovalDelegateSchema,
    ApprovalFlowWriteSchema,
    ApprovalPageSchema,
    ApprovalSubmitSchema,
)
from services.contracts.models import inbox as approvals_inbox
from services.contracts.models import outbox
from services.contracts.usecases import approvals
from shared.consumer import event_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import ValidationFailed
from shared.inbox import first_delivery
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc

approval_flow_schema = ApprovalFlowWriteSchema()
approval_submit_schema = ApprovalSubmitSchema()
approval_decision_schema = ApprovalDecisionSchema()
approval_delegate_schema = ApprovalDelegateSchema()
approval_absence_schema = ApprovalAbsenceSchema()
approval_page_schema = ApprovalPageSchema()


def _user(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 36:
        raise ValidationFailed.for_fields({name: ["a user id is required"]})
    return value


setup_logging("contracts")


class ContractsService(PlatformEndpoints):
    name = "contracts"

    db = Database("contracts")
    events = EventOutbox("contracts", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # -- approvals ----
    # Approval flows and instances (services/contracts/usecases/approvals.py).

    @rpc
    def define_approval_flow(self, data: dict) -> dict[str, Any]:
        return approvals.define_flow(self, load(approval_flow_schema, data))

    @rpc
    def update_approval_flow(self, flow_id: str, data: dict) -> dict[str, Any]:
        return approvals.update_flow(self, flow_id, load(approval_flow_schema, data))

    @rpc
    def get_approval_flow(self, flow_id: str) -> dict[str, Any]:
        return approvals.get_flow(self, flow_id)

    @rpc
    def list_approval_flows(self, record_type: str | None = None) -> list[dict[str, Any]]:
        return approvals.list_flows(self, record_type)

    @rpc
    def submit_for_approval(self, data: dict, submitter: str) -> dict[str, Any]:
        return approvals.submit_for_approval(self, load(approval_submit_schema, data),
                                             _user(submitter, "submitter"))

    @rpc
    def decide_approval(self, approval_id: str, user_id: str, data: dict) -> dict[str, Any]:
        return approvals.decide(self, approval_id, _user(user_id, "user_id"),
                                load(approval_decision_schema, data))

    @rpc
    def recall_approval(self, approval_id: str, user_id: str,
                        comment: str | None = None) -> dict[str, Any]:
        return approvals.recall(self, approval_id, _user(user_id, "user_id"), comment)

    @rpc
    def delegate_approval(self, approval_id: str, user_id: str, data: dict) -> dict[str, Any]:
        return approvals.delegate(self, approval_id, _user(user_id, "user_id"),
                                  load(approval_delegate_schema, data))

    @rpc
    def get_approval(self, approval_id: str, user_id: str | None = None,
                     see_all: bool = False) -> dict[str, Any]:
        return approvals.get_instance(self, approval_id, user_id, see_all)

    @rpc
    def list_my_approvals(self, user_id: str, cursor: str | None = None,
                          limit: int = 50, box: str = "inbox") -> dict[str, Any]:
        return approvals.inbox(self, _user(user_id, "user_id"),
                               load(approval_page_schema,
                                    {"cursor": cursor, "limit": limit, "box": box}))

    @rpc
    def current_approval(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        return approvals.current_approval(self, record_type, record_id)

    @rpc
    def verify_approval(self, record_type: str, record_id: str,
                        current_terms: dict) -> dict[str, Any]:
        return approvals.verify(self, record_type, record_id, current_terms)

    @rpc
    def set_approval_absence(self, user_id: str, data: dict | None) -> dict[str, Any]:
        return approvals.set_absence(self, _user(user_id, "user_id"),
                                     None if data is None else load(approval_absence_schema,
                                                                    data))

    @event_handler("gateway", "user_changed")
    def on_gateway_user_changed(self, envelope: dict[str, Any]) -> None:
        self._project_directory(envelope, "contracts.approvals.user_changed")

    @event_handler("gateway", "team_changed")
    def on_gateway_team_changed(self, envelope: dict[str, Any]) -> None:
        self._project_directory(envelope, "contracts.approvals.team_changed")

    def _project_directory(self, envelope: dict[str, Any], handler: str) -> None:
        with self.db.begin() as session:
            if first_delivery(session, approvals_inbox, envelope["event_id"], handler):
                approvals.project_directory(session, envelope["event_type"],
                                            envelope.get("data") or {})
