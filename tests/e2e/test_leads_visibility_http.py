"""Row-level visibility of leads over HTTP, the whole system running (issue 13).

Demo organisation: zhangwei and lina are reps of the manager's team (华东), chenjing a rep of
another team (华南), admin sees everything. A lead the caller cannot see answers exactly as a
missing one; a duplicate the caller cannot see is only said to exist.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.test_leads_http import assert_problem, unique_lead

pytestmark = pytest.mark.e2e

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def lead_owned_by(system, username: str | None, **overrides) -> dict:
    """A pool lead (referral: no shipped rule assigns it), given to `username` by the admin."""
    created = system.post("/leads", user="admin", json=unique_lead(**overrides))
    assert created.status_code == 201, created.text
    lead = created.json()
    if username is None:
        return lead
    assigned = system.post(f"/leads/{lead['id']}/assign", user="admin",
                           json={"owner_id": system.users[username]})
    assert assigned.status_code == 200, assigned.text
    return assigned.json()


def duplicate_of(lead: dict, **overrides) -> dict:
    """A capture with the lead's phone and nothing else of it."""
    tag = uuid.uuid4().hex[:8]
    return {"name": "冒充者", "phone": lead["phone"], "email": f"x{tag}@elsewhere.cn",
            "company": f"写入{tag}公司", "source": "web",
            "attributes": {f"budget{tag}": "100万"}, **overrides}


def assert_reveals_nothing(response, lead: dict) -> None:
    for secret in (lead["id"], lead["name"], lead["email"], lead["phone"], lead["company"],
                   lead["attributes"]["wechat"]):
        assert secret not in response.text, (secret, response.text)


def comparable(response, lead_id: str) -> dict:
    """The problem body without what names the request (path, correlation id)."""
    body = json.loads(response.text.replace(lead_id, MISSING_ID))
    body.pop("correlation_id", None)
    return body


@pytest.mark.parametrize("username", ["chenjing", "lina"])
def test_a_hidden_duplicate_is_only_said_to_exist(system, username):
    hidden = lead_owned_by(system, "zhangwei")
    for on_duplicate in ("reject", "merge"):
        response = system.post("/leads", user=username, params={"on_duplicate": on_duplicate},
                               json=duplicate_of(hidden))
        body = assert_problem(response, 409)
        assert body["existing_id"] is None and body["matches"] == []
        assert_reveals_nothing(response, hidden)
    stored = system.get(f"/leads/{hidden['id']}", user="admin").json()
    assert stored["attributes"] == hidden["attributes"] and stored["company"] == hidden["company"]
    assert "merged" not in [entry["kind"] for entry in stored["history"]]

    # Who may edit it merges as before: its owner, their manager, the admin.
    for editor in ("zhangwei", "manager", "admin"):
        merged = system.post("/leads", user=editor, params={"on_duplicate": "merge"},
                             json=duplicate_of(hidden))
        assert merged.status_code == 200, merged.text
        assert merged.json()["id"] == hidden["id"]


def test_a_rep_claims_a_pool_lead_before_merging_into_it(system):
    pool = lead_owned_by(system, None)
    refused = assert_problem(system.post("/leads", user="zhangwei", json=duplicate_of(pool)),
                             409)
    assert refused["existing_id"] == pool["id"], "a pool lead is visible: named as today"
    assert [match["lead_id"] for match in refused["matches"]] == [pool["id"]]
    not_merged = assert_problem(system.post("/leads", user="zhangwei",
                                            params={"on_duplicate": "merge"},
                                            json=duplicate_of(pool)), 409)
    assert not_merged["existing_id"] == pool["id"]
    assert system.get(f"/leads/{pool['id']}", user="admin").json()["attributes"] == (
        pool["attributes"])
    source = lead_owned_by(system, "zhangwei")
    assert_problem(system.post(f"/leads/{source['id']}/merge", user="zhangwei",
                               json={"source_id": pool["id"]}), 403)

    by_manager = system.post("/leads", user="manager", params={"on_duplicate": "merge"},
                             json=duplicate_of(pool))
    assert by_manager.status_code == 200 and by_manager.json()["id"] == pool["id"]
    assert system.post(f"/leads/{pool['id']}/claim", user="zhangwei").status_code == 200
    mine = system.post("/leads", user="zhangwei", params={"on_duplicate": "merge"},
                       json=duplicate_of(pool))
    assert mine.status_code == 200 and mine.json()["id"] == pool["id"]


@pytest.mark.parametrize(("username", "owner"),
                         [("lina", "zhangwei"), ("chenjing", "zhangwei"),
                          ("manager", "chenjing")])
def test_every_operation_on_a_hidden_lead_answers_as_on_a_missing_one(system, username, owner):
    hidden = lead_owned_by(system, owner)
    own = lead_owned_by(system, username)
    assignee = system.users["lina"]
    operations = {
        "get": ("GET", "/leads/{id}", None),
        "behaviour": ("POST", "/leads/{id}/behaviours", {"type": "requested_demo"}),
        # "new" -> "new" is a 412 on a lead the caller can see
        "status": ("POST", "/leads/{id}/status", {"status": "new"}),
        "claim": ("POST", "/leads/{id}/claim", None),
        "release": ("POST", "/leads/{id}/release", {"reason": "不要了"}),
        "assign": ("POST", "/leads/{id}/assign", {"owner_id": assignee}),
        "merge into": ("POST", "/leads/{id}/merge", {"source_id": own["id"]}),
        "merge from": ("POST", f"/leads/{own['id']}/merge", {"source_id": "{id}"}),
    }
    for name, (method, path, body) in operations.items():
        answers = {}
        for lead_id in (hidden["id"], MISSING_ID):
            payload = json.loads(json.dumps(body).replace("{id}", lead_id)) if body else None
            answers[lead_id] = system.request(method, path.replace("{id}", lead_id),
                                              user=username, json=payload)
        missing = answers[MISSING_ID]
        expected = 403 if name == "assign" and username != "manager" else 404
        assert_problem(missing, expected)
        assert answers[hidden["id"]].status_code == expected, (name, answers[hidden["id"]].text)
        assert comparable(answers[hidden["id"]], hidden["id"]) == comparable(missing,
                                                                             MISSING_ID), name
    stored = system.get(f"/leads/{hidden['id']}", user="admin").json()
    assert stored["owner_id"] == system.users[owner] and stored["status"] == "new"
    assert stored["behaviours"] == [] and stored["merged_into_id"] is None


def test_claim_answers_name_the_right_owner(system):
    lead = lead_owned_by(system, "zhangwei")
    mine = assert_problem(system.post(f"/leads/{lead['id']}/claim", user="zhangwei"), 412)
    assert mine["detail"] == "you already own this lead"
    managed = assert_problem(system.post(f"/leads/{lead['id']}/claim", user="manager"), 412)
    assert system.users["zhangwei"] in managed["detail"]
    assert system.users["manager"] not in managed["detail"]
    hidden = assert_problem(system.post(f"/leads/{lead['id']}/claim", user="lina"), 404)
    assert system.users["zhangwei"] not in json.dumps(hidden)


def test_assignment_needs_a_visible_lead_and_an_active_assignee_within_reach(system):
    south = lead_owned_by(system, "chenjing")
    east = lead_owned_by(system, "zhangwei")
    assert_problem(system.post(f"/leads/{south['id']}/assign", user="manager",
                               json={"owner_id": system.users["lina"]}), 404)
    assert_problem(system.post(f"/leads/{east['id']}/assign", user="manager",
                               json={"owner_id": system.users["chenjing"]}), 403)

    team_id = system.get(f"/users/{system.users['lina']}", user="admin").json()["team_id"]
    created = system.post("/users", user="admin", json={
        "username": f"gone{uuid.uuid4().hex[:8]}", "display_name": "离职员工",
        "role": "sales_rep", "team_id": team_id})
    assert created.status_code == 201, created.text
    gone = created.json()["id"]
    assert system.patch(f"/users/{gone}", user="admin", json={"active": False}).status_code == 200
    for assigner in ("manager", "admin"):
        body = assert_problem(system.post(f"/leads/{east['id']}/assign", user=assigner,
                                          json={"owner_id": gone}), 422)
        assert "owner_id" in body["errors"]
    assert system.get(f"/leads/{south['id']}", user="admin").json()["owner_id"] == (
        system.users["chenjing"])
    assert system.get(f"/leads/{east['id']}", user="admin").json()["owner_id"] == (
        system.users["zhangwei"])
    moved = system.post(f"/leads/{east['id']}/assign", user="manager",
                        json={"owner_id": system.users["lina"]})
    assert moved.status_code == 200 and moved.json()["owner_id"] == system.users["lina"]
