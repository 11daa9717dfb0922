"""Every error as `application/problem+json` (RFC 9457).

Logging: an expected client error (4xx) is not a fault of the gateway; it is in the access log
line (INFO, with its problem `type`) and nowhere else, without a traceback. A real fault (a 500,
an untyped error of a service) is one ERROR JSON line with its traceback.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from nameko.exceptions import RemoteError
from werkzeug.exceptions import HTTPException

from services.gateway.rpc import ServiceUnavailable
from services.gateway.strict_json import InvalidJsonValues, MalformedJson, strict_dumps
from shared.errors import CrmError, ValidationFailed

log = logging.getLogger("services.gateway.errors")

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_BASE = "urn:problem-type:crm:"


class ApiProblem(Exception):
    """Raised by views and hooks for an HTTP problem that is not a typed service error."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extras: Any,
    ):
        super().__init__(detail or title or str(status))
        self.status = status
        self.detail = detail
        self.title = title
        self.type_ = type_
        self.headers = headers or {}
        self.extras = extras


def problem_slug(error_name: str) -> str:
    """`ValidationFailed` -> `validation-failed`: a service's typed error gets the same problem
    type as the gateway's own problem of that kind."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", error_name).lower()


def validation_problem(errors: dict[str, Any], detail: str = "") -> ApiProblem:
    fields_ = ", ".join(sorted(str(name) for name in errors))
    return ApiProblem(
        422,
        detail or f"Invalid input in: {fields_}",
        title="Validation failed",
        type_=PROBLEM_BASE + "validation-failed",
        errors=errors,
    )


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str = "",
    type_: str | None = None,
    headers: dict[str, str] | None = None,
    **extras: Any,
) -> Response:
    try:
        default_title = HTTPStatus(status).phrase
    except ValueError:
        default_title = "Error"
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title or default_title,
        "status": status,
        "detail": detail or title or default_title,
    }
    if has_request_context():
        body["instance"] = request.path
        correlation_id = g.get("correlation_id")
        if correlation_id:
            body["correlation_id"] = correlation_id
        g.problem_type = body["type"]  # for the access log line
    for key, value in extras.items():
        body.setdefault(key, value)
    response = Response(
        strict_dumps(body, ensure_ascii=False, default=str),
        status=status,
        mimetype=PROBLEM_MIMETYPE,
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flatten_webargs(messages: Any) -> dict[str, Any]:
    """webargs nests messages by location ({"json": {"email": [...]}}); clients want fields."""
    errors: dict[str, Any] = {}
    if not isinstance(messages, dict):
        return {"body": messages if isinstance(messages, list) else [str(messages)]}
    for location, by_field in messages.items():
        if isinstance(by_field, dict):
            for name, field_messages in by_field.items():
                key = "body" if name == "_schema" else str(name)
                errors[key] = field_messages
        else:
            errors[str(location)] = by_field
    return errors


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    headers: dict[str, str] = {}
    own_headers = dict(error.get_headers())
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        value = own_headers.get(name)
        if value:
            headers[name] = value
    if isinstance(data, dict):
        headers.update(data.get("headers") or {})
    if status == 400 and messages is not None:
        return problem_response(
            400,
            title="Malformed request body",
            detail="The request body is not valid JSON.",
            type_=PROBLEM_BASE + "malformed-body",
            headers=headers,
        )
    if status == 422 and messages is not None:
        errors = _flatten_webargs(messages)
        problem = validation_problem(errors)
        return problem_response(
            422, title=problem.title, detail=problem.detail, type_=problem.type_,
            headers=headers, errors=errors,
        )
    if status == 413:
        limit = request.max_content_length
        detail = (f"The request body exceeds the limit of {limit} bytes on {request.path}."
                  if limit else "The request body is too large.")
        return problem_response(413, detail=detail, headers=headers, max_bytes=limit)
    if status == 404:
        return problem_response(
            404, detail=f"No resource at {request.path}.", headers=headers
        )
    if status >= 500:
        log.error("HTTP %s: %s", status, error.description, exc_info=error)
    return problem_response(status, detail=error.description or "", headers=headers)


def handle_malformed_json(error: MalformedJson) -> Response:
    return problem_response(
        400,
        title="Malformed request body",
        detail=str(error),
        type_=PROBLEM_BASE + "malformed-body",
    )


def handle_invalid_json_values(error: InvalidJsonValues) -> Response:
    problem = validation_problem(error.errors)
    return problem_response(
        422, title=problem.title, detail=problem.detail, type_=problem.type_,
        errors=error.errors,
    )


def handle_api_problem(error: ApiProblem) -> Response:
    return problem_response(
        error.status,
        title=error.title,
        detail=error.detail,
        type_=error.type_,
        headers=error.headers,
        **error.extras,
    )


RESERVED_MEMBERS = frozenset({"type", "type_", "title", "status", "detail", "instance",
                              "headers", "correlation_id"})


def handle_crm_error(error: CrmError) -> Response:
    status = int(getattr(error, "status", 500) or 500)
    if status >= 500:
        log.error("service error %r", error, exc_info=error)
    # A service's detail named like a member of the problem itself (a lead's `status`) must
    # not replace it: it goes in as `record_<name>`.
    extras = {(f"record_{key}" if key in RESERVED_MEMBERS else key): value
              for key, value in error.extra.items()}
    if isinstance(error, ValidationFailed):
        extras["errors"] = error.errors
    slug = problem_slug(type(error).__name__)
    return problem_response(
        status,
        title=error.title,
        detail=error.detail or error.title,
        type_=PROBLEM_BASE + slug,
        **extras,
    )


def handle_unavailable(error: ServiceUnavailable) -> Response:
    g.unavailable = error
    log.warning("service unavailable: %s", error)
    return problem_response(
        503,
        title="Service unavailable",
        detail=error.detail,
        type_=PROBLEM_BASE + "service-unavailable",
        headers={"Retry-After": str(error.retry_after)},
        service=error.service,
    )


def handle_remote_error(error: RemoteError) -> Response:
    # An exception the service did not type: a bug there, not something the client can fix.
    log.error("unmapped remote error %s: %s", error.exc_type, error.value, exc_info=error)
    return problem_response(
        500,
        detail="An internal error occurred in a backing service.",
        type_=PROBLEM_BASE + "internal-error",
    )


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error", exc_info=error)
    return problem_response(
        500, detail="An internal error occurred.", type_=PROBLEM_BASE + "internal-error"
    )


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ApiProblem, handle_api_problem)
    app.register_error_handler(MalformedJson, handle_malformed_json)
    app.register_error_handler(InvalidJsonValues, handle_invalid_json_values)
    app.register_error_handler(CrmError, handle_crm_error)
    app.register_error_handler(ServiceUnavailable, handle_unavailable)
    app.register_error_handler(RemoteError, handle_remote_error)
    app.register_error_handler(Exception, handle_unexpected)
