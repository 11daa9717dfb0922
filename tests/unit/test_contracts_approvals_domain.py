"""Approval flows: routing, 会签/或签/quorum, reject to the previous step, delegation,
out-of-office, self-approval, fallback and the terms hash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.contracts.domain import approvals as ap
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def directory() -> ap.Directory:
    return ap.Directory(
        users={
            "rep": {"role": "sales_rep", "team_id": "east"},
            "mgr": {"role": "manager", "team_id": "sales_hq"},
            "dir": {"role": "director", "team_id": "board"},
            "ceo": {"role": "admin", "team_id": "top"},
            "legal1": {"role": "legal", "team_id": "legal"},
            "legal2": {"role": "legal", "team_id": "legal"},
            "legal3": {"role": "legal", "team_id": "legal"},
            "gone": {"role": "legal", "team_id": "legal", "active": False},
        },
        teams={"east": {"manager_id": "mgr"}, "sales_hq": {"manager_id": "dir"},
               "board": {"manager_id": "ceo"}, "legal": {"manager_id": None}})


def flow(steps, **extra):
    return {"id": "f1", "name": "f", "record_type": "deal", "position": 0, "steps": steps,
            **extra}


def submit(the_flow, terms=None, submitter="rep", people=None):
    return ap.start(the_flow, "deal", "d1", terms or {"amount": "100"}, 1, submitter,
                    people or directory(), NOW, "i1")


def test_first_matching_flow_applies() -> None:
    flows = [
        {"id": "small", "position": 2, "condition": "", "steps": []},
        {"id": "big", "position": 1, "condition": "discount_percent > 10 and amount >= 100000",
         "steps": []},
        {"id": "legal", "position": 0, "condition": '"legal" in changed_clauses', "steps": []},
    ]
    assert ap.choose_flow(flows, {"discount_percent": "12", "amount": "200000",
                                  "changed_clauses": []})["id"] == "big"
    assert ap.choose_flow(flows, {"discount_percent": Decimal("12"), "amount": 200000,
                                  "changed_clauses": ["legal"]})["id"] == "legal"
    assert ap.choose_flow(flows, {"discount_percent": 5, "amount": 1})["id"] == "small"
    assert ap.choose_flow(flows[1:2], {"amount": 1}) is None


def test_decimal_strings_compare_as_numbers() -> None:
    assert ap.holds("amount >= 100000", {"amount": "100000.00"})
    assert not ap.holds("amount >= 100000", {"amount": "99999.99"})


def test_bad_flow_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        ap.check_flow(flow([{"mode": "most", "approvers": [{"kind": "user", "id": "mgr"}]},
                            {"mode": "quorum", "condition": "import os",
                             "approvers": [{"kind": "manager_chain", "levels": 0}]}]))
    assert set(caught.value.errors) == {"steps.0.mode", "steps.1.quorum", "steps.1.condition",
                                        "steps.1.approvers.0.levels"}


def test_manager_chain_role_team_and_step_condition() -> None:
    state, events = submit(flow([
        {"approvers": [{"kind": "manager_chain", "levels": 3}], "mode": "all"},
        {"approvers": [{"kind": "role", "role": "legal"}], "mode": "any",
         "condition": "amount > 1000"},
        {"approvers": [{"kind": "team", "id": "legal"}], "mode": "quorum", "quorum": 2},
    ], cc=[{"kind": "manager"}]))
    assert [s["approvers"] for s in state["steps"]] == [
        ["mgr", "dir", "ceo"], [], ["legal1", "legal2", "legal3"]]
    assert state["steps"][1]["status"] == "skipped"
    assert state["cc"] == ["mgr"]
    assert events == [("approval_requested", {**ap.summary(state), "step": 0,
                                              "step_name": "step 1", "mode": "all",
                                              "approver_ids": ["mgr", "dir", "ceo"],
                                              "cc_ids": ["mgr"]})]


def test_countersign_needs_everyone_then_or_sign_first_answer_decides() -> None:
    state, _ = submit(flow([
        {"approvers": [{"kind": "user", "id": "mgr"}, {"kind": "user", "id": "dir"}],
         "mode": "all"},
        {"approvers": [{"kind": "role", "role": "legal"}], "mode": "any"},
    ]))
    assert ap.decide(state, "mgr", "approve", "ok", NOW) == []
    events = ap.decide(state, "dir", "approve", "ok", NOW)
    assert [e[0] for e in events] == ["approval_step_completed", "approval_requested"]
    assert events[1][1]["approver_ids"] == ["legal1", "legal2", "legal3"]
    events = ap.decide(state, "legal2", "approve", "fine", NOW)
    assert [e[0] for e in events] == ["approval_step_completed", "approval_approved"]
    assert state["status"] == "approved"
    with pytest.raises(PreconditionFailed):
        ap.decide(state, "legal1", "approve", None, NOW)
    actions = [(t["actor"], t["action"], t["step"]) for t in state["trail"]]
    assert actions == [("rep", "submitted", None), ("mgr", "approve", 0),
                       ("dir", "approve", 0), ("legal2", "approve", 1),
                       (None, "approved", None)]
    assert all(t["terms_hash"] == state["terms_hash"] and t["terms_version"] == 1
               for t in state["trail"])


def test_countersign_one_reject_rejects_to_submitter() -> None:
    state, _ = submit(flow([{"approvers": [{"kind": "user", "id": "mgr"},
                                           {"kind": "user", "id": "dir"}]}]))
    events = ap.decide(state, "dir", "reject", "too cheap", NOW)
    assert [e[0] for e in events] == ["approval_step_completed", "approval_rejected"]
    assert events[1][1]["comment"] == "too cheap"
    assert state["status"] == "rejected"


def test_quorum_two_of_three() -> None:
    state, _ = submit(flow([{"approvers": [{"kind": "role", "role": "legal"}],
                             "mode": "quorum", "quorum": 2}]))
    assert ap.decide(state, "legal1", "reject", "no", NOW) == []
    assert ap.decide(state, "legal2", "approve", None, NOW) == []
    events = ap.decide(state, "legal3", "approve", None, NOW)
    assert state["status"] == "approved" and events[-1][0] == "approval_approved"
    state, _ = submit(flow([{"approvers": [{"kind": "role", "role": "legal"}],
                             "mode": "quorum", "quorum": 2}]))
    ap.decide(state, "legal1", "reject", None, NOW)
    ap.decide(state, "legal2", "reject", None, NOW)
    assert state["status"] == "rejected"  # the quorum can no longer be reached


def test_reject_to_previous_step_reopens_it() -> None:
    state, _ = submit(flow([
        {"approvers": [{"kind": "user", "id": "mgr"}]},
        {"approvers": [{"kind": "user", "id": "dir"}], "on_reject": "previous"},
    ]))
    ap.decide(state, "mgr", "approve", None, NOW)
    events = ap.decide(state, "dir", "reject", "ask mgr again", NOW)
    assert [e[0] for e in events] == ["approval_step_completed", "approval_requested"]
    assert state["status"] == "pending" and state["step_index"] == 0
    assert ap.pending_approvers(state) == ["mgr"]
    ap.decide(state, "mgr", "approve", "checked", NOW)
    ap.decide(state, "dir", "approve", None, NOW)
    assert state["status"] == "approved"


def test_delegation_and_out_of_office() -> None:
    people = directory()
    people.users["mgr"].update(out_of_office_until=NOW + timedelta(days=2), delegate_id="dir")
    state, events = submit(flow([{"approvers": [{"kind": "manager"}]}]), people=people)
    assert events[0][1]["approver_ids"] == ["dir"]
    assert "out of office: mgr -> dir" in state["steps"][0]["notes"]
    events = ap.delegate(state, "dir", "ceo", "you decide", people, NOW)
    assert events[0][1]["approver_ids"] == ["ceo"] and events[0][1]["delegated_by"] == "dir"
    with pytest.raises(NotFound):
        ap.decide(state, "dir", "approve", None, NOW)
    with pytest.raises(ValidationFailed):  # only to a user the directory knows as active
        ap.delegate(state, "ceo", "nobody-known", None, people, NOW)
    with pytest.raises(ValidationFailed):
        ap.delegate(state, "ceo", "gone", None, people, NOW)
    ap.decide(state, "ceo", "approve", None, NOW)
    assert state["status"] == "approved"
    # out of office in the past: no substitution
    people.users["mgr"]["out_of_office_until"] = NOW - timedelta(days=1)
    state, events = submit(flow([{"approvers": [{"kind": "manager"}]}]), people=people)
    assert events[0][1]["approver_ids"] == ["mgr"]


def test_nobody_approves_their_own_submission_unless_allowed() -> None:
    both = [{"kind": "user", "id": "mgr"}, {"kind": "user", "id": "dir"}]
    state, events = submit(flow([{"approvers": both}]), submitter="mgr")
    assert events[0][1]["approver_ids"] == ["dir"]
    with pytest.raises(Forbidden):
        ap.decide(state, "mgr", "approve", None, NOW)
    with pytest.raises(ValidationFailed):
        ap.delegate(state, "dir", "mgr", None, directory(), NOW)
    state, events = submit(flow([{"approvers": both}], allow_self_approval=True),
                           submitter="mgr")
    assert events[0][1]["approver_ids"] == ["mgr", "dir"]


def test_fallback_is_named_and_without_it_submission_is_refused() -> None:
    nobody = [{"kind": "role", "role": "cfo"}]
    state, events = submit(flow([{"approvers": nobody}], fallback_approver="ceo"))
    assert events[0][1]["approver_ids"] == ["ceo"]
    assert state["steps"][0]["fallback"] == "ceo"
    assert "no approver could be resolved: fallback ceo" in state["steps"][0]["notes"]
    with pytest.raises(ValidationFailed) as caught:
        submit(flow([{"approvers": [{"kind": "user", "id": "gone"}]}]))
    assert list(caught.value.errors) == ["steps.0.approvers"]


def test_recall_only_by_submitter() -> None:
    state, _ = submit(flow([{"approvers": [{"kind": "user", "id": "mgr"}]}]))
    with pytest.raises(Forbidden):
        ap.recall(state, "mgr", None, NOW)
    assert ap.recall(state, "rep", "oops", NOW)[0][0] == "approval_recalled"
    assert state["status"] == "recalled"


def test_decision_on_other_terms_is_a_conflict() -> None:
    state, _ = submit(flow([{"approvers": [{"kind": "user", "id": "mgr"}]}]))
    with pytest.raises(Conflict):
        ap.decide(state, "mgr", "approve", None, NOW, seen_hash="0" * 64)


def test_verify_voids_when_terms_changed() -> None:
    terms = {"amount": Decimal("100.00"), "lines": [{"sku": "A", "qty": 2}]}
    state, _ = ap.start(flow([{"approvers": [{"kind": "user", "id": "mgr"}]}]), "deal", "d1",
                        terms, 3, "rep", directory(), NOW, "i1")
    ap.decide(state, "mgr", "approve", None, NOW)
    assert ap.verify(state, {"lines": [{"qty": 2, "sku": "A"}], "amount": Decimal("100")},
                     NOW) == []
    events = ap.verify(state, {**terms, "amount": Decimal("90")}, NOW)
    assert events[0][0] == "approval_voided" and "changed after approval" in events[0][1]["reason"]
    assert state["status"] == "voided" and state["trail"][-1]["action"] == "voided"


def test_canonical_json_sorts_keys_and_normalises_decimals() -> None:
    assert ap.canonical_json({"b": 1, "a": {"d": 2, "c": [Decimal("1.50")]}}) == \
        '{"a":{"c":["1.5"],"d":2},"b":1}'
    assert ap.terms_hash({"x": Decimal("1.0")}) == ap.terms_hash({"x": Decimal("1.00")}) \
        == ap.terms_hash({"x": Decimal("1")}) == ap.terms_hash({"x": "1"})
    assert ap.canonical_json({"x": Decimal("1E+1")}) == '{"x":"10"}'
    assert ap.terms_hash({"x": Decimal("1.01")}) != ap.terms_hash({"x": Decimal("1.1")})
    assert ap.canonical_json({"名": "甲"}) == '{"名":"甲"}'
    with pytest.raises(ValueError):
        ap.canonical_json({"x": 1.0})
