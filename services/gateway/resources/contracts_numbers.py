"""The contracts' numbers over HTTP, beside sales' reports under /reports: collection by month,
overdue aging, DSO, quote win rate and discount, approval cycle times, and the records behind
each figure (`/reports/<figure>/records`, paged). One contracts RPC per request with the
caller's visibility scope (a rep: their own, a manager: their teams', an admin: all); a
`team_id` filter is resolved here to the team's members (the gateway owns teams) and only
narrows that scope. Definitions of the figures: services/contracts/domain/numbers.py."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from services.contracts import contract
from services.gateway.app import gateway, rpc_call
from services.gateway.http_schemas import paged
from services.gateway.identity.models import Team, User
from services.gateway.problems import validation_problem
from services.gateway.resources.sales import sales_scope

blp = Blueprint("contracts_numbers", __name__,
                description="Collection, aging, DSO, quote win rate, approval cycle times "
                            "(contracts service).")

PERIOD_DOC = ("local day, inclusive; from 1900-01-01 to 2199-12-31, at most 3,660 days "
              "(120 months); default: the last 12 months (DSO: 3) to the end of this month")


class NumbersQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    owner_id = fields.List(fields.String(validate=validate.Length(max=36)),
                           metadata={"description": "repeat for several; narrows the scope"})
    team_id = fields.String(validate=validate.Length(max=36),
                            metadata={"description": "the team's members"})
    customer_id = fields.String(validate=validate.Length(max=36))
    date_from = fields.Date(metadata={"description": PERIOD_DOC})
    date_to = fields.Date(metadata={"description": PERIOD_DOC})


class AgingQuerySchema(NumbersQuerySchema):
    class Meta:
        unknown = RAISE
        exclude = ("date_from", "date_to")

    as_of = fields.Date(metadata={"description": "the day the aging is taken (default today)"})


class CycleQuerySchema(NumbersQuerySchema):
    class Meta:
        unknown = RAISE
        exclude = ("customer_id",)

    record_type = fields.String(validate=validate.Length(max=64),
                                metadata={"description": "quote, contract, ..."})


CollectionRecordsQuery = paged(NumbersQuerySchema, "CollectionRecordsQuery", extra={
    "month": fields.String(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}$"),
                           metadata={"description": "YYYY-MM"}),
    "kind": fields.String(load_default="planned",
                          validate=validate.OneOf(("planned", "received")),
                          metadata={"description": "planned: instalments due in the month; "
                                                   "received: receipts received in it"})})
AgingRecordsQuery = paged(AgingQuerySchema, "AgingRecordsQuery", extra={
    "bucket": fields.String(required=True, validate=validate.OneOf(contract.AGING_BUCKETS))})
DsoRecordsQuery = paged(NumbersQuerySchema, "DsoRecordsQuery")
WinRateRecordsQuery = paged(NumbersQuerySchema, "WinRateRecordsQuery", extra={
    "outcome": fields.String(validate=validate.OneOf(("accepted", "rejected", "expired")),
                             metadata={"description": "default: all three"}),
    "row_owner_id": fields.String(validate=validate.Length(max=36),
                                  metadata={"description": "a by_owner row: its owner_id"}),
    "row_team_id": fields.String(validate=validate.Length(max=36),
                                 metadata={"description": "a by_team row: its team_id"})})
CycleRecordsQuery = paged(CycleQuerySchema, "CycleRecordsQuery", extra={
    "flow_id": fields.String(required=True, validate=validate.Length(max=36)),
    "step": fields.Integer(required=True, validate=validate.Range(min=0, max=1000))})


def _team_members(team_id: str) -> list[str]:
    with gateway().store.read() as session:
        if session.get(Team, team_id) is None:
            raise validation_problem({"team_id": ["No such team."]})
        return list(session.scalars(select(User.id).where(User.team_id == team_id)))


def _filters(query: dict[str, Any]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if query.get("owner_id"):
        filters["owner_ids"] = list(query["owner_id"])
    if query.get("team_id"):
        members = _team_members(query["team_id"])
        filters["owner_ids"] = [o for o in filters.get("owner_ids", members) if o in members]
    for name in ("customer_id", "record_type"):
        if query.get(name):
            filters[name] = query[name]
    for name in ("date_from", "date_to", "as_of"):
        if query.get(name):
            filters[name] = query[name].isoformat()
    return filters


def _report(method: str, query: dict[str, Any]) -> Any:
    return rpc_call("contracts", method, filters=_filters(query), scope=sales_scope())


def _records(figure: str, query: dict[str, Any], names: dict[str, str]) -> Any:
    params = {target: (query[source].isoformat() if isinstance(query[source], date)
                       else query[source])
              for source, target in names.items() if query.get(source) is not None}
    return rpc_call("contracts", "numbers_drill_down", figure=figure, filters=_filters(query),
                    scope=sales_scope(), params=params, cursor=query.get("cursor"),
                    limit=query["limit"])


# -- figures ---------------------------------------------------------------------------------


@blp.route("/reports/collection", methods=["GET"])
@blp.arguments(NumbersQuerySchema(), location="query")
@blp.response(200, contract.CollectionReportSchema)
def collection(query: dict[str, Any]) -> Any:
    """Collection by month (回款): per month of the period, `planned` (the instalments of
    signed contracts due in it) vs `received` (the receipts received in it), and the gap."""
    return _report("collection_report", query)


@blp.route("/reports/aging", methods=["GET"])
@blp.arguments(AgingQuerySchema(), location="query")
@blp.response(200, contract.AgingReportSchema)
def aging(query: dict[str, Any]) -> Any:
    """Overdue aging as of a day: the outstanding (amount - paid) of instalments whose due date
    passed unpaid, in 0-30, 31-60, 61-90 and >90 days overdue."""
    return _report("aging_report", query)


@blp.route("/reports/dso", methods=["GET"])
@blp.arguments(NumbersQuerySchema(), location="query")
@blp.response(200, contract.DsoReportSchema)
def dso(query: dict[str, Any]) -> Any:
    """Days sales outstanding over the period of N days: receivables (the unpaid part of the
    instalments due on or before `date_to`) / the instalments due in the period x N; null
    when nothing was due in it."""
    return _report("dso_report", query)


@blp.route("/reports/quote-win-rate", methods=["GET"])
@blp.arguments(NumbersQuerySchema(), location="query")
@blp.response(200, contract.WinRateReportSchema)
def quote_win_rate(query: dict[str, Any]) -> Any:
    """Quote win rate (accepted / (accepted + rejected + expired)) and the average discount
    of the accepted versions, by owner, by team and in total, of the quotes created in the
    period."""
    return _report("quote_win_rate", query)


@blp.route("/reports/approval-cycle-times", methods=["GET"])
@blp.arguments(CycleQuerySchema(), location="query")
@blp.response(200, contract.CycleTimesReportSchema)
def approval_cycle_times(query: dict[str, Any]) -> Any:
    """Approval cycle times per flow step (median and p90 hours from the step's start to its
    decision) of the approvals submitted in the period by the users the caller sees."""
    return _report("approval_cycle_times", query)


# -- drill-down ------------------------------------------------------------------------------


@blp.route("/reports/collection/records", methods=["GET"])
@blp.arguments(CollectionRecordsQuery(), location="query")
@blp.response(200, contract.DrillPageSchema)
def collection_records(query: dict[str, Any]) -> Any:
    """The instalments (kind=planned) or receipts (kind=received) behind one month."""
    return _records("collection", query, {"month": "month", "kind": "kind"})


@blp.route("/reports/aging/records", methods=["GET"])
@blp.arguments(AgingRecordsQuery(), location="query")
@blp.response(200, contract.DrillPageSchema)
def aging_records(query: dict[str, Any]) -> Any:
    """The overdue instalments of one bucket, oldest due first, with days_overdue."""
    return _records("aging", query, {"bucket": "bucket"})


@blp.route("/reports/dso/records", methods=["GET"])
@blp.arguments(DsoRecordsQuery(), location="query")
@blp.response(200, contract.DrillPageSchema)
def dso_records(query: dict[str, Any]) -> Any:
    """The instalments billed (due) in the period: DSO's denominator."""
    return _records("dso", query, {})


@blp.route("/reports/quote-win-rate/records", methods=["GET"])
@blp.arguments(WinRateRecordsQuery(), location="query")
@blp.response(200, contract.DrillPageSchema)
def quote_win_rate_records(query: dict[str, Any]) -> Any:
    """The decided quotes behind a row (accepted, rejected, expired)."""
    return _records("win_rate", query, {"outcome": "outcome", "row_owner_id": "owner_id",
                                        "row_team_id": "team_id"})


@blp.route("/reports/approval-cycle-times/records", methods=["GET"])
@blp.arguments(CycleRecordsQuery(), location="query")
@blp.response(200, contract.DrillPageSchema)
def approval_cycle_records(query: dict[str, Any]) -> Any:
    """The approvals behind one flow step's times, with each decided pass of the step."""
    return _records("approval_cycle", query, {"flow_id": "flow_id", "step": "step"})
