"""The agents' desk (console-desk) in headless Chromium against the whole system: a ticket
created by an API call (urgent, under an SLA policy of its own customer tier) is in the agent's
queue with its SLA state; the agent reads the knowledge base's suggestions while replying,
replies (the e-mail reaches the requester), adds an internal note, sets it solved and makes a
draft article of it, then finds an article and says it helped; the ticket and the queue at a
phone's width; an agent of another team sees the ticket nowhere; the assignee of a ticket moves
it to a group (console-writes). Screenshots go to var/test-artefacts/console/ (60-68)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.console.browser import ARTEFACTS, PASSWORD, PHONE, run_scenario
from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

AGENT = "liuyang"  # the demo service agent
SOUTH = "华南销售部"


def _ok(response: Any, status: int | None = None) -> Any:
    if status is None:
        assert response.status_code < 300, (response.status_code, response.text[:500])
    else:
        assert response.status_code == status, (response.status_code, response.text[:500])
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def desk(system: System, chromium: str) -> Iterator[dict[str, Any]]:
    mark = secrets.token_hex(4)
    tier = f"desk{mark}"
    # an SLA policy for this test's customer tier only: other tests' tickets never match it
    _ok(system.post("/sla-policies", user="admin", json={
        "name": f"控制台 {mark}", "priorities": ["urgent"], "customer_tiers": [tier],
        "targets": {"first_reply": {"minutes": 30, "business": False},
                    "resolution": {"minutes": 480, "business": False}}}), 201)
    article = _ok(system.post("/kb/articles", user="admin", json={
        "title": f"打印机卡纸怎么办 {mark}",
        "body": f"先关机，打开前盖，顺着进纸方向取出卡纸。{mark}", "body_format": "text"}), 201)
    _ok(system.post(f"/kb/articles/{article['id']}/publish", user="admin"))
    requester = f"li.{mark}@example.cn"
    ticket = _ok(system.post("/tickets", user="admin", json={
        "subject": f"打印机卡纸 {mark}", "requester_email": requester, "requester_name": "李雷",
        "description": "三楼的打印机又卡纸了", "priority": "urgent", "customer_tier": tier,
        "channel": "api", "assignee_id": system.users[AGENT]}), 201)
    south = next(t for t in _ok(system.get("/teams", user="admin"))["items"]
                 if t["name"] == SOUTH)
    other = _ok(system.post("/users", user="admin", json={
        "username": f"desk{mark}", "display_name": f"华南客服{mark}", "role": "service_agent",
        "team_id": south["id"], "password": PASSWORD}), 201)
    token = _ok(system.post("/auth/tokens", json={"username": other["username"],
                                                  "password": PASSWORD}))["token"]
    yield {"url": system.url, "artefacts": str(ARTEFACTS), "agent": AGENT, "mark": mark,
           "ticket_id": ticket["id"], "number": ticket["number"], "subject": ticket["subject"],
           "description": "三楼的打印机又卡纸了", "requester": requester,
           "article_id": article["id"], "article_title": article["title"], "article_word": mark,
           "other_agent": other["username"], "before_yes": article["helpful_yes"],
           "other_token": token}


def test_agent_works_a_ticket_to_solved(system: System, desk: dict, mailbox: SmtpServer) -> None:
    # the premise, over the API: the queue has it with an SLA running
    queue = _ok(system.get("/desk/queue", user=AGENT, params={"view": "mine", "q": desk["number"]}))
    [queued] = queue["items"]
    assert queued["id"] == desk["ticket_id"]
    assert (queued["sla"]["state"], queued["sla"]["next_target"]) == ("ok", "first_reply")

    result = run_scenario("desk_agent_flow", desk)
    assert result["widths"]["queue"] <= PHONE["width"] + 1, result
    assert result["widths"]["ticket"] <= PHONE["width"] + 1, result

    # what the browser did is what the API now says
    ticket = _ok(system.get(f"/tickets/{desk['ticket_id']}", user=AGENT))
    assert ticket["status"] == "solved"
    replies = [(e["public"], e["author_id"], e["body"]) for e in ticket["entries"]
               if e["kind"] == "reply"]
    agent_id = system.users[AGENT]
    assert replies == [(True, agent_id, f"您好，请先关机再取出卡纸。{desk['mark']}"),
                       (False, agent_id, f"内部：已联系厂家 {desk['mark']}")]
    mail = mailbox.wait_for(lambda m: m["To"] == desk["requester"], timeout=30)
    assert f"[#{desk['number']}]" in mail["Subject"]
    assert "请先关机再取出卡纸" in mail.get_content()
    assert not [m for m in mailbox.messages
                if m["To"] == desk["requester"] and "已联系厂家" in str(m)]
    clocks = _ok(system.get(f"/tickets/{desk['ticket_id']}/sla", user=AGENT))["clocks"]
    assert clocks["first_reply"]["state"] == "achieved"
    assert clocks["resolution"]["state"] == "achieved"
    drafts = _ok(system.get("/kb/articles", user="admin",
                            params={"status": "draft", "limit": 200}))["items"]
    [draft] = [a for a in drafts if a["source_ticket_id"] == desk["ticket_id"]]
    assert draft["title"] == desk["subject"]
    assert "三楼的打印机又卡纸了" in draft["body"] and "已联系厂家" not in draft["body"]
    article = _ok(system.get(f"/kb/articles/{desk['article_id']}", user=AGENT))
    assert article["helpful_yes"] == desk["before_yes"] + 1
    for shot in ("60-desk-queue", "61-desk-ticket-reply-with-suggestions",
                 "62-desk-ticket-solved-draft", "63-kb-search", "64-kb-article-helpful",
                 "65-phone-desk-queue", "66-phone-desk-ticket"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0


def test_another_teams_agent_sees_none_of_it(system: System, desk: dict) -> None:
    other = desk["other_agent"]
    as_other = {"key": desk["other_token"]}  # a session token: sent as the bearer like a key
    # the premise, over the API
    assert system.get(f"/tickets/{desk['ticket_id']}", **as_other).status_code == 404
    assert system.get(f"/tickets/{desk['ticket_id']}/sla", **as_other).status_code == 404
    listed = _ok(system.get("/desk/queue", **as_other, params={"q": desk["number"]}))["items"]
    assert listed == []
    run_scenario("desk_other_agent", {**desk, "agent": other})
    assert (ARTEFACTS / "67-desk-other-agent-404.png").stat().st_size > 0


def test_the_assignee_moves_a_ticket_to_a_group(system: System, desk: dict) -> None:
    mark = secrets.token_hex(3)
    agent_id = system.users[AGENT]
    group = _ok(system.post("/ticket-groups", user="admin", json={
        "name": f"控制台二线{mark}", "manager_id": system.users["manager"],
        "members": [{"user_id": agent_id}]}), 201)
    ticket = _ok(system.post("/tickets", user="admin", json={
        "subject": f"要转组的工单 {mark}", "requester_email": f"move.{mark}@example.cn",
        "channel": "api", "assignee_id": agent_id}), 201)
    # the premise: no group (an assigned ticket is not routed)
    assert ticket["group_id"] is None
    run_scenario("desk_move_group", {**desk, "ticket_id": ticket["id"],
                                     "group_name": group["name"]})
    moved = _ok(system.get(f"/tickets/{ticket['id']}", user=AGENT))
    assert (moved["group_id"], moved["assignee_id"]) == (group["id"], agent_id)  # theirs: kept
    [entry] = [e for e in moved["entries"] if e["kind"] == "group_changed"]
    assert (entry["from"], entry["to"], entry["author_id"]) == (None, group["id"], agent_id)
    # PATCH takes no group; an unknown group is a 422 naming it
    refused = system.patch(f"/tickets/{ticket['id']}", user=AGENT,
                           json={"group_id": group["id"]})
    assert refused.status_code == 422 and "group_id" in refused.json()["errors"]
    missing = system.post(f"/tickets/{ticket['id']}/group", user=AGENT,
                          json={"group_id": "no-such-group"})
    assert missing.status_code == 422 and "group_id" in missing.json()["errors"]
    assert (ARTEFACTS / "68-desk-ticket-moved-group.png").stat().st_size > 0
