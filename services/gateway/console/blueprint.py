"""Serves the built console: `/` and every `/console/...` client route answer index.html, the
hashed files under `/console/assets/` are cached for a year.

Registered with `app.register_blueprint` (not the flask-smorest Api), so none of these routes is
in the OpenAPI document; they are public (the app's PUBLIC_BLUEPRINTS): the page holds no data,
every API call it makes carries the user's token. Paths outside `/` and `/console/` are not
touched, so an unknown API path is still a problem+json 404.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory
from werkzeug.exceptions import NotFound

from services.gateway.problems import problem_response

DIST = Path(__file__).resolve().parent / "dist"
ASSETS = "assets/"
_YEAR = 365 * 24 * 3600
# Element Plus and ECharts set inline styles; scripts and everything else only from here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)

console = Blueprint("console", __name__)


def _index() -> Response:
    if not (DIST / "index.html").is_file():
        return problem_response(
            404,
            title="Console not built",
            detail="The web console is not built: `make run` builds it, or run "
            "`python -m services.gateway.console.build`.",
            type_="urn:problem-type:crm:console-not-built",
        )
    response = send_from_directory(DIST, "index.html", max_age=0)
    # Always revalidated: a new build must reach the browser at the next load.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@console.get("/")
def index() -> Response:
    return _index()


@console.get("/console/")
@console.get("/console/<path:path>")
def client_route(path: str = "") -> Response:
    if not path.startswith(ASSETS):
        return _index()  # a client route (/console/leads, /console/customers/<id>): the SPA
    if ".." in path.split("/"):  # only files under assets/ (send_from_directory keeps to dist/)
        return problem_response(404, detail=f"No console file {path}.")
    try:
        response = send_from_directory(DIST, path, max_age=_YEAR)
    except NotFound:
        return problem_response(404, detail=f"No console file {path}.")
    response.headers["Cache-Control"] = f"public, max-age={_YEAR}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
