"""Invoices (开票) of a contract and its ERP order: one contracts RPC per request, with the
contracts' row-level visibility (a contract the caller may not see answers 404)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from services.contracts import contract
from services.gateway.app import rpc_call
from services.gateway.resources.sales import _plain, sales_scope

blp = Blueprint("contracts_invoices", __name__,
                description="Invoices (开票) and the ERP order of a contract (contracts "
                            "service).")


@blp.route("/contracts/<string:contract_id>/invoices", methods=["POST"])
@blp.arguments(contract.InvoiceCreateSchema())
@blp.response(201, contract.InvoiceSchema)
@blp.alt_response(409, description="The number is already used for the invoice type, or "
                                   "the contract is not signed.")
def record_invoice(data: dict[str, Any], contract_id: str) -> Any:
    """An issued invoice for a receipt or an instalment (or the contract): the buyer's title
    (抬头) and tax number (统一社会信用代码, checked), type special / normal / electronic,
    number (unique per type), date and amount (within the receipt's or instalment's amount;
    the contract's invoices never exceed the contract amount: 422 on `amount`)."""
    invoice = rpc_call("contracts", "record_invoice", contract_id=contract_id,
                       data=_plain(data), scope=sales_scope())
    return invoice, 201


@blp.route("/contracts/<string:contract_id>/invoices", methods=["GET"])
@blp.response(200, contract.InvoiceListSchema)
def list_invoices(contract_id: str) -> Any:
    """The contract's invoices, issued and void, oldest first (no paging: few)."""
    return rpc_call("contracts", "list_invoices", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/invoices/<string:invoice_id>/void",
           methods=["POST"])
@blp.arguments(contract.InvoiceVoidSchema())
@blp.response(200, contract.InvoiceSchema)
@blp.alt_response(412, description="The invoice is void already.")
def void_invoice(data: dict[str, Any], contract_id: str, invoice_id: str) -> Any:
    """issued -> void, with a reason; its amount no longer counts, its number stays used."""
    return rpc_call("contracts", "void_invoice", contract_id=contract_id,
                    invoice_id=invoice_id, data=_plain(data), scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/order", methods=["GET"])
@blp.response(200, contract.OrderViewSchema)
def get_contract_order(contract_id: str) -> Any:
    """The ERP order of a signed contract: its lines, status (created, shipped) and
    shipped_at (from the ERP's `order_shipped`); 404 before the contract is signed."""
    return rpc_call("contracts", "get_contract_order", contract_id=contract_id,
                    scope=sales_scope())
