"""The gateway's lead conversion is one sales call: sales reads the lead from the leads
service itself. The gateway passes the caller's leads scope and the teams of those who may own
the result; a leads service that does not answer is a 503 with Retry-After."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.gateway.identity.models import User
from shared.errors import DependencyUnavailable, NotFound
from tests.support.gateway import FakeRpc, assert_problem, auth


def teams_of(app: Flask) -> dict[str, str | None]:
    with app.extensions["crm_gateway"].store.read() as session:
        return dict(session.execute(select(User.id, User.team_id)).all())


def converted(replayed: bool):
    def answer(**_: object) -> dict:
        return {"lead_id": "lead-1", "customer_id": "c1", "contact_id": None,
                "opportunity_id": None, "customer_created": True, "replayed": replayed,
                "converted_by": None, "converted_at": "2026-12-01T00:00:00+00:00",
                "customer": {"id": "c1", "name": "x"}, "contact": None, "opportunity": None}
    return answer


def test_a_conversion_is_one_sales_call_with_the_owners_teams(
        client: FlaskClient, app: Flask, org: dict, fake_rpc: FakeRpc) -> None:
    teams = teams_of(app)
    fake_rpc.on("sales", "convert_lead", converted(replayed=False))
    response = client.post("/leads/lead-1/convert", json={}, headers=auth(org, "manager"))
    assert response.status_code == 201, response.get_data(as_text=True)
    [call] = fake_rpc.calls
    assert (call["service"], call["method"]) == ("sales", "convert_lead")
    kwargs = call["kwargs"]
    assert kwargs["lead_id"] == "lead-1" and kwargs["scope"]["include_pool"] is True
    members = {org[name]["id"] for name in ("manager", "zhangwei", "lina")}
    assert set(kwargs["scope"]["owner_ids"]) == members
    assert kwargs["owner_teams"] == {user_id: teams[user_id] for user_id in members}

    fake_rpc.on("sales", "convert_lead", converted(replayed=True))
    again = client.post("/leads/lead-1/convert", json={}, headers=auth(org, "manager"))
    assert again.status_code == 200 and again.get_json()["replayed"] is True


def test_an_owner_named_in_the_body_is_resolved_here(
        client: FlaskClient, app: Flask, org: dict, fake_rpc: FakeRpc) -> None:
    fake_rpc.on("sales", "convert_lead", converted(replayed=False))
    zhangwei = org["zhangwei"]["id"]
    response = client.post("/leads/lead-1/convert", json={"owner_id": zhangwei},
                           headers=auth(org, "manager"))
    assert response.status_code == 201, response.get_data(as_text=True)
    kwargs = fake_rpc.last["kwargs"]
    assert kwargs["owner_teams"] is None
    assert kwargs["options"]["team_id"] == teams_of(app)[zhangwei]
    # A rep may not give the result to someone else: refused before anything is asked.
    calls = len(fake_rpc.calls)
    assert_problem(client.post("/leads/lead-1/convert", json={"owner_id": zhangwei},
                               headers=auth(org, "lina")), 403)
    assert len(fake_rpc.calls) == calls


def test_hidden_leads_and_an_absent_leads_service(client: FlaskClient, org: dict,
                                                 fake_rpc: FakeRpc) -> None:
    fake_rpc.on("sales", "convert_lead", NotFound("lead lead-1 not found", {"field": "lead_id"}))
    body = assert_problem(client.post("/leads/lead-1/convert", json={},
                                      headers=auth(org, "zhangwei")), 404)
    assert body["detail"] == "lead lead-1 not found" and body["field"] == "lead_id"
    fake_rpc.on("sales", "convert_lead", DependencyUnavailable(
        "the leads service is unavailable (no running instance); retry later",
        {"service": "leads", "reason": "no running instance"}))
    response = client.post("/leads/lead-1/convert", json={}, headers=auth(org, "zhangwei"))
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] and body["service"] == "leads"
    assert body["type"] == "urn:problem-type:crm:service-unavailable"
