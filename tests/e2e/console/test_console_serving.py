"""The gateway serves the console (services/gateway/console/blueprint.py) without changing any
API route: `/` and `/console/<client route>` answer index.html, hashed assets are cached, an
unknown API path is still a problem+json 404, and the OpenAPI document lists no console route.
With Flask's test client and a stand-in build, so no Node.js is needed here."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from services.gateway.console import blueprint

INDEX = '<!doctype html><div id="app"></div><script src="/console/assets/index-abc.js"></script>'


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX, encoding="utf-8")
    (dist / "assets" / "index-abc.js").write_text("console.log(1)", encoding="utf-8")
    monkeypatch.setattr(blueprint, "DIST", dist)
    return dist


@pytest.mark.parametrize("path", ["/", "/console/", "/console/leads", "/console/customers/c-1"])
def test_index_and_client_routes_answer_the_page_without_credentials(
        client: FlaskClient, built: Path, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.get_data(as_text=True) == INDEX
    assert response.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_assets_are_cached_and_a_missing_one_is_a_problem(client: FlaskClient, built: Path
                                                          ) -> None:
    asset = client.get("/console/assets/index-abc.js")
    assert asset.status_code == 200
    assert asset.get_data(as_text=True) == "console.log(1)"
    assert "immutable" in asset.headers["Cache-Control"]
    missing = client.get("/console/assets/nope.js")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert client.get("/console/assets/../index.html").status_code == 404
    assert client.get("/console/assets/../../build.py").status_code == 404


def test_api_routes_and_unknown_paths_are_unchanged(client: FlaskClient, built: Path) -> None:
    unknown = client.get("/leadsx")
    assert unknown.status_code == 404
    assert unknown.mimetype == "application/problem+json"
    assert client.get("/leads").status_code == 401  # an API route still needs credentials
    assert client.get("/health").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/console")]


def test_without_a_build_the_page_says_how_to_build_it(
        client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blueprint, "DIST", tmp_path / "absent")
    response = client.get("/")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "urn:problem-type:crm:console-not-built"
    assert "make run" in response.get_json()["detail"]
