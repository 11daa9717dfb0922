"""The console in headless Chromium against the whole system: a rep's day from a new lead to a
moved opportunity, the manager's view of the team, and a rep of another team who sees nothing.
Screenshots of every main screen go to var/test-artefacts/console/.

The rep's other team-mates are out of office for the rep's test, so that the shipped
round-robin rule gives the new website lead to the rep (and nobody else).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.e2e.console.browser import ARTEFACTS, PASSWORD, run_scenario
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, REP_NAME, OTHER_TEAM_REP = "zhangwei", "张伟", "chenjing"
FAR_FUTURE = "2099-01-01T00:00:00+00:00"
STAGE_PROPOSAL = "方案报价"


def _ok(response: Any) -> Any:
    assert response.status_code < 300, (response.status_code, response.text[:500])
    return response.json()


@pytest.fixture(scope="module")
def story(system: System, chromium: str) -> Iterator[dict[str, Any]]:
    """The rep's flow, run once; the other tests look at its records from other seats."""
    tag = secrets.token_hex(3)
    params = {
        "url": system.url, "artefacts": str(ARTEFACTS), "rep": REP, "rep_display_name": REP_NAME,
        "name": f"控制台{tag}", "company": f"苏州控制台{tag}机械有限公司",
        "phone": f"139{secrets.randbelow(10**8):08d}",
    }
    team_id = _ok(system.get("/me", user=REP))["team_id"]
    team = next(t for t in _ok(system.get("/teams", user="admin"))["items"] if t["id"] == team_id)
    mates = [uid for uid in [*team["member_ids"], team["manager_id"]]
             if uid and uid != system.users[REP]]
    # The rep takes new leads (whatever an earlier test left); the team-mates do not.
    _ok(system.put(f"/assignment/members/{system.users[REP]}", user="admin",
                   json={"out_of_office_until": None, "capacity": None}))
    for uid in mates:
        _ok(system.put(f"/assignment/members/{uid}", user="admin",
                       json={"out_of_office_until": FAR_FUTURE}))
    try:
        result = run_scenario("rep_flow", params)
    finally:
        for uid in mates:
            system.put(f"/assignment/members/{uid}", user="admin",
                       json={"out_of_office_until": None})
    yield {**params, **result}


def test_rep_captures_converts_and_moves_through_the_refusal(system: System, story: dict) -> None:
    # What the browser did is what the API now says.
    leads = _ok(system.get("/leads", user=REP, params={"q": story["name"]}))["items"]
    assert [(lead["owner_id"], lead["status"]) for lead in leads] == [
        (system.users[REP], "converted")]
    opportunities = _ok(system.get("/opportunities", user=REP,
                                   params={"customer_id": story["customer_id"]}))["items"]
    assert len(opportunities) == 1
    opportunity = opportunities[0]
    assert opportunity["amount"] == "380000.00"
    assert opportunity["expected_close_date"] == "2027-03-31"
    stages = {s["id"]: s["name"] for p in _ok(system.get("/pipelines", user=REP))["items"]
              for s in p["stages"]}
    assert stages[opportunity["stage_id"]].startswith(STAGE_PROPOSAL)
    followups = _ok(system.get("/followups", user=REP,
                               params={"opportunity_id": opportunity["id"]}))["items"]
    assert [(f["kind"], f["tags"], f["key_points"].get("pain_points")) for f in followups] == [
        ("meeting", ["needs_analysis"], ["排产靠人工", "库存不准"])]
    assert story["proposal_after"] == story["proposal_before"] + 1
    for shot in ("01-leads", "03-lead-assigned", "07-board-refusal-412", "08-board-moved",
                 "09-dashboard-drilldown"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0


def test_manager_sees_the_team(system: System, story: dict) -> None:
    run_scenario("manager_view", story)


def test_rep_of_another_team_sees_none_of_it(system: System, story: dict) -> None:
    # The premise, over the API: the other rep is refused the customer.
    assert system.get(f"/customers/{story['customer_id']}", user=OTHER_TEAM_REP).status_code == 404
    run_scenario("other_team_rep", {**story, "rep": OTHER_TEAM_REP})


def test_phone_width(system: System, chromium: str) -> None:
    result = run_scenario("phone_screens", {"url": system.url, "artefacts": str(ARTEFACTS),
                                            "rep": REP})
    assert result["scroll_width"] <= 391


def test_an_outage_is_a_retry_later_message(system: System, chromium: str) -> None:
    with system.broker_unavailable():
        assert system.get("/leads", user=REP).status_code == 503  # the premise
        result = run_scenario("outage", {"url": system.url, "artefacts": str(ARTEFACTS),
                                         "rep": REP})
    assert "秒后重试" in result["alert"]


def test_claim_and_release_in_the_public_pool(system: System, chromium: str) -> None:
    name = f"公海{secrets.token_hex(3)}"
    lead = _ok(system.post("/leads", user="admin", json={
        "name": name, "company": f"{name}有限公司", "source": "trade_show", "region": "华东",
        "phone": f"137{secrets.randbelow(10**8):08d}"}))
    assert lead["in_pool"] is True  # the premise: a trade-show lead waits in the pool
    result = run_scenario("public_pool", {"url": system.url, "artefacts": str(ARTEFACTS),
                                          "rep": REP, "rep_display_name": REP_NAME,
                                          "name": name})
    after = _ok(system.get(f"/leads/{lead['id']}", user=REP))
    assert (after["owner_id"], after["in_pool"]) == (None, True)
    kinds = [entry["kind"] for entry in after["history"]]
    assert "claimed" in kinds or "assigned" in kinds, kinds
    assert "released" in kinds, kinds
    print(f"console first screen (reload to the lead table): {result['first_screen_ms']} ms")



def _every(system: System, path: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list, as the admin sees it."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        page = _ok(system.get(path, user="admin", params=params))
        items.extend(page["items"])
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


def test_admin_sets_up_a_team_a_user_and_a_rule(system: System, chromium: str) -> None:
    tag = secrets.token_hex(3)
    params = {"url": system.url, "artefacts": str(ARTEFACTS), "team": f"控制台团队{tag}",
              "username": f"console_{tag}", "display_name": f"新人{tag}",
              "password": PASSWORD, "rule": f"控制台规则{tag}"}
    run_scenario("admin_setup", params)
    # What the browser did is what the API now says.
    [team] = [t for t in _every(system, "/teams") if t["name"] == params["team"]]
    assert team["manager_id"] == system.users["manager"]
    [user] = [u for u in _every(system, "/users") if u["username"] == params["username"]]
    assert (user["display_name"], user["email"], user["role"], user["team_id"], user["active"]) == (
        params["display_name"], f"{params['username']}@example.com", "sales_rep", team["id"], True)
    assert user["id"] in team["member_ids"]
    rules = [r for r in _ok(system.get("/rules", user="admin"))["items"]
             if r["name"] == params["rule"]]
    assert [(r["enabled"], r["trigger"], r["conditions"]) for r in rules] == [
        (False, {"type": "event", "event": "leads.lead_created"},
         'source == "website" and score >= 1000')]
    assert rules[0]["actions"] == [{"type": "create_task", "title": "跟进 {{ lead.name }}",
                                    "assignee": "owner", "due_in": "24h"}]


def test_a_user_changes_their_password_and_makes_an_api_key(system: System, chromium: str) -> None:
    tag = secrets.token_hex(3)
    username, new_password = f"account_{tag}", f"new-{tag}-password"
    _ok(system.post("/users", user="admin", json={
        "username": username, "display_name": f"账户{tag}", "password": PASSWORD,
        "role": "sales_rep"}))
    params = {"url": system.url, "artefacts": str(ARTEFACTS), "username": username,
              "password": PASSWORD, "new_password": new_password, "key_name": f"ERP {tag}"}
    key = run_scenario("own_account", params)["key"]
    # What the browser did is what the API now says: the new password signs in, the old one
    # does not, and the key shown once is the user's.
    signed = system.post("/auth/tokens", json={"username": username, "password": new_password})
    assert signed.status_code == 201, signed.text
    refused = system.post("/auth/tokens", json={"username": username, "password": PASSWORD})
    assert refused.status_code == 401, refused.text
    me = system.get("/me", key=key)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username


def test_an_approver_approves_from_a_phone(system: System, chromium: str) -> None:
    """A flow with one 或签 step (manager or lina), defined over HTTP by the admin; a record
    submitted over RPC by its service; the manager approves it at 375 px with a comment."""
    tag = secrets.token_hex(3)
    users = system.users
    record_type, record_id, flow_name = f"console_po_{tag}", f"PO-{tag}", f"控制台采购{tag}"
    flow = system.post("/approval-flows", user="admin", json={
        "record_type": record_type, "name": flow_name,
        "steps": [{"name": "主管或签", "mode": "any", "approvers": [
            {"kind": "user", "id": users["manager"]}, {"kind": "user", "id": users["lina"]}]}]})
    assert flow.status_code == 201, flow.text
    supplier = f"苏州精工{tag}"
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
        instance = rpc.contracts.submit_for_approval(
            data={"record_type": record_type, "record_id": record_id,
                  "terms": {"amount": "12800.00", "supplier": supplier}},
            submitter=users["zhangwei"])
    comment = f"价格合理，同意 {tag}"
    result = run_scenario("phone_approval", {
        "url": system.url, "artefacts": str(ARTEFACTS), "approver": "manager",
        "approval_id": instance["id"], "record_id": record_id, "flow_name": flow_name,
        "supplier": supplier, "comment": comment})
    assert result["scroll_width"] <= 376
    # What the browser did is what the API now says.
    seen = _ok(system.get(f"/approvals/{instance['id']}", user="zhangwei"))
    assert seen["status"] == "approved" and seen["pending_approvers"] == []
    assert [(t["actor"], t["action"], t["comment"], t["terms_hash"]) for t in seen["trail"]] == [
        (users["zhangwei"], "submitted", None, instance["terms_hash"]),
        (users["manager"], "approve", comment, instance["terms_hash"]),
        (None, "approved", None, instance["terms_hash"])]
    lina_inbox = _ok(system.get("/approvals", user="lina"))["items"]
    assert instance["id"] not in [item["id"] for item in lina_inbox]
    for shot in ("80-phone-approvals-inbox", "81-phone-approval-detail",
                 "82-phone-approval-approved"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0, shot
