"""The approvals entrypoints of the contracts service with nameko's worker_factory, on SQLite and
PostgreSQL: the directory from gateway events, flows, submission, 会签 then 或签, the lock, the
trail, the inbox, recall, delegation, out-of-office, verification of the terms."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import outbox
from services.contracts.service import ContractsService
from services.contracts.usecases.approvals import require_unlocked
from shared.context import Context
from shared.db import get_engine
from shared.envelope import utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.service.workers import migrated_database, service_worker

USERS = [("rep", "sales_rep", "east"), ("mgr", "manager", "east"),
         ("dir", "manager", "hq"), ("legal1", "legal", "legal"), ("legal2", "legal", "legal"),
         ("admin", "admin", None)]
TEAMS = [("east", "mgr"), ("hq", "admin"), ("legal", None)]


def envelope(event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "version": 1,
            "occurred_at": "2026-12-03T00:00:00+00:00", "producer": "gateway",
            "correlation_id": "c", "causation_id": None, "actor": None, "causation_depth": 0,
            "data": data}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return migrated_database(request, tmp_path, "contracts")


@pytest.fixture
def service(database_url):
    engine = get_engine(database_url)
    worker = service_worker(ContractsService, engine, outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-1", actor="admin"))
    worker.engine = engine
    for team_id, manager in TEAMS:
        worker.on_gateway_team_changed(envelope("team_changed", {
            "team": {"id": team_id, "name": team_id, "manager_id": manager}}))
    for user_id, role, team in USERS:
        worker.on_gateway_user_changed(envelope("user_changed", {
            "user": {"id": user_id, "username": user_id, "role": role, "team_id": team,
                     "active": True}}))
    return worker


def events_of(engine, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e["data"] for e in map(json.loads, rows) if e["event_type"] == event_type]


FLOW = {
    "record_type": "deal", "name": "big deals", "position": 0,
    "condition": "discount_percent > 10 and amount >= 100000",
    "steps": [
        {"name": "会签", "mode": "all",
         "approvers": [{"kind": "manager"}, {"kind": "user", "id": "dir"}]},
        {"name": "或签", "mode": "any", "approvers": [{"kind": "role", "role": "legal"}]},
    ],
    "cc": [{"kind": "user", "id": "admin"}],
}
TERMS = {"discount_percent": "12", "amount": "150000.00", "lines": [{"sku": "A", "qty": 3}]}


def submit(service, record_id="d-1", terms=None, submitter="rep"):
    return service.submit_for_approval({"record_type": "deal", "record_id": record_id,
                                        "terms": terms or TERMS, "terms_version": 1}, submitter)


def test_countersign_then_or_sign_with_the_lock_and_trail(service):
    flow = service.define_approval_flow(FLOW)
    assert [f["id"] for f in service.list_approval_flows("deal")] == [flow["id"]]
    instance = submit(service)
    assert instance["status"] == "pending"
    assert sorted(instance["pending_approvers"]) == ["dir", "mgr"]
    requested = events_of(service.engine, "approval_requested")
    assert requested[0]["approver_ids"] == ["mgr", "dir"] and requested[0]["cc_ids"] == ["admin"]

    with service.db.begin() as session, pytest.raises(Conflict) as locked:
        require_unlocked(session, "deal", "d-1")
    assert locked.value.extra["approval_id"] == instance["id"]
    with pytest.raises(Conflict):
        submit(service)

    inbox = service.list_my_approvals("mgr")
    assert [item["id"] for item in inbox["items"]] == [instance["id"]]
    assert service.list_my_approvals("legal1")["items"] == []
    with pytest.raises(NotFound):
        service.get_approval(instance["id"], "legal1")
    with pytest.raises(Forbidden):
        service.decide_approval(instance["id"], "rep", {"decision": "approve"})

    after = service.decide_approval(instance["id"], "mgr",
                                    {"decision": "approve", "comment": "同意",
                                     "terms_hash": instance["terms_hash"]})
    assert after["pending_approvers"] == ["dir"]
    after = service.decide_approval(instance["id"], "dir", {"decision": "approve"})
    assert after["current_step"] == 1 and after["pending_approvers"] == ["legal1", "legal2"]
    assert service.list_my_approvals("legal2")["items"][0]["id"] == instance["id"]
    done = service.decide_approval(instance["id"], "legal2",
                                   {"decision": "approve", "comment": "法务无异议"})
    assert done["status"] == "approved"
    assert service.list_my_approvals("legal1")["items"] == []
    with service.db.begin() as session:
        require_unlocked(session, "deal", "d-1")  # no longer pending: unlocked

    trail = service.get_approval(instance["id"], "legal2")["trail"]
    assert [(t["actor"], t["action"], t["comment"]) for t in trail] == [
        ("rep", "submitted", None), ("mgr", "approve", "同意"), ("dir", "approve", None),
        ("legal2", "approve", "法务无异议"), (None, "approved", None)]
    assert {(t["terms_hash"], t["terms_version"]) for t in trail} == {
        (instance["terms_hash"], 1)}
    assert [e["outcome"] for e in events_of(service.engine, "approval_step_completed")] == [
        "approved", "approved"]
    assert events_of(service.engine, "approval_approved")[0]["instance_id"] == instance["id"]

    # the approved terms verify; changed terms void the approval and say so
    # over RPC the decimals are already strings: compared as sent (key order does not count)
    same = {"lines": [{"qty": 3, "sku": "A"}], "amount": "150000.00", "discount_percent": "12"}
    assert service.verify_approval("deal", "d-1", same)["valid"] is True
    changed = service.verify_approval("deal", "d-1", {**TERMS, "discount_percent": "20"})
    assert changed["valid"] is False and changed["status"] == "voided"
    assert "changed after approval" in changed["reason"]
    voided = events_of(service.engine, "approval_voided")
    assert voided[0]["instance_id"] == instance["id"]
    assert service.get_approval(instance["id"], "rep")["status"] == "voided"


def test_no_matching_flow_and_bad_flow_are_422_naming_the_field(service):
    service.define_approval_flow(FLOW)
    with pytest.raises(ValidationFailed) as caught:
        submit(service, terms={"discount_percent": "5", "amount": "10"})
    assert list(caught.value.errors) == ["record_type"]
    with pytest.raises(ValidationFailed) as caught:
        service.define_approval_flow({**FLOW, "steps": [{"mode": "quorum", "approvers": [
            {"kind": "user", "id": "mgr"}]}]})
    assert list(caught.value.errors) == ["steps.0.quorum"]
    with pytest.raises(ValidationFailed) as caught:
        submit(service, terms={"amount": 1.5})
    assert list(caught.value.errors) == ["terms"]


def test_reject_recall_delegate_and_out_of_office(service):
    service.define_approval_flow(FLOW)
    first = submit(service, "d-2")
    rejected = service.decide_approval(first["id"], "dir", {"decision": "reject",
                                                           "comment": "折扣太大"})
    assert rejected["status"] == "rejected"
    assert events_of(service.engine, "approval_rejected")[0]["comment"] == "折扣太大"

    second = submit(service, "d-2")  # a rejected record may be submitted again
    with pytest.raises(Forbidden):
        service.recall_approval(second["id"], "mgr")
    assert service.recall_approval(second["id"], "rep", "改价")["status"] == "recalled"

    service.set_approval_absence("mgr", {"delegate_id": "admin",
                                         "until": (utcnow() + timedelta(days=1)).isoformat()})
    third = submit(service, "d-3")
    assert sorted(third["pending_approvers"]) == ["admin", "dir"]
    delegated = service.delegate_approval(third["id"], "dir",
                                          {"to_user": "legal1", "comment": "请代批"})
    assert sorted(delegated["pending_approvers"]) == ["admin", "legal1"]
    with pytest.raises(NotFound):
        service.decide_approval(third["id"], "dir", {"decision": "approve"})
    assert service.list_my_approvals("legal1")["items"][0]["id"] == third["id"]
    assert events_of(service.engine, "approval_requested")[-1]["approver_ids"] == ["legal1"]


def test_fallback_is_named_and_no_fallback_refuses(service):
    service.define_approval_flow({**FLOW, "condition": None, "steps": [
        {"approvers": [{"kind": "role", "role": "cfo"}]}], "fallback_approver": "admin"})
    instance = submit(service, "d-4")
    assert instance["pending_approvers"] == ["admin"]
    assert instance["steps"][0]["fallback"] == "admin"
    flow = service.list_approval_flows("deal")[0]
    updated = service.update_approval_flow(flow["id"], {
        **FLOW, "condition": None, "steps": [{"approvers": [{"kind": "role", "role": "cfo"}]}]})
    assert updated["version"] == 2
    with pytest.raises(ValidationFailed) as caught:
        submit(service, "d-5")
    assert list(caught.value.errors) == ["steps.0.approvers"]


def test_verify_voids_a_pending_approval_and_unlocks_the_record(service):
    service.define_approval_flow(FLOW)
    instance = submit(service, "d-6")
    verdict = service.verify_approval("deal", "d-6", TERMS)
    assert verdict == {"valid": False, "status": "pending", "approval_id": instance["id"],
                       "reason": "still pending"}
    verdict = service.verify_approval("deal", "d-6", {**TERMS, "amount": "1.00"})
    assert verdict["status"] == "voided" and "changed after submission" in verdict["reason"]
    assert service.list_my_approvals("mgr")["items"] == []
    with service.db.begin() as session:
        require_unlocked(session, "deal", "d-6")
    assert submit(service, "d-6")["status"] == "pending"


def test_concurrent_submissions_of_one_record_leave_one_pending(service):
    service.define_approval_flow(FLOW)

    def attempt(_):
        try:
            return submit(service, "d-7")["id"]
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert sorted(outcomes).count("conflict") == 3, outcomes
    with service.db.begin() as session, pytest.raises(Conflict):
        require_unlocked(session, "deal", "d-7")


def test_submitted_box_lists_my_own_submissions_paged(service):
    service.define_approval_flow(FLOW)
    first = submit(service, "d-1")
    second = submit(service, "d-2")
    other = submit(service, "d-3", submitter="mgr")
    service.recall_approval(first["id"], "rep", None)  # any status stays in the box

    mine = service.list_my_approvals("rep", box="submitted")
    assert [item["id"] for item in mine["items"]] == [second["id"], first["id"]]
    assert {item["status"] for item in mine["items"]} == {"pending", "recalled"}
    assert all(item["submitter"] == "rep" for item in mine["items"])
    assert mine["next_cursor"] is None
    page = service.list_my_approvals("rep", limit=1, box="submitted")
    assert [item["id"] for item in page["items"]] == [second["id"]]
    rest = service.list_my_approvals("rep", cursor=page["next_cursor"], limit=1,
                                     box="submitted")
    assert [item["id"] for item in rest["items"]] == [first["id"]]
    # an approver sees only their own submission there, never the ones they answer
    assert [item["id"] for item in service.list_my_approvals("mgr", box="submitted")["items"]
            ] == [other["id"]]
    assert second["id"] in [item["id"] for item in service.list_my_approvals("mgr")["items"]]
    assert service.list_my_approvals("rep")["items"] == []  # the inbox is still the default
    with pytest.raises(ValidationFailed) as bad:
        service.list_my_approvals("rep", box="everything")
    assert list(bad.value.errors) == ["box"]
