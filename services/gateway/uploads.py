"""Files through the gateway: uploads larger than the 1 MiB of JSON bodies, and downloads.

An upload route names its limit once (`UploadLimit`) and its blueprint calls
`allow_uploads(blp, limit, ...)`: before any of the body is read the caller's role is checked
(a rep told 403, not 413) and a declared `Content-Length` over the limit is refused; while it is
read the body may grow to the file's limit plus the multipart envelope. Every refusal is a 413
problem naming that route's limit (`limit: "max_file_bytes"`, `max_file_bytes`), never the 1 MiB
of JSON bodies. `file_response` serves a stored file as a download.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Response, request
from flask_smorest import Blueprint
from werkzeug.exceptions import RequestEntityTooLarge

from services.gateway.problems import (
    PROBLEM_BASE,
    ApiProblem,
    handle_api_problem,
    handle_http_exception,
)

# The request may exceed the file by the multipart envelope (boundary, part headers, fields).
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class UploadLimit:
    endpoint: str  # the Flask endpoint, "<blueprint>.<view>"
    what: str  # "An import file": the problem's subject
    max_bytes: int
    roles: tuple[str, ...] = ()  # checked before the size (empty: any signed-in user)

    @property
    def request_bytes(self) -> int:
        return self.max_bytes + MULTIPART_OVERHEAD

    def too_large(self) -> ApiProblem:
        return ApiProblem(
            413, f"{self.what} may have at most {self.max_bytes:,} bytes "
                 f"({self.max_bytes / (1024 * 1024):g} MiB).",
            type_=PROBLEM_BASE + "payload-too-large", limit="max_file_bytes",
            max_file_bytes=self.max_bytes)

    def read(self, upload: Any) -> bytes:
        """The uploaded file's bytes; one byte over the limit is the 413."""
        content = upload.read(self.max_bytes + 1)
        if len(content) > self.max_bytes:
            raise self.too_large()
        return content


def allow_uploads(blp: Blueprint, *limits: UploadLimit,
                  require_role: Callable[..., Any] | None = None) -> None:
    """Lift the JSON body limit for these routes of `blp` to their own (see the module)."""
    by_endpoint = {limit.endpoint: limit for limit in limits}

    @blp.before_request
    def _allow() -> None:
        limit = by_endpoint.get(request.endpoint or "")
        if limit is None:
            return
        if limit.roles and require_role is not None:
            require_role(*limit.roles)
        if request.content_length is not None and request.content_length > limit.request_bytes:
            raise limit.too_large()
        request.max_content_length = limit.request_bytes

    @blp.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> Response:
        # a body without Content-Length that grew past the limit while it was read
        limit = by_endpoint.get(request.endpoint or "")
        if limit is not None:
            return handle_api_problem(limit.too_large())
        return handle_http_exception(error)


def file_response(filename: str, content: bytes) -> Response:
    """A stored file as a download: `Content-Disposition: attachment` with the original name
    (RFC 6266: an ASCII fallback and the UTF-8 name), always `application/octet-stream` and
    `nosniff` (whoever uploaded it chose its declared type, and a text/html file must not run
    as a page of this origin)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    return Response(content, mimetype="application/octet-stream",
                    headers={"Content-Disposition": disposition,
                             "X-Content-Type-Options": "nosniff"})
