"""Contracts and payment collection (回款): one contracts RPC per request, with the row-level
visibility of customers and opportunities (the scope the gateway passes to sales): a contract
the caller may not see answers 404 like a missing one."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.contracts import contract
from services.gateway.app import rpc_call
from services.gateway.http_schemas import page_of, paged
from services.gateway.resources.sales import _plain, sales_scope

blp = Blueprint("contracts_contracts", __name__,
                description="Contracts, payment plans, receipts and receivables "
                            "(contracts service).")

ContractPage = page_of(contract.ContractSchema, "ContractPage")
ContractListQuery = paged(contract.ContractFiltersSchema, "ContractListQuery")


@blp.route("/contracts", methods=["POST"])
@blp.arguments(contract.ContractCreateSchema())
@blp.response(201, contract.ContractSchema)
def create_contract(data: dict[str, Any]) -> Any:
    """A draft contract (number HT-<year>-<6 digits>) for a customer the caller sees, and
    optionally one of its opportunities; the owner is the opportunity's, else the customer's."""
    created = rpc_call("contracts", "create_contract", data=_plain(data), scope=sales_scope())
    return created, 201, {"Location": f"/contracts/{created['id']}"}


@blp.route("/contracts", methods=["GET"])
@blp.arguments(ContractListQuery(), location="query", unknown=RAISE)
@blp.response(200, ContractPage)
def list_contracts(query: dict[str, Any]) -> Any:
    """Contracts the caller sees (own, the team's, all), newest first."""
    page = {"cursor": query.pop("cursor", None), "limit": query.pop("limit", 50)}
    return rpc_call("contracts", "list_contracts", filters=_plain(query), scope=sales_scope(),
                    **page)


@blp.route("/contracts/<string:contract_id>", methods=["GET"])
@blp.response(200, contract.ContractSchema)
def get_contract(contract_id: str) -> Any:
    return rpc_call("contracts", "get_contract", contract_id=contract_id, scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/sign", methods=["POST"])
@blp.response(200, contract.ContractSchema)
@blp.alt_response(409, description="Only a draft (or approved) contract is signed.")
def sign_contract(contract_id: str) -> Any:
    """draft -> active; publishes contract_signed and the ERP's order_created."""
    return rpc_call("contracts", "sign_contract", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/terminate", methods=["POST"])
@blp.arguments(contract.ContractTerminateSchema())
@blp.response(200, contract.ContractSchema)
@blp.alt_response(409, description="Only an active contract is terminated.")
def terminate_contract(data: dict[str, Any], contract_id: str) -> Any:
    """active -> terminated, with a reason."""
    return rpc_call("contracts", "terminate_contract", contract_id=contract_id,
                    data=_plain(data), scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/payment-plan", methods=["PUT"])
@blp.arguments(contract.PaymentPlanSchema())
@blp.response(200, contract.PaymentPlanViewSchema)
@blp.alt_response(409, description="The contract has receipts: its plan stays.")
def set_payment_plan(data: dict[str, Any], contract_id: str) -> Any:
    """Replace the plan: instalments of an amount or a percentage of the contract amount,
    whose sum never exceeds it (422 naming `instalments`)."""
    return rpc_call("contracts", "set_payment_plan", contract_id=contract_id,
                    data=_plain(data), scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/receipts", methods=["POST"])
@blp.arguments(contract.ReceiptCreateSchema())
@blp.response(201, contract.ReceiptSchema)
def record_receipt(data: dict[str, Any], contract_id: str) -> Any:
    """Money received, matched to `instalment_id` first when given, then oldest due first;
    partial payments leave an instalment partly paid."""
    receipt = rpc_call("contracts", "record_receipt", contract_id=contract_id,
                       data=_plain(data), scope=sales_scope())
    return receipt, 201


@blp.route("/contracts/<string:contract_id>/receipts", methods=["GET"])
@blp.response(200, contract.ReceiptListSchema)
def list_receipts(contract_id: str) -> Any:
    """The contract's receipts with their allocations, oldest first (no paging: few)."""
    return rpc_call("contracts", "list_receipts", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/receivables", methods=["GET"])
@blp.response(200, contract.ReceivablesSchema)
def contract_receivables(contract_id: str) -> Any:
    """contract_amount, received, outstanding and overdue, as of today."""
    return rpc_call("contracts", "contract_receivables", contract_id=contract_id,
                    scope=sales_scope())
