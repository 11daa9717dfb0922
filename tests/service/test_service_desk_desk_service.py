"""The agents' desk (console-desk) over a migrated SQLite and PostgreSQL database: the queue's
views, filters and search within the caller's visibility, each ticket's SLA state (as the
ticket's own clocks say), and a draft article from a solved ticket."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.service_desk import clock as desk_clock
from services.service_desk.domain import desk_view
from shared.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from tests.service import desk

ADMIN = {"all": True}
AGENT_1 = {"owner_ids": ["agent-1"], "include_pool": True, "user_id": "agent-1"}
AGENT_2 = {"owner_ids": ["agent-2"], "include_pool": True, "user_id": "agent-2"}
ADMIN_P = {"user_id": "admin", "role": "admin"}
AGENT_P = {"user_id": "agent-1", "role": "service_agent"}

database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="agent-1")


def ticket(service, subject="打印机卡纸", **fields):
    return service.create_ticket({"subject": subject, "requester_email": "wang@example.cn",
                                  "requester_name": "王芳", "description": "第三台打印机卡纸",
                                  **fields}, ADMIN)


def ids(page):
    return [item["id"] for item in page["items"]]


def test_views_filters_and_search_keep_to_what_the_caller_sees(service):
    group = service.create_ticket_group({"name": "一线", "members": [{"user_id": "agent-1"}]},
                                        ADMIN_P)
    mine = ticket(service, "我的工单", assignee_id="agent-1", priority="high")
    theirs = ticket(service, "别人的工单", assignee_id="agent-2")
    pool = ticket(service, "公共池工单", requester_email="li@example.cn")
    grouped = ticket(service, "组里的工单", group_id=group["id"])
    grouped_theirs = ticket(service, "组里别人的", group_id=group["id"], assignee_id="agent-3")

    def queue(scope=AGENT_1, **filters):
        return ids(service.desk_queue(filters, scope))

    assert queue() == [grouped_theirs["id"], grouped["id"], pool["id"], mine["id"]]
    assert queue(view="mine") == [mine["id"]]
    assert queue(view="groups") == [grouped_theirs["id"], grouped["id"]]
    assert queue(view="unassigned") == [grouped["id"], pool["id"]]
    assert queue(priority="high") == [mine["id"]]
    assert queue(group_id=group["id"], view="unassigned") == [grouped["id"]]
    # agent-2 is not in the group: its tickets stay out of every view
    assert queue(AGENT_2) == [pool["id"], theirs["id"]]
    assert queue(AGENT_2, view="groups") == []
    assert queue(AGENT_2, q="组里") == []
    # search: subject, requester, number (T-000001, 1, #T-1)
    assert queue(q="公共池") == [pool["id"]]
    assert queue(q="LI@example") == [pool["id"]]
    assert queue(q=mine["number"]) == [mine["id"]]
    assert queue(q="1") == [mine["id"]]
    assert queue(q="100%_") == []  # LIKE wildcards are plain characters
    assert queue(q=theirs["number"]) == []  # out of sight even by its number
    assert queue({**ADMIN, "user_id": "admin"}, view="groups") == []  # the admin is in no group
    with pytest.raises(ValidationFailed) as bad:
        service.desk_queue({"view": "everything"}, AGENT_1)
    assert "view" in bad.value.extra["errors"]
    page = service.desk_queue({}, AGENT_1, None, 2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = service.desk_queue({}, AGENT_1, page["next_cursor"], 2)
    assert ids(rest) == [pool["id"], mine["id"]]


def test_sla_states_in_the_queue_and_the_ticket_clocks(service, monkeypatch):
    service.create_sla_policy({
        "name": "urgent 1h", "priorities": ["urgent"],
        "targets": {"first_reply": {"minutes": 60, "business": False},
                    "resolution": {"minutes": 240, "business": False}}})
    urgent = ticket(service, priority="urgent", assignee_id="agent-1")
    normal = ticket(service, "普通", assignee_id="agent-1")

    def states():
        return {item["id"]: item["sla"] for item in
                service.desk_queue({"view": "mine"}, AGENT_1)["items"]}

    now = states()
    assert now[normal["id"]] == {"state": "none", "next_target": None, "next_due_at": None,
                                 "breached_targets": []}
    assert now[urgent["id"]]["state"] == "ok"
    assert now[urgent["id"]]["next_target"] == "first_reply"
    # the queue's next due is the ticket's clock (sla_checks.ticket_sla, GET /tickets/{id}/sla)
    first_reply = service.ticket_sla(urgent["id"], AGENT_1)["clocks"]["first_reply"]
    assert first_reply["state"] == "running"
    assert datetime.fromisoformat(first_reply["due_at"]) == \
        datetime.fromisoformat(now[urgent["id"]]["next_due_at"])

    monkeypatch.setattr(desk_clock, "_offset", 50 * 60)  # past 75 % of the first reply
    assert states()[urgent["id"]]["state"] == "warning"

    monkeypatch.setattr(desk_clock, "_offset", 70 * 60)
    late = states()[urgent["id"]]
    assert late["state"] == "breached" and late["breached_targets"] == ["first_reply"]
    assert late["next_target"] == "resolution"
    # out of sight: not in the queue
    assert service.desk_queue({}, AGENT_2)["items"] == []


def test_a_draft_article_from_a_solved_ticket(service):
    solved = ticket(service, "如何重置密码", assignee_id="agent-1")
    service.add_ticket_reply(solved["id"], {"body": "内部：用户是 VIP", "public": False}, AGENT_1)
    service.add_ticket_reply(solved["id"], {"body": "在登录页点“忘记密码”。"}, AGENT_1)
    with pytest.raises(PreconditionFailed):
        service.desk_kb_draft(solved["id"], {}, AGENT_1, AGENT_P)
    service.update_ticket(solved["id"], {"status": "solved"}, AGENT_1)
    with pytest.raises(NotFound):
        service.desk_kb_draft(solved["id"], {}, AGENT_2, {"user_id": "agent-2",
                                                          "role": "service_agent"})
    with pytest.raises(Forbidden):
        service.desk_kb_draft(solved["id"], {}, AGENT_1, {"user_id": "agent-1",
                                                          "role": "sales_rep"})
    article = service.desk_kb_draft(solved["id"], {}, AGENT_1, AGENT_P)
    assert article["status"] == "draft" and article["source_ticket_id"] == solved["id"]
    assert article["title"] == "如何重置密码"
    assert "第三台打印机卡纸" in article["body"] and "忘记密码" in article["body"]
    assert "VIP" not in article["body"]  # internal notes stay out
    named = service.desk_kb_draft(solved["id"], {"title": "重置密码"}, AGENT_1, AGENT_P)
    assert named["title"] == "重置密码"


def test_summary_of_clocks():
    assert desk_view.sla_summary({})["state"] == "none"
    paused = {"state": "paused", "breached": False, "warnings": [{"passed": True}]}
    assert desk_view.sla_summary({"resolution": paused})["state"] == "none"
    achieved_late = {"state": "achieved", "breached": True, "warnings": []}
    assert desk_view.sla_summary({"first_reply": achieved_late})["breached_targets"] == [
        "first_reply"]
