"""The service_desk groups part with nameko's worker_factory over a migrated SQLite and
PostgreSQL database and the real outbox recorder: groups and who may write them, routing
rules (first match, default group), member choice (round-robin, least loaded, skills),
exactly-once routing with a command_id, group visibility, and web forms (token, honeypot,
fill time, rate limits, validation)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from services.service_desk.contract import FormRateLimited
from services.service_desk.domain import forms as form_domain
from services.service_desk.models import TicketFormRow
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from tests.service import desk

ADMIN_P = {"user_id": "admin-1", "role": "admin"}
MANAGER_P = {"user_id": "mgr-a", "role": "manager"}
OTHER_MANAGER_P = {"user_id": "mgr-b", "role": "manager"}
AGENT_P = {"user_id": "agent-1", "role": "service_agent"}
ALL = {"all": True}


def scope_of(user_id: str) -> dict:
    return {"owner_ids": [user_id], "include_pool": True, "user_id": user_id}


database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="admin-1")


def events_of(engine, event_type: str) -> list[dict]:
    return desk.envelopes(engine, event_type)


def new_ticket(service, **fields) -> dict:
    body = {"subject": "路由器掉线", "requester_email": "wang@example.cn", **fields}
    return service.create_ticket(body, ALL)


def group(service, name="二线网络组", **fields) -> dict:
    return service.create_ticket_group({"name": name, **fields}, ADMIN_P)


def test_groups_and_who_writes_them(service):
    created = group(service, manager_id="mgr-a", strategy="least_loaded", members=[
        {"user_id": "agent-1", "skills": {"products": ["Router-X"], "languages": ["zh"]},
         "capacity": 5},
        {"user_id": "agent-2"}])
    assert created["strategy"] == "least_loaded"
    assert [m["user_id"] for m in created["members"]] == ["agent-1", "agent-2"]
    assert created["members"][0]["skills"] == {"products": ["Router-X"], "languages": ["zh"]}
    assert created["members"][1]["available"] is True
    assert created["members"][1]["open_tickets"] == 0
    with pytest.raises(Conflict):
        group(service)
    with pytest.raises(Forbidden):
        service.create_ticket_group({"name": "x"}, AGENT_P)
    mine = service.create_ticket_group({"name": "经理组"}, MANAGER_P)
    assert mine["manager_id"] == "mgr-a"  # a manager's group is theirs
    with pytest.raises(Forbidden):
        service.create_ticket_group({"name": "y", "manager_id": "mgr-b"}, MANAGER_P)
    with pytest.raises(Forbidden):  # another manager's group
        service.update_ticket_group(created["id"], {"strategy": "round_robin"},
                                    OTHER_MANAGER_P)
    changed = service.update_ticket_group(created["id"], {"members": [{"user_id": "agent-3"}]},
                                          MANAGER_P)
    assert [m["user_id"] for m in changed["members"]] == ["agent-3"]
    with pytest.raises(ValidationFailed) as twice:
        service.update_ticket_group(created["id"], {"members": [{"user_id": "a"},
                                                                {"user_id": "a"}]}, ADMIN_P)
    assert "members" in twice.value.extra["errors"]
    assert [g["name"] for g in service.list_ticket_groups()] == ["二线网络组", "经理组"]
    default = service.update_ticket_group(mine["id"], {"is_default": True}, ADMIN_P)
    assert default["is_default"]
    service.update_ticket_group(created["id"], {"is_default": True}, ADMIN_P)
    assert not service.get_ticket_group(mine["id"])["is_default"]  # one default at most
    service.create_routing_rule({"name": "r", "group_id": mine["id"]}, ADMIN_P)
    with pytest.raises(Conflict):
        service.delete_ticket_group(mine["id"], ADMIN_P)
    with pytest.raises(NotFound):
        service.get_ticket_group("nope")


def test_routing_rules_first_match_default_group_and_round_robin(service):
    network = group(service, members=[{"user_id": "agent-1"}, {"user_id": "agent-2"}])
    billing = group(service, "账单组", members=[{"user_id": "agent-9"}], is_default=True)
    rule = service.create_routing_rule({"name": "路由器", "group_id": network["id"],
                                        "conditions": {"products": ["Router-X"]}}, ADMIN_P)
    assert rule["position"] == 1 and rule["conditions"] == {"products": ["Router-X"]}
    vip = service.create_routing_rule({"name": "VIP 问题", "group_id": billing["id"],
                                       "conditions": {"customer_tiers": ["vip"],
                                                      "types": ["question"]}}, ADMIN_P)
    with pytest.raises(ValidationFailed):
        service.create_routing_rule({"name": "x", "group_id": "nope"}, ADMIN_P)
    with pytest.raises(Forbidden):  # a manager writes rules for the groups they manage
        service.create_routing_rule({"name": "x", "group_id": network["id"]}, MANAGER_P)

    routed = [service.route_ticket(new_ticket(service, product="Router-X")["id"])
              for _ in range(3)]
    assert [t["group_id"] for t in routed] == [network["id"]] * 3
    assert [t["assignee_id"] for t in routed] == ["agent-1", "agent-2", "agent-1"]
    assert routed[0]["routing"]["rule_id"] == rule["id"]
    other = service.route_ticket(new_ticket(service, product="Phone")["id"])
    assert (other["group_id"], other["assignee_id"]) == (billing["id"], "agent-9")
    assert other["routing"]["group_reason"] == "the default group"
    # reordered: the VIP rule comes first and takes a VIP question about the router
    service.reorder_routing_rules({"rule_ids": [vip["id"], rule["id"]]}, ADMIN_P)
    first = service.route_ticket(new_ticket(service, product="Router-X", customer_tier="vip")["id"])
    assert first["group_id"] == billing["id"]
    with pytest.raises(ValidationFailed):
        service.reorder_routing_rules({"rule_ids": [vip["id"]]}, ADMIN_P)
    events = events_of(service.engine, "ticket_routed")
    assert len(events) == 5 and events[0]["data"]["assignee_id"] == "agent-1"
    # a disabled rule is passed over
    service.update_routing_rule(vip["id"], {"enabled": False}, ADMIN_P)
    again = service.route_ticket(new_ticket(service, product="Router-X", customer_tier="vip")["id"])
    assert again["group_id"] == network["id"]


def test_least_loaded_skills_and_capacity(service):
    network = group(service, strategy="least_loaded", members=[
        {"user_id": "agent-1"}, {"user_id": "agent-2"}])
    for _ in range(2):
        service.assign_ticket(new_ticket(service, group_id=network["id"])["id"], "agent-1")
    chosen = service.route_ticket(new_ticket(service, group_id=network["id"])["id"])
    assert chosen["assignee_id"] == "agent-2"
    assert chosen["routing"]["assignee_reason"].startswith("least loaded (0 open)")
    # solved tickets are not load
    for ticket in service.list_tickets({"assignee_id": "agent-1"}, ALL)["items"]:
        service.update_ticket(ticket["id"], {"status": "solved"}, ALL)
    assert service.route_ticket(new_ticket(service, group_id=network["id"])["id"]
                                )["assignee_id"] == "agent-1"

    skilled = group(service, "英文组", skills_matching=True, members=[
        {"user_id": "agent-5", "skills": {"languages": ["zh"]}},
        {"user_id": "agent-6", "skills": {"languages": ["en"]}, "capacity": 1},
        {"user_id": "agent-7", "available": False, "skills": {"languages": ["en"]}}])
    english = service.route_ticket(new_ticket(service, group_id=skilled["id"], language="en")["id"])
    assert english["assignee_id"] == "agent-6"
    assert english["routing"]["skipped"]["agent-7"] == "unavailable"
    # agent-6 is full now: the ticket goes to anyone eligible
    full = service.route_ticket(new_ticket(service, group_id=skilled["id"], language="en")["id"])
    assert full["assignee_id"] == "agent-5" and "any member" in full["routing"]["assignee_reason"]


def test_route_ticket_is_exactly_once_per_command_id(service):
    network = group(service, members=[{"user_id": "agent-1"}, {"user_id": "agent-2"}])
    ticket = new_ticket(service, group_id=network["id"])
    first = service.route_ticket(ticket["id"], ALL, "rules:run-1:0")
    assert first["assignee_id"] == "agent-1"
    service.update_ticket(ticket["id"], {"assignee_id": None}, ALL)  # someone unassigns it
    again = service.route_ticket(ticket["id"], ALL, "rules:run-1:0")  # a redelivery
    assert again["assignee_id"] is None and again["routing"] is None
    assert len(events_of(service.engine, "ticket_routed")) == 1
    assert service.get_ticket_group(network["id"])["members"][0]["open_tickets"] == 0
    # the rotation did not move: the next ticket goes to agent-2
    assert service.route_ticket(new_ticket(service, group_id=network["id"])["id"], ALL,
                                "rules:run-2:0")["assignee_id"] == "agent-2"
    assigned = service.assign_ticket(ticket["id"], "agent-2", ALL, "rules:run-3:0")
    assert assigned["assignee_id"] == "agent-2"
    service.assign_ticket(ticket["id"], "agent-1", ALL, "rules:run-3:0")  # the same command
    assert service.get_ticket(ticket["id"], ALL)["assignee_id"] == "agent-2"
    assert len(events_of(service.engine, "ticket_assigned")) == 1
    with pytest.raises(Conflict):  # a key used for another ticket
        service.route_ticket(new_ticket(service)["id"], ALL, "rules:run-1:0")


def test_group_members_see_the_groups_tickets_and_nobody_else(service):
    network = group(service, manager_id="mgr-g", members=[{"user_id": "agent-1"},
                                                          {"user_id": "agent-2"}])
    unassigned = new_ticket(service, group_id=network["id"], subject="组内未分配")
    of_colleague = new_ticket(service, group_id=network["id"], subject="同事的",
                              assignee_id="agent-2")
    pool = new_ticket(service, subject="公共池")

    def ids(user_id):
        return {t["id"] for t in service.list_tickets({}, scope_of(user_id))["items"]}

    assert {unassigned["id"], of_colleague["id"], pool["id"]} <= ids("agent-1")
    assert {unassigned["id"], of_colleague["id"]} <= ids("mgr-g")  # the group's manager
    outsider = ids("agent-9")
    assert unassigned["id"] not in outsider and of_colleague["id"] not in outsider
    assert pool["id"] in outsider  # the pool is as before
    with pytest.raises(NotFound):
        service.get_ticket(unassigned["id"], scope_of("agent-9"))
    with pytest.raises(NotFound):
        service.update_ticket(of_colleague["id"], {"priority": "high"}, scope_of("agent-9"))
    assert service.get_ticket(of_colleague["id"], scope_of("agent-1"))["subject"] == "同事的"
    # a member hands a group ticket to another member, not to an outsider
    moved = service.update_ticket(unassigned["id"], {"assignee_id": "agent-2"},
                                  scope_of("agent-1"))
    assert moved["assignee_id"] == "agent-2"
    with pytest.raises(Forbidden):
        service.update_ticket(unassigned["id"], {"assignee_id": "agent-9"}, scope_of("agent-1"))
    assert {t["id"] for t in service.list_tickets({"group_id": network["id"]},
                                                  scope_of("agent-1"))["items"]} == \
        {unassigned["id"], of_colleague["id"]}


def _form(service, **fields) -> dict:
    return service.create_ticket_form({"name": "官网表单", "min_fill_seconds": 0,
                                       "allowed_origins": ["https://www.example.cn"],
                                       **fields}, ADMIN_P)


POST = {"name": "王芳", "email": "Wang@Example.CN", "subject": "路由器无法联网",
        "body": "昨天开始掉线", "product": "Router-X"}


def test_forms_token_spam_validation_and_rate_limits(service):
    network = group(service, members=[{"user_id": "agent-1"}])
    with pytest.raises(Forbidden):
        service.create_ticket_form({"name": "x"}, MANAGER_P)
    form = _form(service, default_group_id=network["id"], default_type="incident")
    token = form["token"]
    assert "token" not in service.get_ticket_form(form["id"], ADMIN_P)
    public = service.get_public_form(form["key"])
    assert public["honeypot_field"] == "website" and public["stamp"]

    def submit(data=POST, tok=token, address="203.0.113.1", origin=None):
        return service.submit_form_ticket(form["key"], tok, dict(data), address, origin)

    assert submit() == {"accepted": True}
    tickets = service.list_tickets({}, ALL)["items"]
    assert len(tickets) == 1
    ticket = tickets[0]
    assert (ticket["requester_email"], ticket["requester_name"], ticket["channel"],
            ticket["type"], ticket["group_id"], ticket["product"]) == \
        ("wang@example.cn", "王芳", "web", "incident", network["id"], "Router-X")
    assert ticket["tags"] == [f"form:{form['key']}"]
    with pytest.raises(Forbidden):
        submit(tok="wrong", address="203.0.113.2")
    with pytest.raises(Forbidden):
        submit(origin="https://evil.example", address="203.0.113.3")
    assert submit(origin="https://www.example.cn", address="203.0.113.3") == {"accepted": True}
    assert submit({**POST, "website": "http://spam.example"}, address="203.0.113.4") == \
        {"accepted": True}
    with pytest.raises(ValidationFailed) as bad:
        submit({**POST, "email": "not an address"}, address="203.0.113.5")
    assert "email" in bad.value.extra["errors"]
    with pytest.raises(NotFound):
        service.submit_form_ticket("nope", token, dict(POST), "203.0.113.6", None)
    assert len(service.list_tickets({}, ALL)["items"]) == 2  # the bot's post made none

    # the token rotates: the old one stops working
    rotated = service.rotate_ticket_form_token(form["id"], ADMIN_P)
    with pytest.raises(Forbidden):
        submit(address="203.0.113.7")
    token = rotated["token"]
    assert submit(tok=token, address="203.0.113.7") == {"accepted": True}

    # per address: 5 a minute by default
    for _ in range(5):
        submit(tok=token, address="198.51.100.1")
    with pytest.raises(FormRateLimited) as limited:
        submit(tok=token, address="198.51.100.1")
    assert 1 <= limited.value.extra["retry_after"] <= 60


def test_forms_minimum_fill_time_and_form_rate(service):
    form = _form(service, min_fill_seconds=5, rate_per_minute=3, ip_rate_per_minute=100)
    with service.engine.connect() as conn:
        signing_key = conn.execute(select(TicketFormRow.signing_key)
                                   .where(TicketFormRow.id == form["id"])).scalar_one()
    fresh = service.get_public_form(form["key"])["stamp"]
    old = form_domain.issue_stamp(signing_key, form["key"], time.time() - 30)
    assert service.submit_form_ticket(form["key"], form["token"], {**POST, "stamp": fresh},
                                      "192.0.2.1", None) == {"accepted": True}
    assert service.submit_form_ticket(form["key"], form["token"], dict(POST),
                                      "192.0.2.1", None) == {"accepted": True}  # no stamp
    assert service.list_tickets({}, ALL)["items"] == []  # both taken for bots
    assert service.submit_form_ticket(form["key"], form["token"], {**POST, "stamp": old},
                                      "192.0.2.2", None) == {"accepted": True}
    assert len(service.list_tickets({}, ALL)["items"]) == 1
    with pytest.raises(FormRateLimited):  # the form's 3 a minute, whatever the address
        service.submit_form_ticket(form["key"], form["token"], {**POST, "stamp": old},
                                   "192.0.2.3", None)


def test_merge_closes_the_duplicate_with_a_link_and_notes_both(service):
    target = new_ticket(service, subject="路由器掉线", assignee_id="agent-1", tags=["net"])
    source = new_ticket(service, subject="又掉线了", requester_email="li@example.cn",
                        description="第二次报修", tags=["dup"])
    service.add_ticket_reply(source["id"], {"body": "客户补充：灯不亮", "author_kind": "customer"},
                             ALL)
    merged = service.merge_tickets(source["id"], {"into": target["id"]}, ALL)
    assert merged["id"] == target["id"] and merged["tags"] == ["net", "dup"]
    closed = service.get_ticket(source["id"], ALL)
    assert (closed["status"], closed["merged_into_id"]) == ("closed", target["id"])
    assert [e["kind"] for e in closed["entries"]][-2:] == ["merged", "status_changed"]
    assert closed["entries"][-2]["to"] == target["number"]
    note = service.get_ticket(target["id"], ALL)["entries"][-1]
    assert (note["kind"], note["from"], note["public"]) == ("merged", source["number"], False)
    assert "li@example.cn" in note["body"] and "第二次报修" in note["body"]
    assert "灯不亮" in note["body"]
    # a repeat changes nothing; another target, itself, a hidden target are refused
    again = service.merge_tickets(source["id"], {"into": target["id"]}, ALL)
    assert again["updated_at"] == merged["updated_at"]
    assert len(events_of(service.engine, "ticket_merged")) == 1
    other = new_ticket(service)
    with pytest.raises(Conflict):
        service.merge_tickets(source["id"], {"into": other["id"]}, ALL)
    with pytest.raises(ValidationFailed):
        service.merge_tickets(other["id"], {"into": other["id"]}, ALL)
    with pytest.raises(NotFound):  # agent-9 does not see agent-1's ticket
        service.merge_tickets(other["id"], {"into": target["id"]}, scope_of("agent-9"))
    with pytest.raises(PreconditionFailed):  # nothing merges into a closed ticket
        service.merge_tickets(other["id"], {"into": source["id"]}, ALL)
    assert service.get_ticket(other["id"], ALL)["status"] == "new"
