"""The public side of the service desk's web forms: a company site's page reads a form (a
fill-time stamp) and posts tickets to it without an API key, with the form's token in the
body. Its views are `@public`: no credentials are asked for;
the service checks the token, the Origin, the rate limits (429 with Retry-After) and the
spam defence (services/service_desk/README.md, "Web forms").

CORS: a browser's preflight (OPTIONS) and the answer of an accepted post carry
`Access-Control-Allow-Origin` for the form's allowed origins only.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_smorest import Blueprint
from marshmallow import fields

from services.gateway import problems
from services.gateway.app import gateway, public, rpc_call
from services.gateway.identity.throttles import client_address
from services.gateway.problems import ApiProblem
from services.service_desk import contract as desk

blp = Blueprint("service_desk_forms_public", __name__,
                description="Public web forms: a company site posts tickets without an API "
                            "key (a per-form token, rate limits, spam defence).")

CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type"


class TicketFormPostBody(desk.TicketFormSubmissionSchema):
    """A post of the form: its `token` (given to the site by an admin), the requester and
    the message; `website` is the hidden honeypot (leave it empty), `stamp` the fill-time
    stamp of GET /forms/{form_key}."""

    token = fields.String(required=True, validate=desk._v.Length(min=1, max=200))


def blp_response(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _cors(response: Response, allowed: list[str]) -> Response:
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


@blp.after_request
def _preflight(response: Response) -> Response:
    """Flask answers OPTIONS itself; the form's origins decide the CORS headers."""
    if request.method != "OPTIONS" or not request.view_args:
        return response
    form_key = str(request.view_args.get("form_key", ""))
    try:
        form = rpc_call("service_desk", "get_public_form", form_key=form_key)
    except Exception:  # noqa: BLE001 - an unknown form or a service down: no CORS headers
        return response
    return _cors(response, form["allowed_origins"])


@blp.route("/forms/<string:form_key>", methods=["GET"])
@public
@blp.doc(security=[])
@blp.response(200, desk.PublicTicketFormSchema)
def get_public_form(form_key: str) -> Any:
    """What a site's page needs to post the form (public): a fresh fill-time `stamp` to send
    back with the post, the hidden honeypot field's name, the fields."""
    form = rpc_call("service_desk", "get_public_form", form_key=form_key)
    response = blp_response(desk.PublicTicketFormSchema().dump(form), 200)
    return _cors(response, form["allowed_origins"])


@blp.route("/forms/<string:form_key>/tickets", methods=["POST"])
@public
@blp.doc(security=[])
@blp.arguments(TicketFormPostBody())
@blp.response(202, desk.TicketFormSubmissionResultSchema)
@blp.alt_response(403, description="The token is wrong, or the Origin is not the form's.")
@blp.alt_response(429, description="Too many posts to the form or from this address in "
                                   "this minute (Retry-After).")
def post_form_ticket(data: dict[str, Any], form_key: str) -> Any:
    """Post a ticket through a web form (public, no API key: the form's token). A post that
    looks like a bot's (the honeypot filled, or sent sooner than the form's minimum fill
    time after its stamp) is answered the same and creates nothing."""
    token = data.pop("token")
    address = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                             gateway().auth_settings.trusted_proxy_hops)
    origin = request.headers.get("Origin")
    try:
        result = rpc_call("service_desk", "submit_form_ticket", form_key=form_key, token=token,
                          data=data, client_address=address, origin=origin)
    except desk.FormRateLimited as error:
        raise ApiProblem(429, error.detail, type_=problems.PROBLEM_BASE + "rate-limited",
                         headers={"Retry-After": str(error.extra.get("retry_after", 60))}
                         ) from None
    response = blp_response(desk.TicketFormSubmissionResultSchema().dump(result), 202)
    return _cors(response, [origin] if origin else [])
