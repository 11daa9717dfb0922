"""Escalation of an undecided approval step, pure domain (services/contracts/domain/approvals.py
`escalate`): to the waiting approvers' managers or a named user, once, never to the submitter,
and the escalation approver's answer decides the step; plus the flow checks of the fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.contracts.domain import approvals as domain
from shared.errors import ValidationFailed

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
DIRECTORY = domain.Directory(
    users={"rep": {"team_id": "t1"}, "a": {"team_id": "t2"}, "b": {"team_id": "t2"},
           "boss": {"team_id": None}, "lead": {"team_id": None}, "gone": {"active": False}},
    teams={"t1": {"manager_id": "lead"}, "t2": {"manager_id": "boss"}})


def flow(mode: str = "all", escalate_to: dict | None = None, **extra) -> dict:
    step = {"name": "一审", "mode": mode, "approvers": [{"kind": "user", "id": "a"},
                                                       {"kind": "user", "id": "b"}],
            "escalate_after_hours": 8, **extra}
    if escalate_to is not None:
        step["escalate_to"] = escalate_to
    return {"id": "f", "name": "f", "steps": [
        step, {"name": "二审", "approvers": [{"kind": "user", "id": "lead"}]}]}


def started(definition: dict) -> dict:
    domain.check_flow(definition)
    state, _ = domain.start(definition, "contract", "c1", {"amount": "1"}, 1, "rep",
                            DIRECTORY, NOW, "i1")
    return state


def test_escalates_to_the_waiting_approvers_manager_once():
    state = started(flow())
    assert state["steps"][0]["escalate_after_hours"] == 8
    answer, events = domain.escalate(state, 0, DIRECTORY, NOW, "cmd-1")
    assert answer["escalated"] and answer["escalated_to"] == ["boss"]
    assert [e[0] for e in events] == ["approval_step_escalated", "approval_requested"]
    assert domain.pending_approvers(state) == ["a", "b", "boss"]
    assert state["trail"][-1]["action"] == "escalated"
    for command in ("cmd-1", "cmd-2"):
        again, events = domain.escalate(state, 0, DIRECTORY, NOW, command)
        assert not again["escalated"] and events == []
    assert [t["action"] for t in state["trail"]].count("escalated") == 1


def test_the_escalation_approver_decides_an_all_step_and_others_count_as_before():
    state = started(flow())
    domain.escalate(state, 0, DIRECTORY, NOW, "c")
    domain.decide(state, "boss", "approve", None, NOW)
    assert state["step_index"] == 1
    plain = started(flow())
    domain.escalate(plain, 0, DIRECTORY, NOW, "c")
    domain.decide(plain, "a", "approve", None, NOW)
    assert plain["step_index"] == 0  # b has still to answer; boss is not needed for 会签
    domain.decide(plain, "b", "approve", None, NOW)
    assert plain["step_index"] == 1


def test_a_decided_step_and_a_step_without_escalation_are_left_alone():
    state = started(flow(mode="any"))
    domain.decide(state, "a", "approve", None, NOW)
    answer, events = domain.escalate(state, 0, DIRECTORY, NOW, "c")
    assert not answer["escalated"] and "no longer waiting" in answer["reason"] and not events
    answer, _ = domain.escalate(state, 1, DIRECTORY, NOW, "c2")
    assert answer["reason"] == "the step has no escalation"


def test_a_named_user_and_nobody_to_escalate_to():
    state = started(flow(escalate_to={"kind": "user", "id": "lead"}))
    assert domain.escalate(state, 0, DIRECTORY, NOW, "c")[0]["escalated_to"] == ["lead"]
    state = started(flow(escalate_to={"kind": "user", "id": "rep"}))  # the submitter
    answer, events = domain.escalate(state, 0, DIRECTORY, NOW, "c")
    assert not answer["escalated"] and events == []
    assert state["trail"][-1]["action"] == "escalation_failed"
    assert domain.escalate(state, 0, DIRECTORY, NOW, "c")[0]["reason"] == \
        "this escalation was done already"


def test_a_step_opened_again_escalates_anew():
    definition = flow(mode="any")
    definition["steps"][1]["on_reject"] = "previous"
    state = started(definition)
    domain.escalate(state, 0, DIRECTORY, NOW, "c1")
    domain.decide(state, "boss", "approve", None, NOW)
    domain.decide(state, "lead", "reject", None, NOW)  # back to step 0
    assert state["step_index"] == 0 and domain.pending_approvers(state) == ["a", "b"]
    assert domain.escalate(state, 0, DIRECTORY, NOW, "c2")[0]["escalated_to"] == ["boss"]


@pytest.mark.parametrize(("step", "field"), [
    ({"escalate_after_hours": 0}, "steps.0.escalate_after_hours"),
    ({"escalate_after_hours": 1.5}, "steps.0.escalate_after_hours"),
    ({"escalate_after_hours": None, "escalate_to": {"kind": "manager"}},
     "steps.0.escalate_after_hours"),
    ({"escalate_to": {"kind": "team"}}, "steps.0.escalate_to.kind"),
    ({"escalate_to": {"kind": "user"}}, "steps.0.escalate_to.id"),
])
def test_bad_escalation_fields_are_named(step, field):
    definition = flow()
    definition["steps"][0].update(step)
    with pytest.raises(ValidationFailed) as err:
        domain.check_flow(definition)
    assert list(err.value.errors) == [field]


def test_the_rules_recipient_field_names_the_users_in_a_record_field():
    from services.rules.domain.rules import validate_definition
    from services.rules.usecases.recipients import recipients

    record = {"id": "i1", "approver_ids": ["a", "b", "a", None], "owner": "c"}
    assert recipients(None, ["field:approver_ids", "field:owner", "field:none"],
                      {"record": record}) == ["a", "b", "c"]
    problems = validate_definition({"trigger": {"type": "event", "event": "x.y"},
                                    "actions": [{"type": "notify", "to": ["field:"],
                                                 "title": "t"}]}, lambda _: None)
    assert list(problems) == ["actions.0.to.0"]
