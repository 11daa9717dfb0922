"""A contract's files with nameko's worker_factory (the real sales worker behind it) over
SQLite and PostgreSQL: attached by whoever sees the contract, listed and downloaded byte for
byte, the same file once, removed only from a draft, nothing attached while in approval, and
another team's rep told 404."""

from __future__ import annotations

import base64
import time

import pytest

from services.contracts import contract as wire
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service import test_contracts_contracts_service as contracts_tests
from tests.service.test_contracts_contracts_service import REP_A, REP_B
from tests.service.test_contracts_overdue_service import events_of

sessions = contracts_tests.sessions
rpc = contracts_tests.rpc

SCAN = "签字盖章版".encode() * 100


def a_contract(contracts, sales) -> dict:
    customer = sales.create_customer({"name": f"常州附件{time.monotonic_ns()}"}, scope=REP_A)
    return contracts.create_contract({"title": "设备采购", "customer_id": customer["id"],
                                      "amount": "5000"}, scope=REP_A)


def attach(contracts, contract_id: str, content: bytes = SCAN, scope=REP_A,
           filename: str = "C:\\scans\\合同扫描件.pdf") -> dict:
    return contracts.add_contract_attachment(contract_id, {
        "filename": filename, "content_type": "application/pdf",
        "content": base64.b64encode(content).decode()}, scope=scope)


def test_attached_listed_downloaded_and_removed_from_a_draft(rpc):
    contracts, sales, engine = rpc
    c = a_contract(contracts, sales)
    first = attach(contracts, c["id"])
    assert (first["filename"], first["size"], first["content_type"]) == \
        ("合同扫描件.pdf", len(SCAN), "application/pdf")  # only the name's last part
    with pytest.raises(Conflict) as same:
        attach(contracts, c["id"])
    assert same.value.extra["attachment_id"] == first["id"]
    second = attach(contracts, c["id"], b"annex", filename="附件二.txt")
    listed = contracts.list_contract_attachments(c["id"], scope=REP_A)["items"]
    assert [a["id"] for a in listed] == [first["id"], second["id"]]
    assert "content" not in listed[0]
    got = contracts.get_contract_attachment(c["id"], first["id"], scope=REP_A)
    assert base64.b64decode(got["content"]) == SCAN
    removed = contracts.remove_contract_attachment(c["id"], second["id"], scope=REP_A)
    assert removed["id"] == second["id"]
    assert [a["id"] for a in contracts.list_contract_attachments(c["id"], scope=REP_A)["items"]] \
        == [first["id"]]
    assert [e["attachment"]["id"] for e in events_of(engine, "contract_attachment_added")] == \
        [first["id"], second["id"]]
    assert [e["attachment"]["id"] for e in events_of(engine, "contract_attachment_removed")] == \
        [second["id"]]


def test_a_signed_contracts_files_stay_and_new_ones_may_join(rpc):
    contracts, sales, _ = rpc
    c = a_contract(contracts, sales)
    kept = attach(contracts, c["id"])
    contracts.sign_contract(c["id"], scope=REP_A)
    with pytest.raises(PreconditionFailed):
        contracts.remove_contract_attachment(c["id"], kept["id"], scope=REP_A)
    scan = attach(contracts, c["id"], b"the countersigned scan")  # after signing: allowed
    assert scan["size"] == len(b"the countersigned scan")


def test_nothing_is_attached_or_removed_while_in_approval(rpc):
    contracts, sales, _ = rpc
    c = a_contract(contracts, sales)
    kept = attach(contracts, c["id"])
    contracts.define_approval_flow({"record_type": "contract", "name": "合同审批", "steps": [
        {"name": "经理", "approvers": [{"kind": "user", "id": "mgr-1"}], "mode": "any"}]})
    submitted = contracts.submit_contract(c["id"], scope=REP_A)
    assert submitted["status"] == "in_approval"
    for call in (lambda: attach(contracts, c["id"], b"late"),
                 lambda: contracts.remove_contract_attachment(c["id"], kept["id"],
                                                              scope=REP_A)):
        with pytest.raises(Conflict) as locked:
            call()
        assert locked.value.extra["reason"] == "in_approval"


def test_others_get_404_and_bad_files_a_422_naming_the_field(rpc):
    contracts, sales, _ = rpc
    c = a_contract(contracts, sales)
    first = attach(contracts, c["id"])
    for call in (lambda: attach(contracts, c["id"], b"x", scope=REP_B),
                 lambda: contracts.list_contract_attachments(c["id"], scope=REP_B),
                 lambda: contracts.get_contract_attachment(c["id"], first["id"], scope=REP_B),
                 lambda: contracts.get_contract_attachment(c["id"], "nope", scope=REP_A)):
        with pytest.raises(NotFound):
            call()
    bad = [({"content": "not base64!"}, "content"), ({"content": ""}, "content"),
           ({"filename": "../"}, "filename"), ({"content_type": "pdf"}, "content_type")]
    for change, field in bad:
        data = {"filename": "a.pdf", "content_type": "application/pdf",
                "content": base64.b64encode(b"x").decode(), **change}
        with pytest.raises(ValidationFailed) as refused:
            contracts.add_contract_attachment(c["id"], data, scope=REP_A)
        assert list(refused.value.extra["errors"]) == [field]
    assert wire.MAX_ATTACHMENT_BYTES >= 1024 * 1024


def test_an_annex_attached_after_the_approval_voids_it_at_signing(rpc):
    contracts, sales, _ = rpc
    c = a_contract(contracts, sales)
    contracts.define_approval_flow({"record_type": "contract", "name": "合同审批", "steps": [
        {"name": "经理", "approvers": [{"kind": "user", "id": "mgr-1"}], "mode": "any"}]})
    approval = contracts.current_approval("contract", c["id"])
    assert approval is None
    contracts.submit_contract(c["id"], scope=REP_A)
    approval = contracts.current_approval("contract", c["id"])
    contracts.decide_approval(approval["id"], "mgr-1", {"decision": "approve"})
    attach(contracts, c["id"], b"an annex nobody approved")
    with pytest.raises(Conflict) as refused:
        contracts.sign_contract(c["id"], scope=REP_A)
    assert refused.value.extra["reason"] == "approval_invalid"
