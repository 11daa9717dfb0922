"""Moving a ticket to another group by hand (`move_ticket_to_group`) with nameko's
worker_factory over a migrated SQLite and PostgreSQL database and the real outbox recorder:
who may move it, the target group checked, the assignee kept or cleared, the history entry,
the `ticket_group_changed` event, and later SLA warnings and breaches naming the new group's
manager."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from tests.service import desk

ADMIN_P = {"user_id": "admin-1", "role": "admin"}
ALL = {"all": True}

database_url = desk.database_url


def scope_of(user_id: str, *owners: str) -> dict:
    return {"owner_ids": [user_id, *owners], "include_pool": True, "user_id": user_id}


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="agent-1")


@pytest.fixture
def groups(service) -> dict[str, dict]:
    """一线 (managed by boss-1: agent-1, agent-2), 二线 (boss-2: agent-3), 三线 (boss-3)."""
    return {
        "first": service.create_ticket_group({"name": "一线", "manager_id": "boss-1", "members": [
            {"user_id": "agent-1"}, {"user_id": "agent-2"}]}, ADMIN_P),
        "second": service.create_ticket_group({"name": "二线", "manager_id": "boss-2",
                                               "members": [{"user_id": "agent-3"}]}, ADMIN_P),
        "third": service.create_ticket_group({"name": "三线", "manager_id": "boss-3"}, ADMIN_P),
    }


def new_ticket(service, **fields) -> dict:
    return service.create_ticket({"subject": "系统宕机", "requester_email": "li@example.cn",
                                  "priority": "urgent", **fields}, ALL)


def changes(service) -> list[dict]:
    return [e["data"] for e in desk.envelopes(service.engine, "ticket_group_changed")]


def test_a_member_moves_the_ticket_its_history_and_event(service, groups):
    ticket = new_ticket(service, group_id=groups["first"]["id"], assignee_id="agent-1")
    moved = service.move_ticket_to_group(
        ticket["id"], {"group_id": groups["second"]["id"], "reason": "需要二线排查"},
        scope_of("agent-2"))  # a member of the ticket's group, not its assignee
    assert moved["group_id"] == groups["second"]["id"]
    assert moved["assignee_id"] is None  # agent-1 is not of 二线: unassigned there
    entry = service.get_ticket(ticket["id"], ALL)["entries"][-1]
    assert (entry["kind"], entry["from"], entry["to"], entry["body"], entry["public"],
            entry["author_id"]) == ("group_changed", groups["first"]["id"],
                                    groups["second"]["id"], "需要二线排查", False, "agent-1")
    [event] = changes(service)
    assert (event["from"], event["to"], event["unassigned_id"], event["reason"]) == (
        groups["first"]["id"], groups["second"]["id"], "agent-1", "需要二线排查")
    assert event["ticket"]["group_id"] == groups["second"]["id"]
    assert event["ticket"]["assignee_id"] is None
    # the new group sees it, the old member no longer does (it is not theirs)
    assert service.get_ticket(ticket["id"], scope_of("agent-3"))["id"] == ticket["id"]
    with pytest.raises(NotFound):
        service.get_ticket(ticket["id"], scope_of("agent-2"))
    # the same group again: nothing changes, nothing published
    service.move_ticket_to_group(ticket["id"], {"group_id": groups["second"]["id"]},
                                 scope_of("agent-3"))
    assert len(changes(service)) == 1


def test_an_assignee_of_the_target_group_stays(service, groups):
    ticket = new_ticket(service, group_id=groups["second"]["id"], assignee_id="agent-3")
    service.update_ticket_group(groups["first"]["id"], {"members": [
        {"user_id": "agent-1"}, {"user_id": "agent-3"}]}, ADMIN_P)
    moved = service.move_ticket_to_group(ticket["id"], {"group_id": groups["first"]["id"]},
                                         scope_of("agent-3"))
    assert (moved["group_id"], moved["assignee_id"]) == (groups["first"]["id"], "agent-3")
    assert changes(service)[-1]["unassigned_id"] is None


def test_who_may_move_it(service, groups):
    first, second, third = groups["first"]["id"], groups["second"]["id"], groups["third"]["id"]
    ticket = new_ticket(service, group_id=first, assignee_id="agent-1")
    # a team manager who sees the ticket through the assignee, but is none of the groups'
    with pytest.raises(Forbidden):
        service.move_ticket_to_group(ticket["id"], {"group_id": second},
                                     scope_of("team-lead", "agent-1"))
    # a member of the target group only does not see it (another group's ticket): 404
    with pytest.raises(NotFound):
        service.move_ticket_to_group(ticket["id"], {"group_id": second}, scope_of("agent-3"))
    # the target group's manager takes it in (they see it as their team's, here)
    moved = service.move_ticket_to_group(ticket["id"], {"group_id": third},
                                         scope_of("boss-3", "agent-1"))
    assert moved["group_id"] == third
    # the source group's manager sends it on; an admin anywhere
    service.move_ticket_to_group(ticket["id"], {"group_id": second}, scope_of("boss-3"))
    assert service.move_ticket_to_group(ticket["id"], {"group_id": first}, ALL)[
        "group_id"] == first
    # the assignee of a ticket of no group hands it to a group
    alone = new_ticket(service, assignee_id="agent-9")
    assert service.move_ticket_to_group(alone["id"], {"group_id": third},
                                        scope_of("agent-9"))["group_id"] == third
    assert [e["from"] for e in changes(service)][-1] is None


def test_the_target_group_must_exist_and_a_closed_ticket_stays(service, groups):
    ticket = new_ticket(service, group_id=groups["first"]["id"])
    with pytest.raises(ValidationFailed) as missing:
        service.move_ticket_to_group(ticket["id"], {"group_id": "no-such-group"}, ALL)
    assert "group_id" in missing.value.extra["errors"]
    with pytest.raises(ValidationFailed) as unknown:
        service.move_ticket_to_group(ticket["id"], {"groupid": groups["second"]["id"]}, ALL)
    assert "group_id" in unknown.value.extra["errors"]
    service.delete_ticket_group(groups["third"]["id"], ADMIN_P)  # deleted: gone
    with pytest.raises(ValidationFailed):
        service.move_ticket_to_group(ticket["id"], {"group_id": groups["third"]["id"]}, ALL)
    for status in ("open", "solved", "closed"):
        service.update_ticket(ticket["id"], {"status": status}, ALL)
    with pytest.raises(PreconditionFailed):
        service.move_ticket_to_group(ticket["id"], {"group_id": groups["second"]["id"]}, ALL)
    assert service.get_ticket(ticket["id"], ALL)["group_id"] == groups["first"]["id"]
    assert changes(service) == []
    with pytest.raises(NotFound):
        service.move_ticket_to_group("nope", {"group_id": groups["second"]["id"]}, ALL)


def test_later_sla_warnings_and_breaches_name_the_new_groups_manager(service, groups):
    service.create_sla_policy({
        "name": "urgent 1h", "priorities": ["urgent"],
        "targets": {"first_reply": {"minutes": 60, "business": False},
                    "resolution": {"minutes": 240, "business": False}}})
    ticket = new_ticket(service, group_id=groups["first"]["id"], assignee_id="agent-1")
    created = datetime.fromisoformat(ticket["created_at"])
    # the move changes no SLA instant (nothing rescheduled); the warning and the breach read
    # the group when they are published
    service.move_ticket_to_group(ticket["id"], {"group_id": groups["second"]["id"]}, ALL)
    service.check_sla(ticket_id=ticket["id"], now=(created + timedelta(minutes=61)).isoformat())
    [breach] = [e["data"] for e in desk.envelopes(service.engine, "ticket_sla_breached")
                if e["data"]["ticket_id"] == ticket["id"] and e["data"]["target"] == "first_reply"]
    assert breach["group_manager_id"] == "boss-2"
    assert breach["ticket"]["group_manager_id"] == "boss-2"
    warnings = [e["data"] for e in desk.envelopes(service.engine, "ticket_sla_warning")
                if e["data"]["ticket_id"] == ticket["id"]]
    assert warnings and all(w["group_manager_id"] == "boss-2" for w in warnings)
