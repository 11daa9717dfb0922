"""Satisfaction surveys (CSAT): the requester's survey link (public: its token is the
credential, nothing else is shown), and the figures per agent, group and month with the surveys
behind them, within the caller's visibility of tickets (by assignee)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import public, rpc_call
from services.gateway.http_schemas import page_of, paged
from services.gateway.resources.service_desk_tickets import tickets_scope
from services.service_desk import contract as desk

blp = Blueprint("service_desk_csat", __name__,
                description="Satisfaction surveys (CSAT): the requester's link and the figures.")

SurveyPage = page_of(desk.CsatSurveySchema, "CsatSurveyPage")
SurveyListQuery = paged(desk.CsatSurveyFiltersSchema, "CsatSurveyListQuery")
TOKEN = {"in": "path", "name": "token", "required": True,
         "description": "The token of the survey link the requester received by e-mail.",
         "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


@blp.route("/surveys/<string:token>", methods=["GET"])
@public
@blp.response(200, desk.CsatPublicSurveySchema)
@blp.doc(security=[], parameters=[TOKEN])
def get_survey(token: str) -> Any:
    """The survey of a solved ticket: its number and subject and whether it is open, answered
    or expired (no credentials: the link's token is one)."""
    return rpc_call("service_desk", "get_survey", token=token)


@blp.route("/surveys/<string:token>/answer", methods=["POST"])
@public
@blp.arguments(desk.CsatAnswerSchema())
@blp.response(201, desk.CsatPublicSurveySchema)
@blp.alt_response(409, description="The survey has been answered (one answer per ticket).")
@blp.alt_response(412, description="The survey is older than 30 days.")
@blp.doc(security=[], parameters=[TOKEN])
def answer_survey(data: dict[str, Any], token: str) -> Any:
    """The requester's answer: good, or bad with a reason; a comment (no credentials)."""
    return rpc_call("service_desk", "answer_survey", token=token, data=data), 201


@blp.route("/reports/csat", methods=["GET"])
@blp.arguments(desk.CsatReportQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, desk.CsatReportSchema)
def csat_report(query: dict[str, Any]) -> Any:
    """Surveys sent and answered, score (good / answered) and response rate, bad answers per
    reason, per agent, group or month (`group_by`), of the tickets you see."""
    return rpc_call("service_desk", "csat_report", query=query, scope=tickets_scope())


@blp.route("/csat-surveys", methods=["GET"])
@blp.arguments(SurveyListQuery(), location="query", unknown=RAISE)
@blp.response(200, SurveyPage)
def list_surveys(query: dict[str, Any]) -> Any:
    """The surveys behind a figure of /reports/csat (same filters, plus rating, reason,
    answered), newest first."""
    cursor = query.pop("cursor", None)
    limit = query.pop("limit", 50)
    return rpc_call("service_desk", "list_surveys", filters=query, scope=tickets_scope(),
                    cursor=cursor, limit=limit)
