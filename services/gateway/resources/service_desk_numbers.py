"""The service desk's numbers over HTTP, beside the other reports under /reports: ticket volume,
backlog, first-reply and resolution times in business time, SLA attainment, reopen rate, and
the tickets behind each figure (`/reports/tickets/<figure>/records`, keyset-paged). One
service_desk RPC per request with the caller's tickets scope (an agent: their own and their
groups' tickets, a manager: their teams' and groups', an admin: all), as GET /tickets sees
them; `group_id`, `assignee_id` and `priority` only narrow it. CSAT is /reports/csat.
Definitions: services/service_desk/domain/numbers.py."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.gateway.app import rpc_call
from services.gateway.http_schemas import paged
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.service_desk import contract as desk

blp = Blueprint("service_desk_numbers", __name__,
                description="Ticket volume, backlog, reply and resolution times, SLA "
                            "attainment, reopen rate (service desk).")

# path part -> (figure of the drill-down, the records' own parameters: the service's schema of
# the figure, contract.TICKET_NUMBERS_PARAMS, which the service validates them with too)
FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    path: (figure, tuple(desk.TicketNumbersParamsSchema.of(figure)._declared_fields))
    for path, figure in (("volume", "volume"), ("backlog", "backlog"),
                         ("first-reply-time", "first_reply"),
                         ("resolution-time", "resolution"), ("sla-attainment", "sla"),
                         ("reopen-rate", "reopen"))}


def _records_query(figure: str) -> type[Schema]:
    params = desk.TicketNumbersParamsSchema.of(figure)
    return paged(desk.TicketNumbersFiltersSchema,
                 f"TicketNumbers{figure.title().replace('_', '')}RecordsQuery",
                 extra=params._declared_fields)


def _filters(query: dict[str, Any]) -> dict[str, Any]:
    names = desk.TicketNumbersFiltersSchema._declared_fields
    return {name: value.isoformat() if isinstance(value, date) else value
            for name, value in query.items() if name in names and value is not None}


class FigureLinkSchema(Schema):
    figure = fields.String(required=True)
    href = fields.String(required=True)
    records = fields.String(allow_none=True)


class FigureIndexSchema(Schema):
    figures = fields.List(fields.Nested(FigureLinkSchema), required=True)


@blp.route("/reports/tickets", methods=["GET"])
@blp.response(200, FigureIndexSchema)
def figures_index() -> Any:
    """The service desk's figures and where each one's tickets are; CSAT (satisfaction) is
    /reports/csat with its surveys at /csat-surveys."""
    items = [{"figure": name, "href": f"/reports/tickets/{name}",
              "records": f"/reports/tickets/{name}/records"} for name in FIGURES]
    items.append({"figure": "csat", "href": "/reports/csat", "records": "/csat-surveys"})
    return {"figures": items}


def _report(method: str, query: dict[str, Any]) -> Any:
    return rpc_call("service_desk", method, filters=_filters(query), scope=tickets_scope())


def _records(path: str, query: dict[str, Any]) -> Any:
    figure, names = FIGURES[path]
    params = {name: query[name] for name in names if query.get(name) is not None}
    return rpc_call("service_desk", "ticket_numbers_drill_down", figure=figure,
                    filters=_filters(query), params=params, scope=tickets_scope(),
                    cursor=query.get("cursor"), limit=query["limit"])


QUERY = desk.TicketNumbersFiltersSchema


@blp.route("/reports/tickets/volume", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.TicketVolumeReportSchema)
def volume(query: dict[str, Any]) -> Any:
    """Tickets created per day, week or month of the period, by channel, priority and group."""
    return _report("ticket_volume_report", query)


@blp.route("/reports/tickets/backlog", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.TicketBacklogReportSchema)
def backlog(query: dict[str, Any]) -> Any:
    """Open tickets (new, open, pending, on hold) at the end of each period (at most 120), and
    now by status and age band."""
    return _report("ticket_backlog_report", query)


@blp.route("/reports/tickets/first-reply-time", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.TicketDurationReportSchema)
def first_reply_time(query: dict[str, Any]) -> Any:
    """First replies given in the period: the SLA clock's business seconds to them (the
    policy's calendar, its pause statuses left out) as p50, p90, average and buckets."""
    return _report("first_reply_time_report", query)


@blp.route("/reports/tickets/resolution-time", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.TicketDurationReportSchema)
def resolution_time(query: dict[str, Any]) -> Any:
    """Tickets solved in the period: the SLA clock's business seconds to the solve (pending
    and on hold left out, a reopen resumes it) as p50, p90, average and buckets."""
    return _report("resolution_time_report", query)


@blp.route("/reports/tickets/sla-attainment", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.SlaAttainmentReportSchema)
def sla_attainment(query: dict[str, Any]) -> Any:
    """Per SLA target of the tickets created in the period: met, breached, open and
    met / (met + breached), per policy, group, agent and in total."""
    return _report("sla_attainment_report", query)


@blp.route("/reports/tickets/reopen-rate", methods=["GET"])
@blp.arguments(QUERY(), location="query")
@blp.response(200, desk.ReopenRateReportSchema)
def reopen_rate(query: dict[str, Any]) -> Any:
    """Tickets solved in the period and reopened in it, over the tickets solved in it."""
    return _report("reopen_rate_report", query)


def _records_route(path: str) -> None:
    figure, names = FIGURES[path]
    schema = _records_query(figure)

    def records(query: dict[str, Any]) -> Any:
        return _records(path, query)

    records.__name__ = f"{figure}_records"
    records.__doc__ = (f"The tickets behind /reports/tickets/{path} (the same filters; "
                       f"{', '.join(names)} pick a part of the figure), newest first.")
    blp.route(f"/reports/tickets/{path}/records", methods=["GET"])(
        blp.arguments(schema(), location="query")(
            blp.response(200, desk.TicketRecordPageSchema)(records)))


for _path in FIGURES:
    _records_route(_path)
