"""The gateway's service desk numbers routes with a recording RPC pool (no broker, no service
desk): each records route takes its figure's own parameters, with the enums of the service's
schema (contract.TICKET_NUMBERS_PARAMS) in the OpenAPI document and in the 422, and passes the
caller's scope on; the desk queue's caller is the scope's user_id."""

from __future__ import annotations

import pytest

from services.service_desk import contract as desk
from tests.support.gateway import FakeRpc, assert_problem, auth

PAGE = {"items": [], "next_cursor": None}


def parameter(spec: dict, path: str, name: str) -> dict:
    [found] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
    return found["schema"]


def test_the_outcome_enum_is_per_figure_in_the_openapi(client):
    spec = client.get("/openapi.json").json
    assert parameter(spec, "/reports/tickets/sla-attainment/records", "outcome")["enum"] == [
        "met", "breached", "open"]
    assert parameter(spec, "/reports/tickets/reopen-rate/records", "outcome")["enum"] == [
        "solved", "reopened"]
    names = {p["name"] for p in spec["paths"]["/reports/tickets/volume/records"]["get"][
        "parameters"]}
    assert {"period", "channel"} <= names and "outcome" not in names


@pytest.mark.parametrize(("path", "outcome"), [("sla-attainment", "solved"),
                                               ("reopen-rate", "met")])
def test_an_outcome_of_another_figure_is_a_422_naming_outcome(client, org, fake_rpc: FakeRpc,
                                                             path, outcome):
    fake_rpc.on("service_desk", "ticket_numbers_drill_down", PAGE)
    response = client.get(f"/reports/tickets/{path}/records", headers=auth(org, "admin"),
                          query_string={"outcome": outcome})
    body = assert_problem(response, 422)
    assert "outcome" in str(body)
    assert not [c for c in fake_rpc.calls if c["method"] == "ticket_numbers_drill_down"]


def test_the_records_pass_the_figure_its_parameters_and_scope(client, org, fake_rpc: FakeRpc):
    fake_rpc.on("service_desk", "ticket_numbers_drill_down", PAGE)
    response = client.get("/reports/tickets/reopen-rate/records", headers=auth(org, "zhangwei"),
                          query_string={"outcome": "reopened", "limit": 5})
    assert response.status_code == 200, response.get_data(as_text=True)
    call = fake_rpc.last["kwargs"]
    assert (call["figure"], call["params"], call["limit"]) == ("reopen", {"outcome": "reopened"},
                                                               5)
    assert call["scope"]["user_id"] == org["zhangwei"]["id"]
    assert set(desk.TicketNumbersParamsSchema.of("reopen")._declared_fields) == {"outcome"}


def test_the_desk_queue_caller_is_the_scope_user_id(client, org, fake_rpc: FakeRpc):
    fake_rpc.on("service_desk", "desk_queue", PAGE)
    for username in ("zhangwei", "admin"):
        response = client.get("/desk/queue", headers=auth(org, username),
                              query_string={"view": "mine"})
        assert response.status_code == 200, response.get_data(as_text=True)
        call = fake_rpc.last["kwargs"]
        assert "user_id" not in call and call["scope"]["user_id"] == org[username]["id"]
