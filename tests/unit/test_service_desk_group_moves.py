"""Who may move a ticket to another group, and what becomes of its assignee
(services/service_desk/domain/group_moves.py)."""

from __future__ import annotations

from services.service_desk.domain.group_moves import GroupView, assignee_after, may_move, movable

FIRST = GroupView("g1", "boss-1", frozenset({"agent-1", "agent-2"}))
SECOND = GroupView("g2", "boss-2", frozenset({"agent-3"}))


def scope(user_id: str) -> dict:
    return {"owner_ids": [user_id], "user_id": user_id}


def test_who_may_move():
    assert may_move({"all": True}, None, FIRST, SECOND)
    assert may_move(scope("boss-1"), "agent-1", FIRST, SECOND)  # the source's manager
    assert may_move(scope("boss-2"), "agent-1", FIRST, SECOND)  # the target's manager
    assert may_move(scope("agent-2"), "agent-1", FIRST, SECOND)  # a member of its group
    assert may_move(scope("agent-9"), "agent-9", None, SECOND)  # its assignee, no group
    assert not may_move(scope("agent-3"), "agent-1", FIRST, SECOND)  # the target's member
    assert not may_move(scope("lead"), "agent-1", FIRST, SECOND)  # a team lead only
    assert not may_move(scope("agent-2"), None, None, SECOND)
    assert not may_move({"owner_ids": ["x"]}, "x", FIRST, SECOND)  # no user id: nobody


def test_the_assignee_stays_only_in_their_group():
    assert assignee_after("agent-3", SECOND) == "agent-3"
    assert assignee_after("boss-2", SECOND) == "boss-2"
    assert assignee_after("agent-1", SECOND) is None
    assert assignee_after(None, SECOND) is None


def test_a_closed_ticket_stays():
    assert movable("open") and movable("solved")
    assert not movable("closed")
