"""The rules service end to end over HTTP, with the whole system running: website leads are
assigned with a task and an email in a real mailbox, webhooks are signed and retried, and the
time-based rules (72 hours, the public pool's 7 and 30 days) are proven with the controllable
clock instead of real hours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.rules.notify import verify
from tests.e2e.system import ROOT, System

pytestmark = pytest.mark.e2e

DAY = 86400
FAR_FUTURE = "2099-01-01T00:00:00+00:00"
DEMO_REPS = ("zhangwei", "lina", "chenjing")


@pytest.fixture(scope="module")
def rules_ready(system: System) -> Iterator[System]:
    """The shipped rules installed (what `make run` does) and the directory projected. After
    the module the rules are as they were before it (the rules it created are disabled)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env["CRM_DATA_DIR"] = str(system.data_dir)
    subprocess.run([sys.executable, "-m", "services.rules.seed"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    enabled_before = {rule["id"] for rule in system.get("/rules", user="admin").json()["items"]
                      if rule["enabled"]}
    for name in DEMO_REPS:
        system.wait_for(
            lambda name=name: system.get(f"/assignment/members/{system.users[name]}",
                                         user="admin").status_code == 200,
            timeout=20, message=f"{name} never reached the rules service's directory")
    # The rotation of the sales teams is the demo reps' during this module: a rep an earlier
    # test added to a team (sharing this system) is out of office until the module ends.
    demo = {system.users[name] for name in DEMO_REPS}
    teams = system.get("/teams", user="admin", params={"limit": 200}).json()["items"]
    others = {uid for team in teams if demo & set(team["member_ids"])
              for uid in team["member_ids"] if uid not in demo
              and system.get(f"/users/{uid}", user="admin").json()["active"]}
    for uid in others:
        assert system.put(f"/assignment/members/{uid}", user="admin",
                          json={"out_of_office_until": FAR_FUTURE}).status_code == 200
    yield system
    for uid in others:
        system.put(f"/assignment/members/{uid}", user="admin", json={"out_of_office_until": None})
    for rule in system.get("/rules", user="admin").json()["items"]:
        if rule["id"] in enabled_before and not rule["enabled"]:
            system.post(f"/rules/{rule['id']}/enable", user="admin")
        elif rule["id"] not in enabled_before and rule["enabled"]:
            system.post(f"/rules/{rule['id']}/disable", user="admin")


def new_lead(system: System, source: str = "website", region: str = "华东",
             user: str = "admin") -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    response = system.post("/leads", user=user, json={
        "name": f"测试{tag}", "company": f"无锡{tag}精密机械有限公司",
        "email": f"{tag}@example.cn", "source": source, "region": region})
    assert response.status_code == 201, response.text
    return response.json()


def lead_of(system: System, lead_id: str) -> dict[str, Any]:
    return system.get(f"/leads/{lead_id}", user="admin").json()


def username_of(system: System, user_id: str) -> str:
    """The owner's username; an owner who is not a demo user (one an earlier test added to a
    team of this shared system) gets an API key, so that the test can act as them."""
    known = next((name for name, uid in system.users.items() if uid == user_id), None)
    if known is not None:
        return known
    user = system.get(f"/users/{user_id}", user="admin").json()
    key = system.post("/api-keys", user="admin", json={"name": "e2e", "user_id": user_id})
    assert key.status_code == 201, key.text
    system.keys[user["username"]] = key.json()["key"]
    system.users[user["username"]] = user_id
    return user["username"]


def email_of(system: System, username: str) -> str:
    return system.get(f"/users/{system.users[username]}", user="admin").json()["email"] or "-"


def advance(system: System, seconds: float) -> None:
    response = system.post("/system/clock", user="admin", json={"advance_seconds": seconds})
    assert response.status_code == 200, response.text


def runs(system: System, rule_id: str, record_id: str) -> list[dict[str, Any]]:
    response = system.get("/rule-runs", user="admin",
                          params={"rule_id": rule_id, "record_key": f"lead:{record_id}"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def tasks_of(system: System, user: str) -> list[dict[str, Any]]:
    return system.get("/tasks", user=user, params={"mine": "true", "limit": 200}).json()["items"]


def inbox_of(system: System, user: str) -> list[dict[str, Any]]:
    return system.get("/notifications", user=user, params={"limit": 200}).json()["items"]


def test_a_website_lead_is_assigned_with_a_call_now_task_and_an_email(rules_ready, mailbox):
    system = rules_ready
    lead = new_lead(system)
    owner_id = system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"], timeout=30,
                               message="the website lead was not assigned")
    owner = username_of(system, owner_id)
    assert owner in ("zhangwei", "lina")  # 华东 -> 华东销售部
    task = system.wait_for(lambda: next((t for t in tasks_of(system, owner)
                                         if t["record_id"] == lead["id"]), None), timeout=30)
    assert task["title"].startswith(f"立即致电：{lead['name']}")
    assert task["priority"] == "high" and task["due_at"]
    mailbox.wait_for(lambda m: f"{owner}@demo.crm.local" in str(m["To"])
                     and lead["name"] in str(m["Subject"]), timeout=30)
    assert any(n["record_id"] == lead["id"] for n in inbox_of(system, owner))

    run = runs(system, "website-lead-call-now", lead["id"])[0]
    assert run["status"] == "completed" and run["rule_version"] == 1
    assert [a["status"] for a in run["actions"]] == ["ok", "ok", "ok"]
    assert run["event_type"] == "leads.lead_created"
    # the correlation id of the HTTP request that started it all
    assert run["correlation_id"]
    # a south lead goes to the south team
    south = new_lead(system, region="华南")
    assert system.wait_for(lambda: lead_of(system, south["id"])["owner_id"], timeout=30) == \
        system.users["chenjing"]


def test_tasks_can_be_completed_and_are_private(rules_ready):
    system = rules_ready
    lead = new_lead(system)
    owner_id = system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"], timeout=30)
    owner = username_of(system, owner_id)
    other = "lina" if owner == "zhangwei" else "zhangwei"
    task = system.wait_for(lambda: next((t for t in tasks_of(system, owner)
                                         if t["record_id"] == lead["id"]), None), timeout=30)
    assert system.post(f"/tasks/{task['id']}/complete", user=other).status_code == 404
    done = system.post(f"/tasks/{task['id']}/complete", user=owner)
    assert done.status_code == 200 and done.json()["status"] == "done"
    bad = system.post(f"/tasks/{task['id']}/snooze", user=owner, json={"until": "tomorrow"})
    assert bad.status_code == 422 and "until" in bad.json()["errors"]


def test_webhooks_are_signed_retried_and_a_410_disables(rules_ready, webhook_receiver):
    system = rules_ready
    created = system.post("/webhooks", user="admin", json={
        "url": webhook_receiver.url, "event_types": ["leads.lead_created"]})
    assert created.status_code == 201, created.text
    sub = created.json()
    webhook_receiver.responses = [503, 200]
    lead = new_lead(system, source="trade_show")
    webhook_receiver.wait_for_count(1, timeout=30)
    advance(system, 3600)  # the retry is due within the hour
    requests_ = webhook_receiver.wait_for_count(2, timeout=30)
    for request in requests_:
        verify(sub["secret"], request.headers, request.body)
    body = json.loads(requests_[-1].body)
    assert body["type"] == "leads.lead_created" and body["data"]["lead"]["id"] == lead["id"]
    deliveries = system.get(f"/webhooks/{sub['id']}/deliveries", user="admin").json()["items"]
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] == 2

    webhook_receiver.responses = [410]
    new_lead(system, source="trade_show")
    system.wait_for(lambda: not system.get(f"/webhooks/{sub['id']}", user="admin").json()[
        "active"], timeout=30, message="a 410 did not disable the subscription")
    failed = system.get(f"/webhooks/{sub['id']}/deliveries", user="admin",
                        params={"status": "failed"}).json()["items"]
    assert len(failed) == 1
    replay = system.post(f"/webhook-deliveries/{failed[0]['id']}/replay", user="admin")
    assert replay.status_code == 409
    assert system.patch(f"/webhooks/{sub['id']}", user="admin",
                        json={"active": True}).status_code == 200
    assert system.post(f"/webhook-deliveries/{failed[0]['id']}/replay",
                       user="admin").status_code == 200
    replayed = webhook_receiver.wait_for_count(4, timeout=30)[-1]
    assert replayed.headers["webhook-id"] == failed[0]["id"]
    assert system.post("/webhooks", user="zhangwei", json={
        "url": webhook_receiver.url, "event_types": ["leads.*"]}).status_code == 403


def test_the_72_hour_rule_with_the_controllable_clock(rules_ready, mailbox):
    system = rules_ready
    lead = new_lead(system)
    owner_id = system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"], timeout=30)
    owner = username_of(system, owner_id)
    advance(system, 72 * 3600 + 10)
    task = system.wait_for(lambda: next((t for t in tasks_of(system, owner)
                                         if t["title"] == f"72 小时未处理：{lead['name']}"),
                                        None), timeout=30, message="no 72-hour task")
    assert task["record_id"] == lead["id"]
    message = mailbox.wait_for(lambda m: "72 小时" in str(m["Subject"])
                               and lead["name"] in str(m["Subject"]), timeout=30)
    assert email_of(system, owner) in str(message["To"])
    assert "manager@demo.crm.local" in str(message["To"])
    assert [r["status"] for r in runs(system, "lead-untreated-72h", lead["id"])] == [
        "completed"]
    overdue = system.get("/tasks", user=owner, params={"overdue": "true"}).json()["items"]
    assert any(t["title"].startswith(f"立即致电：{lead['name']}") for t in overdue)


def test_a_contacted_lead_is_not_reminded_after_72_hours(rules_ready):
    system = rules_ready
    lead = new_lead(system)
    owner_id = system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"], timeout=30)
    owner = username_of(system, owner_id)
    assert system.post(f"/leads/{lead['id']}/status", user=owner,
                       json={"status": "contacted"}).status_code == 200
    time.sleep(1.0)  # the status change reaches the rules service
    advance(system, 73 * 3600)
    time.sleep(1.5)  # several ticks
    assert runs(system, "lead-untreated-72h", lead["id"]) == []


def test_pool_recycling_after_seven_days_with_a_warning(rules_ready):
    system = rules_ready
    lead = new_lead(system, source="trade_show")
    assert system.post(f"/leads/{lead['id']}/claim", user="zhangwei").status_code == 200
    time.sleep(1.0)  # the claim reaches the rules service and starts the seven days
    advance(system, 4 * DAY + 10)
    system.wait_for(lambda: any(n["title"] == f"3 天后退回公海：{lead['name']}"
                                for n in inbox_of(system, "zhangwei")), timeout=30,
                    message="no warning three days before")
    assert lead_of(system, lead["id"])["owner_id"] == system.users["zhangwei"]
    advance(system, 3 * DAY)
    system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"] is None, timeout=30,
                    message="the lead did not return to the pool")
    system.wait_for(lambda: any(n["title"] == f"线索已退回公海：{lead['name']}"
                                for n in inbox_of(system, "manager")), timeout=30)
    history = lead_of(system, lead["id"])["history"]
    assert any(h["kind"] == "released" for h in history)


def test_an_assigned_lead_nobody_works_returns_after_30_days(rules_ready):
    system = rules_ready
    lead = new_lead(system, source="trade_show")
    assert system.post(f"/leads/{lead['id']}/assign", user="admin",
                       json={"owner_id": system.users["lina"]}).status_code == 200
    time.sleep(1.0)
    advance(system, 27 * DAY + 10)
    system.wait_for(lambda: any(n["title"] == f"3 天后退回公海：{lead['name']}"
                                for n in inbox_of(system, "lina")), timeout=30)
    advance(system, 3 * DAY)
    system.wait_for(lambda: lead_of(system, lead["id"])["owner_id"] is None, timeout=30,
                    message="the lead did not return to the pool after 30 days")
    system.wait_for(lambda: [r["status"] for r in runs(system, "pool-unworked-30d", lead["id"])]
                    == ["completed"], timeout=30)


def test_rules_are_versioned_dry_run_and_bad_conditions_are_named(rules_ready):
    system = rules_ready
    bad = system.post("/rules", user="admin", json={
        "name": "bad", "trigger": {"type": "event", "event": "leads.lead_created"},
        "conditions": 'source == "website" and', "actions": [
            {"type": "notify", "to": ["owner"], "title": "x"}]})
    assert bad.status_code == 422
    assert "line 1, column" in bad.json()["errors"]["conditions"][0]
    valid = {"name": "rep rule", "trigger": {"type": "event", "event": "leads.lead_created"},
             "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]}
    assert system.post("/rules", user="zhangwei", json=valid).status_code == 403

    created = system.post("/rules", user="manager", json={
        "name": "高分线索提醒经理", "trigger": {"type": "event", "event": "leads.lead_created"},
        "conditions": "score >= 1000",
        "actions": [{"type": "notify", "to": ["role:manager"], "channels": ["in_app"],
                     "title": "高分线索：{{ lead.name }}"}]})
    assert created.status_code == 201, created.text
    rule = created.json()
    first = new_lead(system, source="trade_show")
    system.wait_for(lambda: runs(system, rule["id"], first["id"]), timeout=30)
    edited = system.put(f"/rules/{rule['id']}", user="manager", json={
        "name": rule["name"], "trigger": rule["trigger"], "conditions": "score >= 0",
        "actions": rule["actions"]})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    second = new_lead(system, source="trade_show")
    run = system.wait_for(lambda: runs(system, rule["id"], second["id"]), timeout=30)[0]
    assert run["rule_version"] == 2 and run["status"] == "completed"
    assert runs(system, rule["id"], first["id"])[0]["rule_version"] == 1
    assert runs(system, rule["id"], first["id"])[0]["status"] == "no_match"

    dry = system.post(f"/rules/{rule['id']}/dry-run", user="manager", json={
        "event_id": run["event_id"]})
    assert dry.status_code == 200, dry.text
    assert dry.json()["would_act"] is True
    assert dry.json()["actions"][0]["title"] == f"高分线索：{second['name']}"
    sample = system.post("/rules/website-lead-call-now/dry-run", user="admin", json={
        "sample": {"event_type": "leads.lead_created", "data": {"lead": {
            "id": "sample", "name": "样例", "source": "website", "region": "华南",
            "owner_id": None}}}})
    assert sample.status_code == 200
    assert sample.json()["actions"][0]["owner_id"] == system.users["chenjing"]
    unsaved = system.post("/rules/dry-run", user="manager", json={
        "definition": {"trigger": {"type": "delay", "events": ["leads.lead_created"],
                                   "delay": "2h"},
                       "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]},
        "event_id": run["event_id"]})
    assert unsaved.status_code == 200, unsaved.text
    assert unsaved.json()["trigger"]["would_fire_at"]
    assert system.post(f"/rules/{rule['id']}/disable", user="manager").json()["enabled"] is False
