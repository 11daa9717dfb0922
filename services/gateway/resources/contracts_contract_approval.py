"""Contracts through approvals (contracts service, usecases/contract_approval.py): submit a
draft, change a draft's terms, read the terms an approval decides on, and the standard
clauses (标准条款) against which `clauses_changed` is computed. Row-level visibility as for
the other contract routes (a contract the caller may not see answers 404)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.contracts import contract
from services.gateway.app import require_role, rpc_call
from services.gateway.resources.sales import _plain, sales_scope

blp = Blueprint("contracts_contract_approval", __name__,
                description="Contract approval: submit, draft edits, approval terms, "
                            "standard clauses (contracts service).")


class ContractApprovalTermsSchema(Schema):
    terms = fields.Dict(required=True, metadata={
        "description": "contract_id, number, title, customer_id, opportunity_id, owner_id, "
                       "amount, currency, start_date, end_date, clauses, clauses_changed, "
                       "changed_clause_codes: what a flow condition reads and the hash covers"})
    terms_hash = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(contract.CONTRACT_STATUSES)})


class StandardClausesViewSchema(Schema):
    clauses = fields.List(fields.Nested(contract.ClauseSchema), required=True)


@blp.route("/contracts/<string:contract_id>/submit", methods=["POST"])
@blp.response(200, contract.ContractSchema)
@blp.alt_response(409, description="In approval already (`reason = in_approval`).")
@blp.alt_response(412, description="Only a draft is submitted.")
def submit_contract(contract_id: str) -> Any:
    """draft -> in_approval when an active approval flow of record type `contract` matches
    its terms (the caller submits), else draft -> approved at once."""
    return rpc_call("contracts", "submit_contract", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/<string:contract_id>", methods=["PATCH"])
@blp.arguments(contract.ContractChangeSchema())
@blp.response(200, contract.ContractSchema)
@blp.alt_response(409, description="In approval (`reason = in_approval`) or past draft.")
def update_contract(data: dict[str, Any], contract_id: str) -> Any:
    """Change a draft's terms: title, amount, currency, start and end, clauses."""
    return rpc_call("contracts", "update_contract", contract_id=contract_id,
                    data=_plain(data), scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/approval-terms", methods=["GET"])
@blp.response(200, ContractApprovalTermsSchema)
def contract_approval_terms(contract_id: str) -> Any:
    """The terms an approval of the contract decides on, as stored now, and their hash."""
    return rpc_call("contracts", "contract_approval_terms", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contract-clauses/standard", methods=["GET"])
@blp.response(200, StandardClausesViewSchema)
def get_standard_clauses() -> Any:
    """The standard contract clauses, in order."""
    return rpc_call("contracts", "get_standard_clauses")


@blp.route("/contract-clauses/standard", methods=["PUT"])
@blp.arguments(contract.StandardClausesSchema())
@blp.response(200, StandardClausesViewSchema)
def set_standard_clauses(data: dict[str, Any]) -> Any:
    """Replace the standard clauses (admins); codes unique (422 naming `clauses`)."""
    require_role("admin")
    return rpc_call("contracts", "set_standard_clauses", data=_plain(data))
