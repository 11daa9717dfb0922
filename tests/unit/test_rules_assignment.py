"""Assignment: round-robin fairness, least-loaded, capacity, inactive and out-of-office members."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from services.rules.domain.assignment import Member, choose

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def rotate(members: list[Member], strategy: str, rounds: int) -> list[str]:
    chosen: list[str] = []
    last = None
    loads = {m.user_id: m.load for m in members}
    for _ in range(rounds):
        current = [Member(m.user_id, m.active, m.out_of_office_until, m.capacity,
                          loads[m.user_id]) for m in members]
        choice = choose(current, strategy, last, NOW)
        assert choice.user_id is not None, choice
        chosen.append(choice.user_id)
        loads[choice.user_id] += 1
        last = choice.user_id
    return chosen


def test_round_robin_is_fair_and_in_order() -> None:
    members = [Member("c"), Member("a"), Member("b")]
    chosen = rotate(members, "round_robin", 9)
    assert chosen == ["a", "b", "c"] * 3
    assert set(Counter(chosen).values()) == {3}


def test_round_robin_continues_after_the_last_one_chosen() -> None:
    members = [Member("a"), Member("b"), Member("c")]
    assert choose(members, "round_robin", "b", NOW).user_id == "c"
    assert choose(members, "round_robin", "c", NOW).user_id == "a"
    # "bb" left the team: continue with whoever sorts after them
    assert choose(members, "round_robin", "bb", NOW).user_id == "c"


def test_inactive_and_out_of_office_members_are_skipped_with_reasons() -> None:
    members = [
        Member("a", active=False),
        Member("b", out_of_office_until=NOW + timedelta(days=2)),
        Member("c", out_of_office_until=NOW - timedelta(days=1)),  # back already
    ]
    choice = choose(members, "round_robin", None, NOW)
    assert choice.user_id == "c"
    assert choice.skipped["a"] == "inactive"
    assert choice.skipped["b"].startswith("out of office until")


def test_capacity_limits_open_leads() -> None:
    members = [Member("a", capacity=2, load=2), Member("b", capacity=5, load=1)]
    choice = choose(members, "round_robin", None, NOW)
    assert choice.user_id == "b"
    assert choice.skipped == {"a": "at capacity (2/2)"}
    chosen = rotate([Member("a", capacity=3), Member("b", capacity=1)], "round_robin", 4)
    assert Counter(chosen) == {"a": 3, "b": 1}


def test_nobody_eligible_is_a_choice_with_no_user() -> None:
    choice = choose([Member("a", capacity=0)], "least_loaded", None, NOW)
    assert choice.user_id is None
    assert choice.skipped == {"a": "at capacity (0/0)"}
    assert choose([], "round_robin", None, NOW).reason == "the group has no members"


def test_least_loaded_evens_out_the_load() -> None:
    members = [Member("a", load=5), Member("b", load=1), Member("c", load=3)]
    chosen = rotate(members, "least_loaded", 6)
    # b catches up with c, then both with a; ties go in rotation order
    assert chosen[:2] == ["b", "b"]
    final = Counter(chosen)
    loads = {"a": 5 + final["a"], "b": 1 + final["b"], "c": 3 + final["c"]}
    assert max(loads.values()) - min(loads.values()) <= 1
