"""A contract's files over HTTP with the whole system running: the owner uploads a scan
(multipart), lists it, downloads it byte for byte as an attachment with its Chinese name;
another team's rep gets 404 everywhere; a file over the limit is a 413 naming the limit; a
signed contract keeps its files."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import pytest

from services.contracts import contract as wire
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, OTHER_REP = "zhangwei", "chenjing"
SCAN = b"%PDF-1.4 " + "合同正本".encode() * 2000


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def test_a_contracts_files_over_http(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    customer = ok(system.post("/customers", user=REP, json={"name": f"南京{mark}电气有限公司"}),
                  201)
    contract = ok(system.post("/contracts", user=REP, json={
        "customer_id": customer["id"], "title": f"电气柜采购 {mark}", "amount": "88000"}), 201)
    base = f"/contracts/{contract['id']}/attachments"

    r = system.post(base, user=REP, files={"file": ("合同扫描件.pdf", SCAN, "application/pdf")})
    created = ok(r, 201)
    assert r.headers["Location"] == f"{base}/{created['id']}"
    assert (created["filename"], created["size"], created["content_type"]) == \
        ("合同扫描件.pdf", len(SCAN), "application/pdf")
    again = system.post(base, user=REP, files={"file": ("copy.pdf", SCAN, "application/pdf")})
    assert ok(again, 409)["attachment_id"] == created["id"]

    listed = ok(system.get(base, user=REP))["items"]
    assert [a["id"] for a in listed] == [created["id"]]
    r = system.get(f"{base}/{created['id']}", user=REP)
    assert r.status_code == 200 and r.content == SCAN
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert unquote(r.headers["Content-Disposition"].split("UTF-8''")[1]) == "合同扫描件.pdf"

    # another team's rep: like a contract that does not exist
    for method, path, kwargs in (
            ("GET", base, {}), ("GET", f"{base}/{created['id']}", {}),
            ("DELETE", f"{base}/{created['id']}", {}),
            ("POST", base, {"files": {"file": ("x.txt", b"x", "text/plain")}})):
        r = system.request(method, path, user=OTHER_REP, **kwargs)
        assert r.status_code == 404, (method, path, r.text)

    # too large: the attachment's own limit, not the 1 MiB of JSON bodies
    big = b"x" * (wire.MAX_ATTACHMENT_BYTES + 1)
    r = system.post(base, user=REP, files={"file": ("big.bin", big, "application/octet-stream")})
    problem = ok(r, 413)
    assert problem["max_file_bytes"] == wire.MAX_ATTACHMENT_BYTES

    # signed: the files stay (412 on removal), a countersigned scan may join
    ok(system.post(f"/contracts/{contract['id']}/sign", user=REP))
    assert system.delete(f"{base}/{created['id']}", user=REP).status_code == 412
    signed_scan = ("回签件.pdf", b"%PDF signed", "application/pdf")
    ok(system.post(base, user=REP, files={"file": signed_scan}), 201)
    assert len(ok(system.get(base, user=REP))["items"]) == 2
