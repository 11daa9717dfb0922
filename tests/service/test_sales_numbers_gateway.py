"""The gateway's sales-numbers routes with a recording RPC pool (no broker, no sales service):
who may import, the import's real size limit in the 413, the snapshot list's shape, the
export's documented and checked filters, and the limits in the OpenAPI document."""

from __future__ import annotations

import io

from services.gateway.resources import sales_numbers
from services.sales.numbers import contract as import_rules
from tests.service import conftest_gateway as gateway_fixtures
from tests.service.conftest_gateway import FakeRpc, assert_problem, auth

# the gateway fixtures this module uses, by name
gateway_env = gateway_fixtures.gateway_env
fake_rpc = gateway_fixtures.fake_rpc
make_app = gateway_fixtures.make_app
app = gateway_fixtures.app
client = gateway_fixtures.client
org = gateway_fixtures.org

JOB = {"id": "job-1", "status": "queued", "total_rows": 1}


def upload(client, org, username: str, content: bytes, **form):
    return client.post(
        "/imports", headers=auth(org, username),
        data={"entity": "customer", **form, "file": (io.BytesIO(content), "客户.csv")},
        content_type="multipart/form-data")


def test_only_admins_and_managers_import(client, org, fake_rpc: FakeRpc):
    fake_rpc.on("sales", "start_import", JOB)
    refused = upload(client, org, "zhangwei", "名称\n测试公司\n".encode())
    body = assert_problem(refused, 403)
    assert "admin" in body["detail"] and "manager" in body["detail"]
    assert not [c for c in fake_rpc.calls if c["method"] == "start_import"]
    for username in ("manager", "admin"):
        accepted = upload(client, org, username, "名称\n测试公司\n".encode(), dry_run="true")
        assert accepted.status_code == 202, accepted.get_data(as_text=True)
        assert accepted.headers["Location"] == "/imports/job-1"
        call = fake_rpc.last
        assert call["method"] == "start_import" and call["kwargs"]["options"]["dry_run"] is True
        assert call["kwargs"]["options"]["owner_id"] == org[username]["id"]


def test_a_too_large_import_is_a_413_naming_the_import_limit(client, org, fake_rpc: FakeRpc):
    fake_rpc.on("sales", "start_import", JOB)
    limit = import_rules.MAX_FILE_BYTES
    # one byte over: the request is within the multipart allowance, the file is not
    over = upload(client, org, "manager", b"x" * (limit + 1))
    body = assert_problem(over, 413)
    assert body["max_file_bytes"] == limit and f"{limit:,}" in body["detail"]
    assert "1 MiB" not in body["detail"]
    # far over: refused from Content-Length before the body is read
    far = upload(client, org, "manager", b"x" * (sales_numbers.MAX_UPLOAD_BYTES + 10))
    assert assert_problem(far, 413)["max_file_bytes"] == limit
    assert not [c for c in fake_rpc.calls if c["method"] == "start_import"]
    # a rep is told 403, not 413: the role is checked first
    assert_problem(upload(client, org, "zhangwei", b"x" * (limit + 1)), 403)


def test_forecast_snapshots_answer_one_page_shape(client, org, fake_rpc: FakeRpc):
    page = {"items": [{"id": 2, "taken_at": "2026-11-30T00:00:00+00:00", "week": "2026-W49",
                       "trigger": "manual", "from": "2026-10-01", "to": "2027-03-31"}],
            "next_cursor": "Ig=="}
    fake_rpc.on("sales", "list_forecast_snapshots", page)
    response = client.get("/reports/forecast/snapshots", headers=auth(org, "zhangwei"),
                          query_string={"limit": 1})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == page
    assert fake_rpc.last["kwargs"] == {"limit": 1, "cursor": None}
    assert_problem(client.get("/reports/forecast/snapshots", headers=auth(org, "zhangwei"),
                              query_string={"limit": 0}), 422)


def test_export_filters_are_checked_per_entity(client, org, fake_rpc: FakeRpc):
    fake_rpc.on("sales", "export", {"filename": "customers.csv",
                                    "content_type": "text/csv; charset=utf-8",
                                    "content_b64": "SUQK"})
    ok = client.get("/exports/customers", headers=auth(org, "zhangwei"),
                    query_string={"tier": "A", "q": "腾讯", "custom.erp": "SZ0001"})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert fake_rpc.last["kwargs"]["filters"] == {"q": "腾讯", "tier": "A",
                                                  "custom": {"erp": "SZ0001"}}
    assert fake_rpc.last["kwargs"]["format"] == "csv"
    wrong = assert_problem(client.get("/exports/customers", headers=auth(org, "zhangwei"),
                                      query_string={"role": "user"}), 422)
    assert set(wrong["errors"]) == {"role"}
    unknown = client.get("/exports/contacts", headers=auth(org, "zhangwei"),
                         query_string={"colour": "red"})
    assert unknown.status_code in (400, 422) and "colour" in unknown.get_json()["errors"]
    bad_format = client.get("/exports/contacts", headers=auth(org, "zhangwei"),
                            query_string={"format": "pdf"})
    assert "format" in assert_problem(bad_format, 422)["errors"]


def test_the_openapi_document_states_the_limits_and_export_filters(client):
    spec = client.get("/openapi.json").get_json()
    export = spec["paths"]["/exports/{entity}"]["get"]
    names = {p["name"] for p in export["parameters"] if p["in"] == "query"}
    assert {"format", "q", "tier", "role", "close_from", "status"} <= names
    imports = spec["paths"]["/imports"]["post"]
    assert {"202", "403", "409", "413", "422"} <= set(imports["responses"])
    assert f"{import_rules.MAX_FILE_BYTES:,}" in imports["responses"]["413"]["description"]
    assert f"{import_rules.MAX_ROWS:,}" in imports["responses"]["202"]["description"]
    accuracy = spec["paths"]["/reports/forecast/accuracy"]["get"]
    date_to = next(p for p in accuracy["parameters"] if p["name"] == "date_to")
    assert "at most" in date_to["description"]
    snapshots = spec["paths"]["/reports/forecast/snapshots"]["get"]["responses"]["200"]
    schema = snapshots["content"]["application/json"]["schema"]
    assert "items" in str(schema) or "$ref" in schema
