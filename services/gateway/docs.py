"""The OpenAPI document's corrections and the local assets of /docs and /redoc.

flask-smorest and apispec write some things that are not OpenAPI 3.1 or not what the gateway
sends; they are corrected here once, for every resource module:
- form fields (`location="form"`) come out as `in: formData` parameters (OpenAPI 2): they are
  moved into the operation's `multipart/form-data` request body;
- decimals are sent as strings (`"12.50"`): a `Decimal(as_string=True)` field is documented as
  a string with a pattern (its range in `x-minimum` / `x-maximum`), never as a number with
  `minimum: "0.00"` (a string where 3.1 wants a number);
- errors are `application/problem+json` with the `Problem` schema, not `application/json`
  with flask-smorest's `Error` schema; a 4xx/5xx documented without a body gets the Problem;
- a `JsonObject` field documents the length of its keys (`propertyNames`).

Swagger UI comes from the flask-swagger-ui package (its `dist` folder) and ReDoc's standalone
bundle from flask-openapi3-redoc (read from its installed files; its Flask plugin is not used),
so both pages work on a machine without internet.
"""

from __future__ import annotations

import copy
import importlib.resources
from decimal import Decimal
from functools import cache
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, send_from_directory
from marshmallow import fields

from shared.payloads import JsonObject

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
ERROR_REFS = {PROBLEM_REF, "#/components/schemas/Error"}
SWAGGER_UI_URL = "/docs/assets/"
REDOC_URL = "/redoc/assets/redoc.standalone.js"
_ASSET_MAX_AGE = 24 * 3600


# -- assets ----------------------------------------------------------------------------------


@cache
def swagger_ui_dir() -> Path:
    return Path(str(importlib.resources.files("flask_swagger_ui") / "dist"))


@cache
def redoc_bundle() -> Path:
    dist = distribution("flask-openapi3-redoc")
    for file in dist.files or ():
        if file.name == "redoc.standalone.js":
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("redoc.standalone.js is not in flask-openapi3-redoc")


assets = Blueprint("docs-assets", __name__)


@assets.route(SWAGGER_UI_URL + "<path:filename>", methods=["GET"])
def swagger_ui_asset(filename: str) -> Response:
    if not filename.endswith((".js", ".css", ".png", ".html")):
        abort(404)
    return send_from_directory(swagger_ui_dir(), filename, max_age=_ASSET_MAX_AGE)


@assets.route(REDOC_URL, methods=["GET"])
def redoc_asset() -> Response:
    bundle = redoc_bundle()
    return send_from_directory(bundle.parent, bundle.name, max_age=_ASSET_MAX_AGE)


# -- schema fields ---------------------------------------------------------------------------


def field_properties(self: Any, field: fields.Field, ret: dict[str, Any], **_: Any
                     ) -> dict[str, Any]:
    """apispec attribute function (runs after apispec's own ones, so it can correct them)."""
    if isinstance(field, JsonObject):
        return {"propertyNames": {"minLength": 1, "maxLength": field.max_key_length}}
    if not isinstance(field, fields.Decimal):
        return {}
    minimum, maximum = ret.pop("minimum", None), ret.pop("maximum", None)
    if not field.as_string:
        return {key: float(value) for key, value in (("minimum", minimum), ("maximum", maximum))
                if value is not None}
    kind = ret.get("type", "number")
    kinds = kind if isinstance(kind, list) else [kind]
    ret["type"] = ["string" if k == "number" else k for k in kinds]
    if len(ret["type"]) == 1:
        ret["type"] = ret["type"][0]
    places = -field.places.as_tuple().exponent if field.places is not None else None
    fraction = rf"(\.\d{{1,{places}}})?" if places else (r"(\.\d+)?" if places is None else "")
    sign = "" if minimum is not None and Decimal(str(minimum)) >= 0 else "-?"
    extra: dict[str, Any] = {"pattern": rf"^{sign}\d+{fraction}$"}
    bounds = []
    if minimum is not None:
        extra["x-minimum"] = str(minimum)
        bounds.append(f">= {minimum}")
    if maximum is not None:
        extra["x-maximum"] = str(maximum)
        bounds.append(f"<= {maximum}")
    note = "A decimal sent as a string" + (f" ({', '.join(bounds)})" if bounds else "") + "."
    described = ret.get("description")
    extra["description"] = f"{described} {note}" if described else note
    return extra


# -- the document ----------------------------------------------------------------------------


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MIMETYPE: {"schema": {"$ref": PROBLEM_REF}}}


def _as_problem(response: dict[str, Any]) -> None:
    if "$ref" in response:
        return
    content = response.get("content")
    if not content:
        response["content"] = _problem_content()
        return
    json_body = content.get("application/json")
    if json_body is not None and json_body.get("schema", {}).get("$ref") in ERROR_REFS:
        del content["application/json"]
        content[PROBLEM_MIMETYPE] = {**json_body, "schema": {"$ref": PROBLEM_REF}}


def _form_into_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    parameters = operation.get("parameters") or []
    form = [p for p in parameters if p.get("in") == "formData"]
    if not form:
        return
    rest = [p for p in parameters if p.get("in") != "formData"]
    if rest:
        operation["parameters"] = rest
    else:
        operation.pop("parameters", None)
    properties: dict[str, Any] = {}
    for param in form:
        schema = dict(param.get("schema") or {})
        if param.get("description"):
            schema.setdefault("description", param["description"])
        properties[param["name"]] = schema
    form_schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [p["name"] for p in form if p.get("required")]
    if required:
        form_schema["required"] = required
    body = operation.setdefault("requestBody", {"required": True, "content": {}})
    media = body.setdefault("content", {}).setdefault("multipart/form-data", {})
    existing = media.get("schema")
    ref = (existing or {}).get("$ref", "")
    if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas:
        # one object (the file part's schema may forbid additional properties, so no allOf)
        merged = copy.deepcopy(schemas[ref.rsplit("/", 1)[1]])
        merged.setdefault("properties", {}).update(properties)
        if required:
            merged["required"] = [*merged.get("required", []), *required]
        media["schema"] = merged
    elif existing:
        media["schema"] = {"allOf": [existing, form_schema]}
    else:
        media["schema"] = form_schema


def _numeric_bounds(node: Any) -> None:
    """Any `minimum`/`maximum` still written as a string (a Decimal field apispec saw directly)
    becomes a number: 3.1 allows nothing else."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(item.get(key), str):
                    item[key] = float(item[key])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def fix_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """The document as apispec wrote it, corrected (see the module docstring)."""
    spec = copy.deepcopy(document)
    components = spec.setdefault("components", {})
    schemas = components.get("schemas") or {}
    for response in (components.get("responses") or {}).values():
        _as_problem(response)
    for path_item in (spec.get("paths") or {}).values():
        for method, operation in path_item.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            _form_into_body(operation, schemas)
            for status, response in (operation.get("responses") or {}).items():
                if str(status)[0] in "45" or status == "default":
                    _as_problem(response)
    if "Error" in schemas and "Problem" in schemas:
        del schemas["Error"]
    _numeric_bounds(spec)
    return spec
