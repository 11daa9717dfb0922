"""The gateway's rules endpoints with Flask's client: roles, visibility scopes, problem+json.

The gateway's RPC pool is the tests' recording pool (tests.support.gateway.FakeRpc), but
what it calls on `rules` is answered by the real rules service (worker_factory on a real
SQLite database), so validation and visibility are the service's own.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.rules import clock as clock_module
from services.rules.contract import EVENT_SCHEMAS
from services.rules.models import outbox
from services.rules.service import RulesService
from services.rules.usecases.cached import forget_cached_rules
from shared.context import Context
from shared.db import get_engine
from shared.migrations import upgrade
from tests.service.workers import service_worker
from tests.support.gateway import FakeRpc, assert_problem, auth

RULES_METHODS = (
    "create_rule", "update_rule", "get_rule", "list_rules", "set_rule_enabled", "dry_run",
    "list_runs", "get_run", "list_tasks", "get_task", "create_task", "complete_task",
    "reassign_task", "snooze_task", "list_notifications", "mark_notification_read",
    "create_webhook", "list_webhooks", "get_webhook", "update_webhook", "delete_webhook",
    "list_webhook_deliveries", "replay_webhook_delivery", "set_member_settings",
    "get_member_settings", "get_clock", "advance_clock", "adopt_shipped_rule",
    "list_recent_events",  # console-sales
)
RULE = {"name": "提醒", "trigger": {"type": "event", "event": "leads.lead_created"},
        "conditions": 'source == "website"',
        "actions": [{"type": "notify", "to": ["owner"], "title": "新线索 {{ lead.name }}"}]}


def envelope(event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "version": 1,
            "occurred_at": "2026-05-01T00:00:00+00:00", "producer": "gateway",
            "correlation_id": "c", "causation_id": None, "actor": None, "causation_depth": 0,
            "data": data}


@pytest.fixture
def rules(tmp_path, fake_rpc: FakeRpc, org: dict, app, monkeypatch) -> Any:
    url = f"sqlite:///{tmp_path}/rules.db"
    upgrade("rules", url)
    engine = get_engine(url)
    forget_cached_rules()
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock(controllable=False))

    def worker() -> RulesService:
        ctx = Context(correlation_id="c", actor=None)
        return service_worker(RulesService, engine, outbox, EVENT_SCHEMAS, ctx,
                              worker_ctx=SimpleNamespace(data={}))

    for method in RULES_METHODS:
        fake_rpc.on("rules", method,
                    lambda method=method, **kwargs: getattr(worker(), method)(**kwargs))
    from services.gateway.identity.models import Team, User

    with app.extensions["crm_gateway"].store.read() as session:
        users = [
            {"id": u.id, "username": u.username, "display_name": u.display_name,
             "email": u.email, "role": u.role, "team_id": u.team_id, "active": u.active}
            for u in session.query(User).all()
        ]
        teams = [{"id": t.id, "name": t.name, "manager_id": t.manager_id}
                 for t in session.query(Team).all()]
    for user in users:
        worker().on_any_event(envelope("user_changed", {"user": user}))
    for team in teams:
        worker().on_any_event(envelope("team_changed", {"team": team}))
    return SimpleNamespace(worker=worker, url=url)


def test_rule_management_is_for_admins_and_managers(client: FlaskClient, org: dict, rules):
    assert_problem(client.post("/rules", json=RULE, headers=auth(org, "zhangwei")), 403)
    created = client.post("/rules", json=RULE, headers=auth(org, "manager"))
    assert created.status_code == 201, created.get_data(as_text=True)
    rule = created.get_json()
    assert created.headers["Location"] == f"/rules/{rule['id']}"
    assert rule["version"] == 1 and rule["conditions"] == 'source == "website"'
    edited = client.put(f"/rules/{rule['id']}", json={**RULE, "conditions": ""},
                        headers=auth(org, "admin"))
    assert edited.get_json()["version"] == 2
    listed = client.get("/rules", headers=auth(org, "manager")).get_json()["items"]
    assert [r["id"] for r in listed] == [rule["id"]]
    assert client.post(f"/rules/{rule['id']}/disable",
                       headers=auth(org, "manager")).get_json()["enabled"] is False
    assert_problem(client.get("/rules/nope", headers=auth(org, "admin")), 404)


def test_a_shipped_rules_new_definition_is_offered_to_admins_and_adopted(
    client: FlaskClient, org: dict, rules
):
    import copy

    from services.rules import seed

    v1 = {**RULE, "key": "shipped-note", "name": "shipped note", "description": None}
    v2 = copy.deepcopy(v1)
    v2["actions"][0]["title"] = "新线索：{{ lead.name }}"
    seed.install(rules.url, [v1])
    assert_problem(client.post("/rules/shipped-note/adopt-shipped",
                               headers=auth(org, "admin")), 412)
    edited = client.put("/rules/shipped-note", json={**RULE, "name": "ours"},
                        headers=auth(org, "admin"))
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert seed.install(rules.url, [v2]) == {"shipped-note": "update_available"}

    read = client.get("/rules/shipped-note", headers=auth(org, "admin")).get_json()
    assert read["name"] == "ours" and read["shipped_update_available"] is True
    assert read["shipped_update"]["actions"][0]["title"] == "新线索：{{ lead.name }}"
    as_manager = client.get("/rules/shipped-note", headers=auth(org, "manager")).get_json()
    assert "shipped_update" not in as_manager and "shipped_update_available" not in as_manager
    for user in ("manager", "zhangwei"):
        assert_problem(client.post("/rules/shipped-note/adopt-shipped",
                                   headers=auth(org, user)), 403)
    assert_problem(client.post("/rules/nope/adopt-shipped", headers=auth(org, "admin")), 404)

    adopted = client.post("/rules/shipped-note/adopt-shipped", headers=auth(org, "admin"))
    assert adopted.status_code == 200, adopted.get_data(as_text=True)
    body = adopted.get_json()
    assert (body["version"], body["name"]) == (3, "shipped note")
    assert body["actions"][0]["title"] == "新线索：{{ lead.name }}"
    assert body["shipped_update_available"] is False


def test_bad_rules_are_422_naming_the_field_and_the_position(client: FlaskClient, org: dict,
                                                              rules):
    bad = client.post("/rules", json={**RULE, "conditions": "score >=> 3"},
                      headers=auth(org, "admin"))
    errors = assert_problem(bad, 422)["errors"]
    assert "line 1, column 9 (offset 8)" in errors["conditions"][0]  # the second ">"
    bad = client.post("/rules", json={**RULE, "actions": [{"type": "notify", "to": ["owner"],
                                                           "title": "{{ x "}]},
                      headers=auth(org, "admin"))
    assert "actions.0.title" in assert_problem(bad, 422)["errors"]
    unknown = client.post("/rules", json={**RULE, "colour": "red"}, headers=auth(org, "admin"))
    assert "colour" in assert_problem(unknown, 422)["errors"]


def test_tasks_are_visible_by_role(client: FlaskClient, org: dict, rules):
    for username in ("zhangwei", "lina", "chenjing"):
        made = client.post("/tasks", json={"title": f"回访 {username}",
                                           "assignee_id": org[username]["id"]},
                           headers=auth(org, username))
        assert made.status_code == 201, made.get_data(as_text=True)
    # a rep gives a task to a teammate (issue 13; it was refused), not outside the team
    handed = client.post("/tasks", json={"title": "交接 lina", "assignee_id": org["lina"]["id"]},
                         headers=auth(org, "zhangwei"))
    assert handed.status_code == 201 and handed.get_json()["assignee_id"] == org["lina"]["id"]
    outside = {"title": "x", "assignee_id": org["chenjing"]["id"]}
    for username in ("zhangwei", "manager"):
        problem = assert_problem(client.post("/tasks", json=outside,
                                             headers=auth(org, username)), 403)
        assert "team" in problem["detail"]
    assert client.post("/tasks", json=outside, headers=auth(org, "admin")).status_code == 201

    def titles(username: str, **params: str) -> set[str]:
        response = client.get("/tasks", query_string=params, headers=auth(org, username))
        return {t["title"] for t in response.get_json()["items"]}

    assert titles("zhangwei") == {"回访 zhangwei"}
    assert titles("lina") == {"回访 lina", "交接 lina"}
    assert titles("manager") == {"回访 zhangwei", "回访 lina", "交接 lina"}
    assert titles("manager", mine="true") == set()
    assert titles("admin") == {"回访 zhangwei", "回访 lina", "交接 lina", "回访 chenjing", "x"}
    assert "overdue" in assert_problem(client.get("/tasks", query_string={"overdue": "maybe"},
                                                  headers=auth(org, "admin")), 422)["errors"]


def test_member_settings_and_the_clock_are_guarded(client: FlaskClient, org: dict, rules):
    chenjing = org["chenjing"]["id"]
    assert_problem(client.put(f"/assignment/members/{chenjing}", json={"capacity": 5},
                              headers=auth(org, "manager")), 403)  # another team's member
    set_ = client.put(f"/assignment/members/{chenjing}", json={"capacity": 5},
                      headers=auth(org, "admin"))
    assert set_.status_code == 200 and set_.get_json()["capacity"] == 5
    bad = client.put(f"/assignment/members/{chenjing}", json={"capacity": -1},
                     headers=auth(org, "admin"))
    assert "capacity" in assert_problem(bad, 422)["errors"]
    assert_problem(client.post("/system/clock", json={"advance_seconds": 60},
                               headers=auth(org, "manager")), 403)
    # the service refuses unless CRM_CLOCK=controllable
    assert_problem(client.post("/system/clock", json={"advance_seconds": 60},
                               headers=auth(org, "admin")), 403)
    assert client.get("/system/clock", headers=auth(org, "zhangwei")).get_json()[
        "controllable"] is False


def test_webhook_secret_is_shown_once_and_urls_are_checked(client: FlaskClient, org: dict,
                                                          rules, monkeypatch):
    bad = client.post("/webhooks", json={"url": "ftp://x", "event_types": ["leads.*"]},
                      headers=auth(org, "admin"))
    assert "url" in assert_problem(bad, 422)["errors"]
    monkeypatch.delenv("CRM_WEBHOOK_ALLOW_NETWORKS", raising=False)
    monkeypatch.delenv("CRM_WEBHOOK_ALLOW_HOSTS", raising=False)
    internal = client.post("/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                              "event_types": ["leads.*"]},
                           headers=auth(org, "admin"))
    assert "loopback" in assert_problem(internal, 422)["errors"]["url"][0]
    monkeypatch.setenv("CRM_WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32")
    made = client.post("/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                          "event_types": ["leads.*"]},
                       headers=auth(org, "admin"))
    assert made.status_code == 201 and made.get_json()["secret"].startswith("whsec_")
    fetched = client.get(f"/webhooks/{made.get_json()['id']}", headers=auth(org, "admin"))
    assert "secret" not in fetched.get_json()


def test_the_openapi_document_describes_the_rules_endpoints(client: FlaskClient):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/rules", "/rules/{rule_id}/dry-run", "/rule-runs", "/tasks",
                 "/tasks/{task_id}/snooze", "/notifications", "/webhooks",
                 "/webhook-deliveries/{delivery_id}/replay", "/assignment/members/{user_id}",
                 "/system/clock", "/rules/{rule_id}/adopt-shipped"):
        assert path in paths, path
    post_rules = paths["/rules"]["post"]
    assert "requestBody" in post_rules and "201" in post_rules["responses"]


def test_a_task_is_only_about_a_record_the_caller_sees(client: FlaskClient, org: dict,
                                                       fake_rpc: FakeRpc, rules):
    from shared.errors import NotFound

    seen: list[dict] = []

    def get_lead(lead_id: str, scope: dict) -> dict:
        seen.append(scope)
        if lead_id != "lead-mine":
            raise NotFound(f"lead {lead_id} not found")
        return {"id": lead_id, "owner_id": org["zhangwei"]["id"]}

    fake_rpc.on("leads", "get_lead", get_lead)
    task = {"title": "回访", "assignee_id": org["zhangwei"]["id"], "record_type": "lead"}
    mine = client.post("/tasks", json={**task, "record_id": "lead-mine"},
                       headers=auth(org, "zhangwei"))
    assert mine.status_code == 201 and mine.get_json()["record_id"] == "lead-mine"
    assert seen[-1]["owner_ids"] == [org["zhangwei"]["id"]]  # the caller's own view
    hidden = assert_problem(client.post("/tasks", json={**task, "record_id": "lead-hidden"},
                                        headers=auth(org, "zhangwei")), 422)
    assert hidden["errors"] == {"record_id": ["No such lead."]}
    untyped = {"title": "x", "assignee_id": org["zhangwei"]["id"], "record_id": "lead-mine"}
    problem = assert_problem(client.post("/tasks", json=untyped,
                                         headers=auth(org, "zhangwei")), 422)
    assert "record_type" in problem["errors"]


def test_recent_events_for_dry_runs_are_for_admins(client: FlaskClient, org: dict, rules):
    created = envelope("lead_created", {"lead": {"id": "lead-1", "name": "王芳"}})
    rules.worker().on_any_event({**created, "producer": "leads"})
    url = "/rule-events?event=leads.lead_created&event=sales.*&limit=5"
    for user in ("manager", "zhangwei"):
        assert_problem(client.get(url, headers=auth(org, user)), 403)
    answer = client.get(url, headers=auth(org, "admin"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    items = answer.get_json()["items"]
    assert [(i["event_id"], i["event_name"], i["record_key"]) for i in items] == [
        (created["event_id"], "leads.lead_created", "lead:lead-1")]
    bad = client.get("/rule-events?event=x%20y&limit=500", headers=auth(org, "admin"))
    assert set(assert_problem(bad, 422)["errors"]) == {"event", "limit"}
    unknown = client.get("/rule-events?colour=red", headers=auth(org, "admin"))
    assert "colour" in assert_problem(unknown, 422)["errors"]
    dry = client.post("/rules/dry-run", headers=auth(org, "admin"), json={
        "definition": RULE, "event_id": items[0]["event_id"]})
    assert dry.status_code == 200 and dry.get_json()["trigger"]["matches"] is True
