"""Gateway problem responses, idempotency, rate limits, 503s, OpenAPI and metrics."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from services.gateway.rpc import ServiceUnavailable
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.support.gateway import FakeRpc, assert_problem, auth, lead

NEW_LEAD = {"name": "李雷", "company": "杭州示例科技", "email": "lilei@example.cn",
            "source": "website", "product_interest": ["CRM"]}


def created(data: dict, on_duplicate: str = "reject", owner_id: Any = None,
            scope: Any = None, idempotency_key: Any = None) -> dict:
    return {"outcome": "created", "lead": lead(id="lead-9", **data)}


def test_validation_problems_name_the_fields(client: FlaskClient, org: dict,
                                             fake_rpc: FakeRpc) -> None:
    headers = auth(org, "zhangwei")
    wrong_types = client.post("/leads", json={"name": 5, "source": "web", "email": "a@b.cn",
                                              "product_interest": "CRM"}, headers=headers)
    errors = assert_problem(wrong_types, 422)["errors"]
    assert set(errors) == {"name", "product_interest"}

    missing = client.post("/leads", json={"company": "x"}, headers=headers)
    errors = assert_problem(missing, 422)["errors"]
    assert {"name", "source"} <= set(errors)

    bad_email = client.post("/leads", json={**NEW_LEAD, "email": "not-an-email"}, headers=headers)
    assert set(assert_problem(bad_email, 422)["errors"]) == {"email"}

    unknown = client.post("/leads", json={**NEW_LEAD, "budget": 100}, headers=headers)
    assert "budget" in assert_problem(unknown, 422)["errors"]

    no_contact = client.post("/leads", json={"name": "x", "source": "web"}, headers=headers)
    assert {"email", "phone"} <= set(assert_problem(no_contact, 422)["errors"])

    bad_query = client.get("/leads?limit=500&colour=red", headers=headers)
    assert {"limit", "colour"} <= set(assert_problem(bad_query, 422)["errors"])

    bad_status = client.post("/leads/l1/status", json={"status": "won"}, headers=headers)
    assert "status" in assert_problem(bad_status, 422)["errors"]
    assert not fake_rpc.calls


def test_malformed_json_oversize_unknown_route_and_method(client: FlaskClient, org: dict) -> None:
    headers = {**auth(org, "zhangwei"), "Content-Type": "application/json"}
    assert_problem(client.post("/leads", data="{not json", headers=headers), 400)
    huge = '{"name": "' + "x" * (1024 * 1024 + 10) + '"}'
    assert_problem(client.post("/leads", data=huge, headers=headers), 413)
    assert_problem(client.get("/no/such/route", headers=headers), 404)
    assert_problem(client.get("/no/such/route"), 404)
    not_allowed = client.delete("/leads", headers=headers)
    assert_problem(not_allowed, 405)
    assert "GET" in not_allowed.headers["Allow"]


def test_create_lead_statuses_and_duplicates(client: FlaskClient, org: dict,
                                             fake_rpc: FakeRpc) -> None:
    headers = auth(org, "zhangwei")
    fake_rpc.on("leads", "create_lead", created)
    response = client.post("/leads?on_duplicate=create", json=NEW_LEAD, headers=headers)
    assert response.status_code == 201
    assert response.headers["Location"] == "/leads/lead-9"
    assert fake_rpc.last["kwargs"]["on_duplicate"] == "create"
    assert "on_duplicate" not in fake_rpc.last["kwargs"]["data"]

    fake_rpc.on("leads", "create_lead", lambda data, on_duplicate, scope: {
        "outcome": "merged", "lead": lead(id="lead-1")})
    merged = client.post("/leads", json={**NEW_LEAD, "on_duplicate": "merge"}, headers=headers)
    assert merged.status_code == 200 and merged.headers["Location"] == "/leads/lead-1"
    assert fake_rpc.last["kwargs"]["on_duplicate"] == "merge"

    matches = [{"lead_id": "lead-1", "reason": "email", "score": 1.0, "exact": True}]
    fake_rpc.on("leads", "create_lead", Conflict(
        "Duplicate of lead-1", {"existing_id": "lead-1", "matches": matches}))
    conflict = assert_problem(client.post("/leads", json=NEW_LEAD, headers=headers), 409)
    assert conflict["existing_id"] == "lead-1" and conflict["matches"] == matches


def test_typed_service_errors_map_by_status(client: FlaskClient, org: dict,
                                            fake_rpc: FakeRpc) -> None:
    headers = auth(org, "zhangwei")
    fake_rpc.on("leads", "get_lead", NotFound("No lead l1"))
    body = assert_problem(client.get("/leads/l1", headers=headers), 404)
    assert body["type"] == "urn:problem-type:crm:not-found"
    fake_rpc.on("leads", "change_status", PreconditionFailed("converted is final"))
    body = assert_problem(client.post("/leads/l1/status", json={"status": "new"},
                                      headers=headers), 412)
    assert body["type"] == "urn:problem-type:crm:precondition-failed"
    # a detail named like a member of the problem (the lead's status) does not replace it
    fake_rpc.on("leads", "change_status",
                PreconditionFailed("not qualified", {"status": "new", "title": "x"}))
    body = assert_problem(client.post("/leads/l1/status", json={"status": "new"},
                                      headers=headers), 412)
    assert (body["status"], body["record_status"], body["record_title"]) == (412, "new", "x")
    fake_rpc.on("leads", "release_lead", ValidationFailed.for_fields({"reason": ["Required."]}))
    body = assert_problem(client.post("/leads/l1/release", json={}, headers=headers), 422)
    assert body["errors"] == {"reason": ["Required."]}
    # the same type as the gateway's own validation problems
    mine = assert_problem(client.post("/leads", json={"name": 1}, headers=headers), 422)
    assert body["type"] == mine["type"] == "urn:problem-type:crm:validation-failed"
    fake_rpc.on("leads", "get_lead", RuntimeError("bug"))
    body = assert_problem(client.get("/leads/l1", headers=headers), 500)
    assert "bug" not in body["detail"]


def test_service_unavailable_is_503_with_retry_after(client: FlaskClient, org: dict,
                                                     fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "get_lead", ServiceUnavailable("leads", "no running instance", 7))
    response = client.get("/leads/l1", headers=auth(org, "lina"))
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "7"
    assert body["service"] == "leads"


def test_correlation_id_is_echoed_and_forwarded(client: FlaskClient, org: dict,
                                                fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "ping", lambda payload: payload)
    response = client.post("/system/echo", json={"n": 1, "文字": "中文"},
                           headers={**auth(org, "lina"), "X-Correlation-ID": "corr-123"})
    assert response.status_code == 200 and response.json == {"n": 1, "文字": "中文"}
    assert response.headers["X-Correlation-ID"] == "corr-123"
    assert fake_rpc.last["correlation_id"] == "corr-123"
    generated = client.get("/health")
    assert len(generated.headers["X-Correlation-ID"]) == 36


def test_idempotent_replay_and_mismatch(client: FlaskClient, org: dict,
                                        fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "create_lead", created)
    headers = {**auth(org, "zhangwei"), "Idempotency-Key": "k-1"}
    first = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # the key goes to the service too (per user), which replays it after a lost reply
    assert fake_rpc.calls[-1]["kwargs"]["idempotency_key"] == f"{org['zhangwei']['id']}:k-1" \
        if isinstance(org.get("zhangwei"), dict) else fake_rpc.calls[-1]["kwargs"][
            "idempotency_key"].endswith(":k-1")
    again = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json and again.headers["Location"] == first.headers["Location"]
    assert len(fake_rpc.calls) == 1

    other = client.post("/leads", json={**NEW_LEAD, "name": "韩梅梅"}, headers=headers)
    assert "Idempotency-Key" in assert_problem(other, 422)["errors"]

    # Keys are per user: another user's same key is a new request.
    lina = client.post("/leads", json=NEW_LEAD, headers={**auth(org, "lina"),
                                                        "Idempotency-Key": "k-1"})
    assert lina.status_code == 201 and "Idempotent-Replayed" not in lina.headers
    assert len(fake_rpc.calls) == 2


def test_idempotency_does_not_keep_503(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    headers = {**auth(org, "zhangwei"), "Idempotency-Key": "k-2"}
    fake_rpc.on("leads", "create_lead", ServiceUnavailable("leads", "down"))
    assert_problem(client.post("/leads", json=NEW_LEAD, headers=headers), 503)
    fake_rpc.on("leads", "create_lead", created)
    retry = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers


def test_a_reservation_left_by_a_dead_gateway_expires(client: FlaskClient, org: dict,
                                                      fake_rpc: FakeRpc, app: Any) -> None:
    """A gateway killed mid-request leaves its key reserved: the retry gets 409 "in progress"
    while the request could still be running, then (past the lease) runs again, and the
    service replays what the key did."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from services.gateway.models import IdempotencyKey

    gw = app.extensions["crm_gateway"]
    headers = {**auth(org, "zhangwei"), "Idempotency-Key": "k-dead"}
    fake_rpc.on("leads", "create_lead", created)
    # What the dead request left: its reservation, no answer.
    gw.idempotency.begin(org["zhangwei"]["id"], "k-dead", "POST", "/leads?",
                         client.application.json.dumps(NEW_LEAD).encode())
    in_progress = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert assert_problem(in_progress, 409)["type"].endswith("idempotency-key-in-progress")
    assert not fake_rpc.calls

    with gw.store.begin() as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "k-dead").values(
            created_at=datetime.now(UTC) - gw.idempotency.lease - timedelta(seconds=1)))
    retry = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert retry.status_code == 201, retry.json
    assert fake_rpc.calls[-1]["kwargs"]["idempotency_key"].endswith(":k-dead")
    again = client.post("/leads", json=NEW_LEAD, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_rate_limit_429(make_app: Any, org: dict) -> None:
    client = make_app(rate_limit=1, rate_burst=2).test_client()
    headers = auth(org, "lina")
    statuses = [client.get("/me", headers=headers).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses
    limited = client.get("/me", headers=headers)
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/me", headers=auth(org, "zhangwei")).status_code == 200


def test_health(client: FlaskClient, fake_rpc: FakeRpc) -> None:
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.json["status"] == "ok"
    fake_rpc.broker_up = False
    down = client.get("/health")
    assert down.status_code == 503 and down.json["checks"]["broker"] == "down"
    assert down.headers["Retry-After"]


def test_openapi_document_and_metrics(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    assert "/leads/{lead_id}/assign" in spec["paths"]
    create = spec["components"]["schemas"]["LeadCreate"]
    assert set(create["required"]) == {"name", "source"}
    assert create["properties"]["email"]["format"] == "email"
    assert client.get("/docs").status_code == 200

    fake_rpc.on("leads", "get_lead", ServiceUnavailable("leads", "down"))
    client.get("/leads/l1", headers=auth(org, "lina"))
    text = client.get("/metrics").get_data(as_text=True)
    assert "crm_gateway_http_requests_total" in text
    assert 'route="/leads/<string:lead_id>"' in text
    assert "crm_gateway_service_unavailable_total" in text
    assert 'target="leads.get_lead"' in text
