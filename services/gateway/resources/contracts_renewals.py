"""Contract renewals and the overdue sweep (contracts service): a renewal is made for a contract
the caller sees (another team's rep gets 404, like for a missing one); the sweep is the
admins' (the contracts service also runs it on a timer)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from services.contracts import contract
from services.gateway.app import require_role, rpc_call
from services.gateway.resources.sales import _plain, sales_scope

blp = Blueprint("contracts_renewals", __name__,
                description="Contract renewals and overdue instalments (contracts service).")


@blp.route("/contracts/<string:contract_id>/renewals", methods=["POST"])
@blp.arguments(contract.RenewalCreateSchema())
@blp.response(201, contract.ContractSchema)
@blp.alt_response(409, description="Only an active or expired contract without a renewal "
                                   "is renewed.")
def renew_contract(data: dict[str, Any], contract_id: str) -> Any:
    """A draft renewal: the old contract's customer, owner, parties and clauses; its start the
    day after the old end, its amount the old one, unless given. Signing it makes the old
    contract `renewed` (`contract_renewed`)."""
    created = rpc_call("contracts", "renew_contract", contract_id=contract_id,
                       data=_plain(data), scope=sales_scope())
    return created, 201, {"Location": f"/contracts/{created['id']}"}


@blp.route("/contracts/<string:contract_id>/payment-plan", methods=["GET"])
@blp.response(200, contract.PaymentPlanViewSchema)
def get_payment_plan(contract_id: str) -> Any:
    """The plan's instalments with their statuses (pending, partly_paid, paid, overdue,
    void) and paid amounts."""
    return rpc_call("contracts", "get_payment_plan", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/overdue-sweeps", methods=["POST"])
@blp.arguments(contract.OverdueSweepSchema())
@blp.response(200, contract.OverdueSweepResultSchema)
def mark_overdue(data: dict[str, Any]) -> Any:
    """Run the overdue sweep now (admins): instalments due before `as_of` (default today) and
    not fully paid become overdue, each once, with one `instalment_overdue`."""
    require_role("admin")
    as_of = data.get("as_of")
    return rpc_call("contracts", "mark_overdue", as_of=as_of.isoformat() if as_of else None)
