"""Strict JSON in and out of the gateway, bounded JSON objects, UTC timestamps and the log levels
of client errors against faults: the Flask test client with a fake RPC pool."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from nameko.exceptions import RemoteError

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.logging import JsonFormatter
from tests.support.gateway import FakeRpc, assert_problem, auth, lead

JSON = {"Content-Type": "application/json"}
# One route of each resource module, and a public one: the checks are central, not per route.
ROUTES = [
    ("POST", "/leads"),
    ("POST", "/system/echo"),
    ("PUT", "/scoring-model"),
    ("POST", "/customers"),
    ("POST", "/rules"),
    ("POST", "/auth/tokens"),
]
MALFORMED = {
    "nan": '{"name": NaN}',
    "infinity": '{"name": Infinity}',
    "minus-infinity": '{"name": -Infinity}',
    "nested-1000-deep": "[" * 1000 + "]" * 1000,
    "nested-40-deep": '{"a": ' * 40 + "1" + "}" * 40,
    "duplicate-key": '{"name": "a", "name": "b"}',
    "not-utf8": b'{"name": "\xff\xfe"}',
    "not-json": "{name: 1}",
}
UNSTORABLE = {
    "1e999": ('{"amount": 1e999}', "amount"),
    "5000-digit-integer": ('{"n": ' + "9" * 5000 + "}", "n"),
    "int-over-64-bits": ('{"n": 9223372036854775808}', "n"),
    "lone-surrogate": ('{"name": "a\\ud800b"}', "name"),
    "nul": ('{"name": "a\\u0000b"}', "name"),
    "nested-nul": ('{"a": {"b": ["x", "y\\u0000"]}}', "a.b[1]"),
    "nul-in-key": ('{"k\\u0000": 1}', "k"),
}


def send(client: FlaskClient, method: str, path: str, body: str | bytes,
         headers: dict[str, str]) -> Any:
    return client.open(path, method=method, data=body, headers={**headers, **JSON})


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_json_is_400_on_every_route(client: FlaskClient, org: dict, fake_rpc: FakeRpc,
                                               case: str) -> None:
    for method, path in ROUTES:
        response = send(client, method, path, MALFORMED[case], auth(org, "admin"))
        body = assert_problem(response, 400)
        assert body["type"] == "urn:problem-type:crm:malformed-body", (method, path)
    assert not fake_rpc.calls


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_unstorable_values_are_422_naming_the_field(client: FlaskClient, org: dict,
                                                    fake_rpc: FakeRpc, case: str) -> None:
    raw, field = UNSTORABLE[case]
    for method, path in ROUTES:
        response = send(client, method, path, raw, auth(org, "admin"))
        body = assert_problem(response, 422)
        assert body["type"] == "urn:problem-type:crm:validation-failed", (method, path)
        assert list(body["errors"]) == [field], (method, path)
    assert not fake_rpc.calls


def test_the_problem_says_what_is_wrong(client: FlaskClient, org: dict) -> None:
    headers = auth(org, "zhangwei")
    nan = assert_problem(send(client, "POST", "/leads", '{"name": NaN}', headers), 400)
    assert "NaN" in nan["detail"]
    deep = assert_problem(send(client, "POST", "/leads", MALFORMED["nested-40-deep"], headers), 400)
    assert "32" in deep["detail"]
    big = assert_problem(send(client, "POST", "/leads", UNSTORABLE["1e999"][0], headers), 422)
    assert big["errors"]["amount"] == ["Number out of range: 1e999."]
    surrogate = send(client, "POST", "/leads", UNSTORABLE["lone-surrogate"][0], headers)
    assert "surrogate" in assert_problem(surrogate, 422)["errors"]["name"][0]


def test_nul_in_a_query_parameter_is_422(client: FlaskClient, org: dict,
                                         fake_rpc: FakeRpc) -> None:
    body = assert_problem(client.get("/leads?q=a%00b", headers=auth(org, "zhangwei")), 422)
    assert list(body["errors"]) == ["q"]
    assert not fake_rpc.calls


def test_strict_json_still_accepts_ordinary_json(client: FlaskClient, org: dict,
                                                 fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "ping", lambda payload: payload)
    payload = {"int": -9223372036854775808, "float": 1.5e300, "text": "中文 \u00e9 😀",
               "nested": [{"a": [None, True, 0.1]}], "tab": "a\tb"}
    response = client.post("/system/echo", json=payload, headers=auth(org, "zhangwei"))
    assert response.status_code == 200 and response.get_json() == payload


# -- out -------------------------------------------------------------------------------------


def test_responses_never_carry_nan_infinity_or_lone_surrogates(client: FlaskClient, org: dict,
                                                               fake_rpc: FakeRpc) -> None:
    # Values stored before the input was strict still come back from the services.
    fake_rpc.on("leads", "ping", lambda payload: {
        "nan": float("nan"), "inf": float("inf"), "list": [1.0, float("-inf")],
        "text": "a\ud800b"})
    response = client.post("/system/echo", json={}, headers=auth(org, "zhangwei"))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "NaN" not in text and "Infinity" not in text
    body = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the answer"))
    assert body == {"nan": None, "inf": None, "list": [1.0, None], "text": "a\ufffdb"}


def test_timestamps_are_utc_on_create_and_on_read(client: FlaskClient, org: dict,
                                                  fake_rpc: FakeRpc) -> None:
    # A service echoes the offset a client sent on create and answers UTC from storage.
    echoed = lead(id="lead-9", created_at="2026-11-23T10:00:00+08:00",
                  updated_at="2026-11-23T10:00:00.250000+08:00",
                  last_activity_at="2026-11-23T02:00:00Z")
    fake_rpc.on("leads", "create_lead",
                lambda data, on_duplicate, **_: {"outcome": "created", "lead": echoed})
    fake_rpc.on("leads", "get_lead", lambda lead_id, scope: lead(
        id="lead-9", created_at="2026-11-23T02:00:00+00:00",
        updated_at="2026-11-23T02:00:00.250000+00:00",
        last_activity_at="2026-11-23T02:00:00+00:00"))
    headers = auth(org, "zhangwei")
    created = client.post("/leads", json={"name": "李雷", "source": "web", "email": "l@x.cn"},
                          headers=headers)
    read = client.get("/leads/lead-9", headers=headers)
    assert created.status_code == 201 and read.status_code == 200
    for name in ("created_at", "updated_at", "last_activity_at"):
        assert created.json[name] == read.json[name], name
    assert created.json["created_at"] == "2026-11-23T02:00:00+00:00"
    assert created.json["updated_at"] == "2026-11-23T02:00:00.250000+00:00"


def test_gateway_records_are_utc_on_create_and_on_read(client: FlaskClient, org: dict) -> None:
    headers = auth(org, "admin")
    created = client.post("/users", json={"username": "wangfang", "display_name": "王芳",
                                          "role": "sales_rep", "password": "long-enough-1"},
                          headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    read = client.get(f"/users/{created.json['id']}", headers=headers)
    assert read.status_code == 200
    assert created.json["created_at"] == read.json["created_at"]
    assert created.json["created_at"].endswith("+00:00")


# -- size limits -----------------------------------------------------------------------------


NEW_LEAD = {"name": "李雷", "source": "website", "email": "lilei@example.cn"}


OVERSIZE_ATTRIBUTES = [
    ({"notes": "x" * 100_000}, "Strings are at most 2000"),
    ({f"k{i}": "x" * 1000 for i in range(40)}, "bytes as JSON"),
    ({f"k{i}": i for i in range(51)}, "At most 50 properties"),
    ({"k" * 65: 1}, "Keys are at most 64"),
    ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "levels deep"),
    ({"list": list(range(101))}, "at most 100 items"),
]


def test_lead_attributes_are_bounded(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    for attributes, problem in OVERSIZE_ATTRIBUTES:
        response = client.post("/leads", json={**NEW_LEAD, "attributes": attributes},
                               headers=auth(org, "zhangwei"))
        errors = assert_problem(response, 422)["errors"]
        assert list(errors) == ["attributes"], errors
        assert problem in errors["attributes"][0], errors
    assert not fake_rpc.calls


def test_a_megabyte_of_attributes_cannot_be_stored(client: FlaskClient, org: dict,
                                                   fake_rpc: FakeRpc) -> None:
    # Under the body limit, so only the field's own bound stops it.
    attributes = {f"k{i}": "很" * 1000 for i in range(45)}
    body = json.dumps({**NEW_LEAD, "attributes": attributes}, ensure_ascii=False).encode()
    assert len(body) < 1024 * 1024
    response = client.post("/leads", data=body, headers={**auth(org, "zhangwei"), **JSON})
    assert "attributes" in assert_problem(response, 422)["errors"]
    behaviour = client.post("/leads/l1/behaviours", headers=auth(org, "zhangwei"),
                            json={"type": "visited", "attributes": attributes})
    assert "attributes" in assert_problem(behaviour, 422)["errors"]
    assert not fake_rpc.calls


def test_bounded_attributes_within_the_limits_pass(client: FlaskClient, org: dict,
                                                   fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "create_lead", lambda data, on_duplicate, **_: {
        "outcome": "created", "lead": lead(id="lead-9", attributes=data["attributes"])})
    attributes = {"employees": 500, "tags": ["a", "b"], "erp": {"id": "4711"}}
    response = client.post("/leads", json={**NEW_LEAD, "attributes": attributes},
                           headers=auth(org, "zhangwei"))
    assert response.status_code == 201 and response.json["attributes"] == attributes


# -- logging ---------------------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("gateway"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []  # as the gateway's handler writes them, during the request

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def gateway_log(app: Any) -> Iterator[Records]:
    # The gateway's logger does not propagate (it writes JSON lines itself): listen on it.
    handler = Records()
    logger = logging.getLogger("services.gateway")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_client_errors_are_info_without_traceback(client: FlaskClient, org: dict,
                                                  fake_rpc: FakeRpc,
                                                  gateway_log: Records) -> None:
    headers = auth(org, "zhangwei")
    fake_rpc.on("leads", "get_lead", NotFound("No lead l1"))
    fake_rpc.on("leads", "release_lead", ValidationFailed.for_fields({"reason": ["Required."]}))
    fake_rpc.on("leads", "create_lead", Conflict("Duplicate of lead-1", {"existing_id": "x"}))
    answers = [
        client.get("/leads/l1", headers=headers),
        client.post("/leads/l1/release", json={}, headers=headers),
        client.post("/leads", json=NEW_LEAD, headers=headers),
        client.post("/leads", json={"name": 1}, headers=headers),
        send(client, "POST", "/leads", '{"name": NaN}', headers),
        client.get("/leads"),
        client.get("/no/such/route", headers=headers),
        client.delete("/leads", headers=headers),
        client.post("/leads/l1/assign", json={"owner_id": "u"}, headers=headers),
    ]
    assert [a.status_code for a in answers] == [404, 422, 409, 422, 400, 401, 404, 405, 403]
    assert [r.getMessage() for r in gateway_log.records if r.levelno >= logging.WARNING] == []
    assert not [r for r in gateway_log.records if r.exc_info]
    access = [r for r in gateway_log.records if r.name == "services.gateway.access"]
    assert len(access) == len(answers) and {r.levelno for r in access} == {logging.INFO}
    assert access[0].problem == "urn:problem-type:crm:not-found"  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", [RuntimeError("bug in the gateway"),
                                   RemoteError("KeyError", "'x'")])
def test_faults_are_one_error_json_line_with_traceback(client: FlaskClient, org: dict,
                                                       fake_rpc: FakeRpc, gateway_log: Records,
                                                       fault: Exception) -> None:
    fake_rpc.on("leads", "get_lead", fault)
    response = client.get("/leads/l1", headers=auth(org, "zhangwei"))
    assert_problem(response, 500)
    errors = [(r, line) for r, line in zip(gateway_log.records, gateway_log.lines, strict=True)
              if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0][0].exc_info
    line = errors[0][1]
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and "Traceback" in parsed["exc"]
    assert parsed["correlation_id"] == response.headers["X-Correlation-ID"]


def test_413_names_the_limit_of_the_route(client: FlaskClient, org: dict) -> None:
    huge = '{"name": "' + "x" * (1024 * 1024 + 10) + '"}'
    body = assert_problem(send(client, "POST", "/leads", huge, auth(org, "zhangwei")), 413)
    assert body["max_bytes"] == 1024 * 1024 and str(1024 * 1024) in body["detail"]


def test_a_too_long_uri_is_a_problem_not_an_html_page(client: FlaskClient, org: dict) -> None:
    response = client.get("/leads?q=" + "x" * 5000, headers=auth(org, "zhangwei"))
    assert response.status_code == 414
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 414
