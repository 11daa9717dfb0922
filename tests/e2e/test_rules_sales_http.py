"""A rule that moves opportunities goes through the sales service's checks like any caller: a
move the pipeline's exit criteria refuse fails the rule's action and the run lists what is
missing; an allowed move changes the stage and its history. The whole system, over HTTP."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def stage_ids(system) -> dict[str, str]:
    default = next(p for p in system.get("/pipelines", user="admin").json()["items"]
                   if p["is_default"])
    return {s["name"].split()[-1].lower(): s["id"] for s in default["stages"]}


def opportunity_runs(system, rule_id: str, opportunity_id: str) -> list[dict]:
    response = system.get("/rule-runs", user="admin", params={
        "rule_id": rule_id, "record_key": f"opportunity:{opportunity_id}"})
    assert response.status_code == 200, response.text
    return [run for run in response.json()["items"] if run["status"] != "running"]


def test_a_rule_moves_opportunities_only_as_the_pipeline_allows(system):
    t = uuid.uuid4().hex[:8]
    needs = stage_ids(system)["analysis"]  # 需求分析 Needs analysis
    rule = system.post("/rules", user="admin", json={
        "name": f"自动推进{t}", "trigger": {"type": "event", "event": "sales.opportunity_created"},
        "conditions": f'source == "auto-{t}"',
        "actions": [{"type": "call", "service": "sales", "method": "move_opportunity",
                     "args": {"stage_id": needs}}]})
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    try:
        customer = system.post("/customers", user="zhangwei",
                               json={"name": f"常州{t}智能装备有限公司"}).json()
        bare = system.post("/opportunities", user="zhangwei", json={
            "customer_id": customer["id"], "name": f"产线改造{t}", "source": f"auto-{t}"})
        assert bare.status_code == 201, bare.text

        run = system.wait_for(lambda: opportunity_runs(system, rule_id, bare.json()["id"]),
                              timeout=20, message="the rule never ran")[0]
        assert run["status"] == "failed"
        outcome = run["actions"][0]
        assert outcome["status"] == "failed" and "PreconditionFailed" in outcome["error"]
        assert {m.get("field") for m in outcome["details"]["missing"]} == {"contact_id"}
        opportunity = system.get(f"/opportunities/{bare.json()['id']}", user="zhangwei").json()
        assert opportunity["stage_id"] != needs and len(opportunity["history"]) == 1

        contact = system.post("/contacts", user="zhangwei", json={
            "customer_id": customer["id"], "name": "周强", "role": "decision_maker"}).json()
        ready = system.post("/opportunities", user="zhangwei", json={
            "customer_id": customer["id"], "contact_id": contact["id"],
            "name": f"仓储升级{t}", "source": f"auto-{t}"})
        assert ready.status_code == 201, ready.text
        run = system.wait_for(lambda: opportunity_runs(system, rule_id, ready.json()["id"]),
                              timeout=20, message="the rule never ran")[0]
        assert run["status"] == "completed", run
        moved = system.get(f"/opportunities/{ready.json()['id']}", user="zhangwei").json()
        assert moved["stage_id"] == needs
        assert [h["stage_id"] for h in moved["history"]][-1] == needs
    finally:
        system.post(f"/rules/{rule_id}/disable", user="admin")
