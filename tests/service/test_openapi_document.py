"""The live OpenAPI document is valid OpenAPI 3.1 and says what the gateway sends; /docs and
/redoc work without internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.support.gateway import auth

PROBLEM = "application/problem+json"


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def test_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    spec = document(client)
    assert spec["openapi"].startswith("3.1")
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_no_form_data_parameters_multipart_is_a_request_body(client: FlaskClient) -> None:
    spec = document(client)
    for path, method, operation in operations(spec):
        places = {p.get("in") for p in operation.get("parameters", [])}
        assert places <= {"query", "header", "path", "cookie"}, (method, path)
    upload = spec["paths"]["/imports"]["post"]["requestBody"]["content"]["multipart/form-data"]
    schema = upload["schema"]
    assert {"file", "entity", "dry_run", "on_duplicate"} <= set(schema["properties"])
    assert {"file", "entity"} <= set(schema["required"])


def test_bounds_are_numbers_and_decimals_are_strings_with_a_pattern(client: FlaskClient) -> None:
    spec = document(client)
    for where, node in walk(spec):
        if where.endswith("/properties"):  # names of properties, not keywords
            continue
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert isinstance(node[key], int | float), (where, key, node[key])
    amount = spec["components"]["schemas"]["QuotaWrite"]["properties"]["amount"]
    assert amount["type"] == "string" and "minimum" not in amount
    pattern = re.compile(amount["pattern"])
    assert pattern.match("100000.50") and pattern.match("12") and not pattern.match("-1")
    assert not pattern.match("1.234") and not pattern.match("1e3")
    opportunity = spec["components"]["schemas"]["Opportunity"]["properties"]["amount"]
    assert opportunity["type"] == ["string", "null"] and re.match(opportunity["pattern"], "-5.1")


def test_errors_are_problem_json_with_the_problem_schema(client: FlaskClient) -> None:
    spec = document(client)
    components = spec["components"]
    problem = components["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert "Error" not in components["schemas"]
    for name, response in components["responses"].items():
        assert list(response["content"]) == [PROBLEM], name
    checked = 0
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if not (status.startswith(("4", "5")) or status == "default"):
                continue
            checked += 1
            if "$ref" in response:
                assert response["$ref"].startswith("#/components/responses/")
                continue
            content = response["content"]
            if (path, status) == ("/health", "503"):  # the health body, as application/json
                assert list(content) == ["application/json"]
                continue
            assert list(content) == [PROBLEM], (method, path, status)
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert checked > len(spec["paths"])


def test_free_form_objects_document_their_bounds(client: FlaskClient) -> None:
    spec = document(client)
    attributes = spec["components"]["schemas"]["LeadCreate"]["properties"]["attributes"]
    assert attributes["type"] == "object"
    assert attributes["maxProperties"] == 50
    assert attributes["propertyNames"]["maxLength"] == 64
    assert attributes["additionalProperties"]["maxLength"] == 2000
    assert attributes["x-max-bytes"] == 16 * 1024


def test_docs_pages_use_only_local_assets(client: FlaskClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200 and response.mimetype == "text/html"
        html = response.get_data(as_text=True)
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for url in assets:
            assert url.startswith("/") and not url.startswith("//"), (page, url)
        assert "http://" not in html and "https://" not in html, page
        expected = {".js": "text/javascript", ".css": "text/css"}
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rfind("."):]
            assert asset.mimetype == expected[suffix], (url, asset.mimetype)
            assert len(asset.data) > 10_000, url
    assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").data
    assert b"Redoc" in client.get("/redoc/assets/redoc.standalone.js").data
    assert client.get("/docs/assets/../app.py").status_code == 404


def test_every_cursor_is_url_safe_base64_and_anything_else_is_refused(
    client: FlaskClient, org: dict
) -> None:
    spec = document(client)
    cursors = [(path, p["schema"]) for path, _, operation in operations(spec)
               for p in operation.get("parameters", []) if p["name"] == "cursor"]
    assert len(cursors) > 10
    for path, schema in cursors:
        pattern = re.compile(schema["pattern"])
        assert pattern.match("eyJhIjogMX0=") and pattern.match("abc-_"), path
        assert not any(pattern.match(bad) for bad in ("线索", "a b", "%")), path

    # A cursor of multi-byte characters, 9 bytes each on the wire, is a field error (422), not
    # a request line gunicorn refuses in HTML, on the gateway's own lists and on services' lists.
    headers = auth(org, "admin")
    for path in ("/users", "/api-keys", "/leads", "/rule-runs", "/reports/forecast/snapshots"):
        response = client.get(path, query_string={"cursor": "线" * 20}, headers=headers)
        assert response.status_code == 422 and response.mimetype == PROBLEM, path
        assert "URL-safe base64" in response.json["errors"]["cursor"][0], path
