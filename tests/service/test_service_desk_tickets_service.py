"""The service_desk tickets entrypoints with nameko's worker_factory over a migrated SQLite and
PostgreSQL database and the real outbox recorder: numbering, visibility, transitions, replies."""

from __future__ import annotations

import pytest

from shared.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from tests.service import desk

ADMIN = {"all": True}
REP_A = {"owner_ids": ["rep-a"], "include_pool": True}
REP_B = {"owner_ids": ["rep-b"], "include_pool": True}
MANAGER_A = {"owner_ids": ["mgr-a", "rep-a"], "include_pool": True}


database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="rep-a")


def events_of(engine, event_type: str) -> list[dict]:
    return desk.envelopes(engine, event_type)


def new_ticket(service, scope=ADMIN, **fields) -> dict:
    body = {"subject": "发票抬头错了", "requester_email": "wang@example.cn",
            "requester_name": "王芳", "description": "请帮我改一下", **fields}
    return service.create_ticket(body, scope)


def test_create_numbers_without_gaps_and_publishes(service):
    first = new_ticket(service, priority="high", tags=["billing"], channel="email")
    assert first["number"] == "T-000001"
    assert first["status"] == "new"
    assert first["priority"] == "high"
    assert first["tags"] == ["billing"]
    assert first["assignee_id"] is None
    with pytest.raises(ValidationFailed) as bad:
        new_ticket(service, requester_email="not-an-address")
    assert "requester_email" in bad.value.extra["errors"]
    with pytest.raises(Forbidden):  # rep-a cannot hand a ticket to rep-b
        new_ticket(service, REP_A, assignee_id="rep-b")
    second = new_ticket(service, REP_A, assignee_id="rep-a")
    assert second["number"] == "T-000002"  # the refused creations took no number
    created = events_of(service.engine, "ticket_created")
    assert [e["data"]["ticket"]["id"] for e in created] == [first["id"], second["id"]]
    assert created[0]["data"]["ticket"]["number"] == "T-000001"
    ticket = service.get_ticket(first["id"], ADMIN)
    assert [e["kind"] for e in ticket["entries"]] == ["created"]
    assert ticket["entries"][0]["body"] == "请帮我改一下"


def test_visibility_by_scope(service):
    mine = new_ticket(service, assignee_id="rep-a", subject="mine")
    theirs = new_ticket(service, assignee_id="rep-b", subject="theirs")
    pool = new_ticket(service, subject="pool")

    def ids(scope, **filters):
        return [t["id"] for t in service.list_tickets(filters, scope)["items"]]

    assert ids(ADMIN) == [pool["id"], theirs["id"], mine["id"]]
    assert ids(REP_A) == [pool["id"], mine["id"]]
    assert ids(MANAGER_A) == [pool["id"], mine["id"]]
    assert ids(REP_B) == [pool["id"], theirs["id"]]
    assert ids(ADMIN, assignee_id="rep-b") == [theirs["id"]]
    with pytest.raises(NotFound):
        service.get_ticket(theirs["id"], REP_A)
    with pytest.raises(NotFound):
        service.update_ticket(theirs["id"], {"priority": "urgent"}, REP_A)
    with pytest.raises(NotFound):
        service.add_ticket_reply(theirs["id"], {"body": "hi"}, REP_A)
    with pytest.raises(NotFound):
        service.get_ticket("no-such-ticket", ADMIN)


def test_list_pages_with_cursor_and_filters(service):
    made = [new_ticket(service, subject=f"t{i}", priority="low" if i % 2 else "normal")
            for i in range(5)]
    page = service.list_tickets({}, ADMIN, None, 2)
    assert [t["subject"] for t in page["items"]] == ["t4", "t3"]
    page2 = service.list_tickets({}, ADMIN, page["next_cursor"], 2)
    assert [t["subject"] for t in page2["items"]] == ["t2", "t1"]
    page3 = service.list_tickets({}, ADMIN, page2["next_cursor"], 2)
    assert [t["subject"] for t in page3["items"]] == ["t0"]
    assert page3["next_cursor"] is None
    low = service.list_tickets({"priority": "low"}, ADMIN)["items"]
    assert [t["id"] for t in low] == [made[3]["id"], made[1]["id"]]
    with pytest.raises(ValidationFailed) as bad:
        service.list_tickets({"status": "bogus"}, ADMIN)
    assert "status" in bad.value.extra["errors"]


def test_update_status_priority_assignee_tags(service):
    ticket = new_ticket(service)
    changed = service.update_ticket(
        ticket["id"], {"status": "open", "priority": "urgent", "assignee_id": "rep-a",
                       "tags": ["vip", "vip", "billing"]}, ADMIN)
    assert (changed["status"], changed["priority"], changed["assignee_id"]) == \
        ("open", "urgent", "rep-a")
    assert changed["tags"] == ["vip", "billing"]
    solved = service.update_ticket(ticket["id"], {"status": "solved"}, REP_A)
    assert solved["status"] == "solved"
    with pytest.raises(PreconditionFailed) as refused:
        service.update_ticket(ticket["id"], {"status": "pending"}, REP_A)
    assert refused.value.status == 412
    assert refused.value.extra == {"from": "solved", "to": "pending"}
    assert "pending" in str(refused.value)
    with pytest.raises(ValidationFailed) as bad:
        service.update_ticket(ticket["id"], {"priority": "whenever"}, REP_A)
    assert "priority" in bad.value.extra["errors"]
    history = service.get_ticket(ticket["id"], ADMIN)["entries"]
    assert [(e["kind"], e["from"], e["to"]) for e in history] == [
        ("created", None, "new"), ("priority_changed", "normal", "urgent"),
        ("status_changed", "new", "open"), ("status_changed", "open", "solved")]
    moves = events_of(service.engine, "ticket_status_changed")
    assert [(e["data"]["from"], e["data"]["to"]) for e in moves] == [
        ("new", "open"), ("open", "solved")]
    assert moves[-1]["data"]["ticket"]["id"] == ticket["id"]
    assert moves[-1]["data"]["ticket"]["status"] == "solved"


def test_replies_and_reopen(service):
    ticket = new_ticket(service, assignee_id="rep-a")
    service.update_ticket(ticket["id"], {"status": "solved"}, ADMIN)
    note = service.add_ticket_reply(ticket["id"], {"body": "内部备注", "public": False}, REP_A)
    assert note["status"] == "solved"  # an internal note changes nothing
    assert note["entry"]["public"] is False
    reply = service.add_ticket_reply(
        ticket["id"], {"body": "还是不对", "author_kind": "customer"}, REP_A)
    assert reply["status"] == "open"  # the customer's reply reopened it
    assert reply["entry"]["author_kind"] == "customer"
    replied = events_of(service.engine, "ticket_replied")
    assert [e["data"]["entry"]["body"] for e in replied] == ["内部备注", "还是不对"]
    assert replied[-1]["data"]["ticket"]["status"] == "open"
    moves = events_of(service.engine, "ticket_status_changed")
    assert [(e["data"]["from"], e["data"]["to"]) for e in moves][-1] == ("solved", "open")
    with pytest.raises(ValidationFailed) as bad:
        service.add_ticket_reply(ticket["id"], {"body": ""}, REP_A)
    assert "body" in bad.value.extra["errors"]
    with pytest.raises(ValidationFailed) as bad:
        service.add_ticket_reply(ticket["id"], {"body": "x", "author_kind": "bot"}, REP_A)
    assert "author_kind" in bad.value.extra["errors"]
    service.update_ticket(ticket["id"], {"status": "closed"}, ADMIN)
    with pytest.raises(PreconditionFailed):
        service.add_ticket_reply(ticket["id"], {"body": "again"}, REP_A)
    kinds = [e["kind"] for e in service.get_ticket(ticket["id"], ADMIN)["entries"]]
    assert kinds == ["created", "status_changed", "reply", "reply", "status_changed",
                     "status_changed"]
