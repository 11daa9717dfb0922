"""Sales numbers end to end over HTTP (gateway, sales, real broker): a custom field, an import
with bad rows (dry run report by row and field, then the real import with duplicates
skipped), the export of a filtered list, the reports, and custom fields in the OpenAPI
document."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

pytestmark = pytest.mark.e2e

TENCENT = "9144030071526726XG"


def tag() -> str:
    return uuid.uuid4().hex[:6]


def wait_done(system, location: str, user: str) -> dict:
    def finished():
        job = system.get(location, user=user).json()
        return job if job["status"] in ("done", "failed") else None

    return system.wait_for(finished, timeout=30, message=f"import {location} did not finish")


def upload(system, user: str, text: str, **form) -> object:
    return system.post("/imports", user=user, data={"entity": "customer", **form},
                       files={"file": ("客户.csv", text.encode("utf-8-sig"), "text/csv")})


def test_import_with_bad_rows_dry_run_then_import_then_export(system):
    t = tag()
    key = f"erp_{t}"
    created = system.post("/custom-fields", user="admin", json={
        "entity": "customer", "key": key, "label": f"ERP编码{t}", "type": "text",
        "regex": r"[A-Z]{2}\d{4}", "unique": True})
    assert created.status_code == 201, created.text
    refused = system.post("/custom-fields", user="zhangwei", json={
        "entity": "customer", "key": "x", "label": "x", "type": "text"})
    assert refused.status_code == 403

    text = (
        f"名称,统一社会信用代码,客户等级,电话,ERP编码{t}\n"
        f"深圳{t}腾讯计算机系统有限公司,{TENCENT},A,0755-86013388,SZ0001\n"
        f"杭州{t}云栖科技有限公司,91330100716105852X,Z,12,bad\n"
        f"北京{t}新程科技有限公司,,B,,BJ0002\n"
        ",,,,\n"
        " ,,C,,\n"
    )
    # importing is for admins and managers: a rep is refused before the file is read
    refused = upload(system, "zhangwei", text)
    assert refused.status_code == 403, refused.text
    dry = upload(system, "manager", text, dry_run="true")
    assert dry.status_code == 202, dry.text
    assert dry.headers["Location"] == f"/imports/{dry.json()['id']}"
    report = wait_done(system, dry.headers["Location"], "manager")
    assert report["dry_run"] is True and report["status"] == "done"
    # a dry run says what it would create, and that it created nothing
    assert (report["would_create"], report["created"], report["failed"],
            report["total_rows"]) == (2, 0, 2, 4)
    bad = {row["row"]: row["errors"] for row in report["bad_rows"]}
    assert set(bad) == {3, 6}
    assert set(bad[3]) == {"credit_code", "tier", "phone", f"custom.{key}"}
    assert bad[6] == {"name": ["is required"]}
    listed = system.get("/customers", user="manager", params={"q": t}).json()["items"]
    assert listed == []  # a dry run writes nothing

    real = upload(system, "manager", text)
    done = wait_done(system, real.headers["Location"], "manager")
    assert (done["created"], done["failed"], done["processed_rows"]) == (2, 2, 4)
    customers = system.get("/customers", user="manager", params={"q": t}).json()["items"]
    assert {c["custom"].get(key) for c in customers} == {"SZ0001", "BJ0002"}
    # lists filter on custom fields: custom.<key>[__op]=value
    found = system.get("/customers", user="manager",
                       params={"q": t, f"custom.{key}": "BJ0002"}).json()["items"]
    assert [c["custom"][key] for c in found] == ["BJ0002"]
    found = system.get("/customers", user="manager",
                       params={"q": t, f"custom.{key}__in": "SZ0001,BJ0002"}).json()["items"]
    assert len(found) == 2
    bad = system.get("/customers", user="zhangwei",
                     params={f"custom.{key}__near": "x", "colour": "red"})
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"colour"}
    bad = system.get("/customers", user="zhangwei", params={f"custom.{key}__near": "x"})
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {f"custom.{key}__near"}
    # another rep does not see the job
    assert system.get(real.headers["Location"], user="chenjing").status_code == 404

    again = upload(system, "manager", f"name,credit_code\n腾讯{t}计算机系统有限公司,{TENCENT}\n",
                   on_duplicate="skip")
    assert wait_done(system, again.headers["Location"], "manager")["skipped"] == 1

    exported = system.get("/exports/customers", user="manager",
                          params={"q": t, "format": "csv", f"custom.{key}": "SZ0001"})
    assert exported.status_code == 200, exported.text
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["ID", "名称", "统一社会信用代码"] and len(rows) == 2
    assert rows[1][2] == TENCENT
    xlsx = system.get("/exports/customers", user="manager", params={"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

    spec = system.get("/openapi.json").json()
    fields = spec["components"]["schemas"]["CustomFields"]["properties"]["customer"]
    assert "unique" in fields["properties"][key]["description"]


def test_unreadable_files_and_reports(system):
    bad = upload(system, "manager", "公司,电话\nA,1\n")
    assert bad.status_code == 422
    assert "header" in bad.json()["errors"]
    for path in ("/reports/funnel", "/reports/forecast", "/reports/forecast/accuracy",
                 "/reports/quota-performance", "/reports/channels",
                 "/reports/dormant-customers"):
        response = system.get(path, user="manager")
        assert response.status_code == 200, (path, response.text)
    wrong = system.get("/reports/forecast", user="manager", params={"custom.nope": "1"})
    assert wrong.status_code == 422 and "custom.nope" in wrong.json()["errors"]
    users = system.get("/users", user="admin").json()
    users = users["items"] if isinstance(users, dict) else users
    quota = system.put("/quotas", user="admin", json={
        "user_id": next(u["id"] for u in users if u["username"] == "zhangwei"),
        "period_kind": "month", "period_start": "2026-11-01", "amount": "100000"})
    assert quota.status_code == 200, quota.text
    assert system.put("/quotas", user="zhangwei", json={
        "user_id": "x", "period_kind": "month", "period_start": "2026-11-01",
        "amount": "1"}).status_code == 403


def test_report_ranges_patterns_and_snapshots_have_bounds(system):
    # the request that froze the sales service for 40 s is a 422 naming the filter
    frozen = system.get("/reports/forecast/accuracy", user="manager", params={
        "date_from": "0078-11-02", "date_to": "2000-01-01", "period_kind": "month"})
    assert frozen.status_code == 422, frozen.text
    assert frozen.headers["Content-Type"].startswith("application/problem+json")
    assert set(frozen.json()["errors"]) == {"date_from"}
    months = system.get("/reports/forecast/accuracy", user="manager", params={
        "date_from": "2024-01-01", "date_to": "2025-12-31", "period_kind": "month"})
    assert months.status_code == 422
    assert "at most 12 periods" in months.json()["errors"]["date_to"][0]
    # a pattern that backtracks catastrophically elsewhere is checked in linear time here
    t = tag()
    field = system.post("/custom-fields", user="admin", json={
        "entity": "customer", "key": f"redos_{t}", "label": f"ReDoS{t}", "type": "text",
        "regex": "(a+)+$"})
    assert field.status_code == 201, field.text
    slow = system.post("/customers", user="zhangwei", json={
        "name": f"正则{t}测试有限公司", "custom": {f"redos_{t}": "a" * 24 + "!"}})
    assert slow.status_code == 422, slow.text
    assert set(slow.json()["errors"]) == {f"custom.redos_{t}"}
    backref = system.post("/custom-fields", user="admin", json={
        "entity": "customer", "key": f"backref_{t}", "label": f"B{t}", "type": "text",
        "regex": r"(a)\1"})
    assert backref.status_code == 422 and set(backref.json()["errors"]) == {"regex"}
    assert system.get("/customers", user="zhangwei").status_code == 200
    # snapshots answer in the shape of every list
    assert system.post("/reports/forecast/snapshots", user="manager").status_code == 201
    page = system.get("/reports/forecast/snapshots", user="zhangwei", params={"limit": 1})
    assert page.status_code == 200, page.text
    assert set(page.json()) == {"items", "next_cursor"} and len(page.json()["items"]) == 1


def test_other_requests_are_answered_while_a_large_dry_run_and_reports_run(system):
    t = tag()
    mine = system.post("/customers", user="zhangwei", json={"name": f"北京{t}新程科技有限公司"})
    assert mine.status_code == 201, mine.text
    rows = "".join(f"{t}测试{i}号{i % 7}科技有限公司,0755-8601{i % 10000:04d},A\n"
                   for i in range(20000))
    job = upload(system, "manager", "名称,电话,客户等级\n" + rows, dry_run="true")
    assert job.status_code == 202, job.text
    answered = 0
    for _ in range(5):
        report = system.get("/reports/forecast/accuracy", user="manager", params={
            "date_from": "2024-01-01", "date_to": "2026-12-31"})
        assert report.status_code == 200, report.text
        got = system.get(f"/customers/{mine.json()['id']}", user="zhangwei")
        assert got.status_code == 200, got.text  # not a 503 from a starved service
        answered += 1
    assert answered == 5
    done = wait_done(system, job.headers["Location"], "manager")
    assert done["status"] == "done" and done["would_create"] + done["would_skip"] == 20000
