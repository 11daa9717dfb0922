"""The sales numbers (custom fields, quotas, funnel, forecast, snapshots, quota performance,
channels, dormant customers, drill-down, import and export) through the service's
entrypoints with nameko's worker_factory, on SQLite and PostgreSQL (migrated); no broker."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select, update

from services.sales.events import EVENT_SCHEMAS
from services.sales.models import Customer, outbox
from services.sales.numbers.domain import figures as numbers
from services.sales.numbers.queries import base as report_base
from services.sales.numbers.queries import forecast as forecast_queries
from services.sales.numbers.queries import stage_flow
from services.sales.service import SalesService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, NotFound, ValidationFailed
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}
REP_A = {"owner_ids": ["rep-a"]}
REP_B = {"owner_ids": ["rep-b"]}
TENCENT = "9144030071526726XG"
ALIBABA = "91330100716105852F"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_STAGE_FLOW_LAG_SECONDS", "0")
    return migrated_database(request, tmp_path, "sales")


@pytest.fixture
def make_service(database_url):
    engine = get_engine(database_url)

    def make(actor: str | None = "rep-a") -> SalesService:
        ctx = Context(correlation_id="corr-n", actor=actor)
        return service_worker(SalesService, engine, outbox, EVENT_SCHEMAS, ctx)

    make.engine = engine
    return make


def simple_pipeline(service) -> dict:
    """Stages without exit criteria, so tests move freely."""
    return service.create_pipeline({"name": "测试流程", "stages": [
        {"name": "初步接触", "probability": 10}, {"name": "方案", "probability": 50},
        {"name": "谈判", "probability": 80},
        {"name": "赢单", "probability": 100, "kind": "won"},
        {"name": "输单", "probability": 0, "kind": "lost"},
    ]})


def opportunity(service, pipeline, customer, amount, close, scope=REP_A, **extra) -> dict:
    return service.create_opportunity({
        "customer_id": customer["id"], "name": f"项目 {amount}", "amount": amount,
        "expected_close_date": close.isoformat(), "pipeline_id": pipeline["id"], **extra,
    }, scope=scope)


# -- custom fields ---------------------------------------------------------------------------


def test_custom_fields_are_defined_validated_on_write_unique_and_filterable(make_service):
    admin = make_service("admin")
    field = admin.define_custom_field({
        "entity": "customer", "key": "erp_code", "label": "ERP编码", "type": "text",
        "regex": r"[A-Z]{2}\d{4}", "unique": True,
    })
    admin.define_custom_field({"entity": "customer", "key": "employees", "label": "员工数",
                               "type": "number", "min": 1, "max": 100000})
    admin.define_custom_field({"entity": "customer", "key": "lines", "label": "产品线",
                               "type": "multi_choice", "options": ["MES", "ERP", "WMS"]})
    with pytest.raises(Conflict):
        admin.define_custom_field({"entity": "customer", "key": "erp_code", "label": "x",
                                   "type": "text"})
    with pytest.raises(ValidationFailed) as err:
        admin.define_custom_field({"entity": "lead", "key": "9x", "label": "", "type": "blob",
                                   "options": ["a"]})
    assert {"entity", "key", "label", "type"} <= set(err.value.errors)

    rep = make_service("rep-a")
    customer = rep.create_customer({"name": "苏州精工机械有限公司", "custom": {
        "erp_code": "SZ0001", "employees": 800, "lines": ["ERP", "MES"]}}, scope=REP_A)
    assert customer["custom"] == {"erp_code": "SZ0001", "employees": 800,
                                  "lines": ["MES", "ERP"]}
    with pytest.raises(ValidationFailed) as err:
        rep.create_customer({"name": "杭州云栖软件有限公司", "custom": {
            "erp_code": "bad", "employees": 0, "colour": "red"}}, scope=REP_A)
    assert set(err.value.errors) == {"custom.erp_code", "custom.employees", "custom.colour"}
    with pytest.raises(ValidationFailed) as err:
        rep.create_customer({"name": "杭州云栖软件有限公司", "custom": {"erp_code": "SZ0001"}},
                            scope=REP_A)
    assert "custom.erp_code" in err.value.errors
    other = rep.create_customer({"name": "杭州云栖软件有限公司",
                                 "custom": {"employees": 50, "lines": ["WMS"]}}, scope=REP_A)

    # filters: dormant customers accept custom-field filters (as does export)
    with make_service.engine.begin() as conn:
        conn.execute(update(Customer).values(
            created_at=datetime.now(UTC) - timedelta(days=90)))
    found = rep.dormant_customers(30, {"custom": {"employees__gte": 100}}, REP_A)
    assert [c["id"] for c in found["items"]] == [customer["id"]]
    found = rep.dormant_customers(30, {"custom": {"lines": "WMS"}}, REP_A)
    assert [c["id"] for c in found["items"]] == [other["id"]]
    with pytest.raises(ValidationFailed) as err:
        rep.dormant_customers(30, {"custom": {"nope": 1}}, REP_A)
    assert "custom.nope" in err.value.errors
    # ... and so do the lists
    listed = rep.list_customers({"custom": {"employees__lte": "100"}}, REP_A)["items"]
    assert [c["id"] for c in listed] == [other["id"]]
    listed = rep.list_customers({"custom": {"erp_code": "SZ0001", "lines__exists": "yes"}},
                                REP_A)["items"]
    assert [c["id"] for c in listed] == [customer["id"]]
    listed = rep.list_customers({"custom": {"lines": "ERP"}}, REP_A)["items"]
    assert [c["id"] for c in listed] == [customer["id"]]
    assert rep.list_customers({"custom": {"employees__gte": 5000}}, REP_A)["items"] == []
    with pytest.raises(ValidationFailed) as err:
        rep.list_customers({"custom": {"employees__gte": "many", "erp_code__near": "x"}}, REP_A)
    assert set(err.value.errors) == {"custom.employees__gte", "custom.erp_code__near"}

    # a required field added later is required on create; deactivated it no longer applies
    required = admin.define_custom_field({"entity": "customer", "key": "region_code",
                                          "label": "区域码", "type": "choice",
                                          "options": ["E", "S"], "required": True})
    with pytest.raises(ValidationFailed) as err:
        rep.create_customer({"name": "北京新程科技有限公司"}, scope=REP_A)
    assert err.value.errors == {"custom.region_code": ["is required"]}
    admin.update_custom_field(required["id"], {"active": False})
    rep.create_customer({"name": "北京新程科技有限公司"}, scope=REP_A)
    listed = admin.list_custom_fields("customer")
    assert [f["key"] for f in listed] == ["employees", "erp_code", "lines"]
    assert field["id"] in {f["id"] for f in listed}


# -- quotas, funnel, forecast, snapshots -----------------------------------------------------


def test_funnel_forecast_quota_snapshot_accuracy_and_drill_down(make_service):
    admin, rep = make_service("admin"), make_service("rep-a")
    pipeline = simple_pipeline(admin)
    stages = {s["name"]: s["id"] for s in pipeline["stages"]}
    customer = rep.create_customer({"name": "深圳市腾讯计算机系统有限公司",
                                    "credit_code": TENCENT}, scope=REP_A)
    today = report_base.today()
    quarter_end = numbers.period_end("quarter", numbers.period_start("quarter", today))
    close = today
    big = opportunity(rep, pipeline, customer, "100000", close, source="website")
    mid = opportunity(rep, pipeline, customer, "50000", close, source="website")
    small = opportunity(rep, pipeline, customer, "20000", close, source="trade_show")
    lost = opportunity(rep, pipeline, customer, "30000", close, source="trade_show")
    rep.move_opportunity(big["id"], stages["方案"], scope=REP_A)
    rep.move_opportunity(big["id"], stages["谈判"], scope=REP_A)
    rep.move_opportunity(mid["id"], stages["方案"], scope=REP_A)
    rep.move_opportunity(small["id"], stages["方案"], scope=REP_A)
    rep.move_opportunity(small["id"], stages["赢单"], reason="价格合适", scope=REP_A)
    rep.move_opportunity(lost["id"], stages["输单"], reason="预算取消", scope=REP_A)

    funnel = rep.funnel({"pipeline_id": pipeline["id"]}, REP_A)
    by_name = {s["name"]: s for s in funnel["stages"]}
    assert by_name["谈判"]["count"] == 1 and by_name["谈判"]["amount"] == "100000.00"
    assert by_name["方案"]["count"] == 1
    assert by_name["初步接触"]["reached"] == 4 and by_name["方案"]["reached"] == 3
    assert by_name["初步接触"]["conversion_to_next"] == "0.7500"
    assert by_name["方案"]["avg_days_in_stage"] is not None
    assert funnel["won"] == {"count": 1, "amount": "20000.00"}
    assert funnel["win_rate"] == "0.5000"
    assert funnel["loss_reasons"] == [{"reason": "预算取消", "count": 1, "amount": "30000.00"}]
    # the scope narrows every figure: another rep sees nothing
    other = make_service("rep-b").funnel({"pipeline_id": pipeline["id"]}, REP_B)
    assert sum(s["count"] for s in other["stages"]) == 0 and other["won"]["count"] == 0

    forecast = rep.forecast({"pipeline_id": pipeline["id"]}, REP_A)
    # open: 100000 x 80 % + 50000 x 50 %; won 20000
    assert forecast["totals"]["weighted"] == "125000.00"
    assert forecast["totals"]["commit"] == "120000.00"
    assert forecast["totals"]["best_case"] == "170000.00"
    assert forecast["by_owner"][0]["owner_id"] == "rep-a"

    records = rep.drill_down("funnel", {"pipeline_id": pipeline["id"]}, REP_A,
                             {"stage_id": stages["谈判"]})
    assert [r["id"] for r in records["items"]] == [big["id"]]
    lost_records = rep.drill_down("lost", {}, REP_A, {"reason": "预算取消"})
    assert [r["id"] for r in lost_records["items"]] == [lost["id"]]
    channels = {c["source"]: c for c in rep.channel_conversion({}, REP_A)["items"]}
    assert channels["trade_show"]["won"] == 1 and channels["trade_show"]["lost"] == 1
    assert channels["website"]["open"] == 2

    month = numbers.period_start("month", today)
    admin.set_quota({"user_id": "rep-a", "period_kind": "month",
                     "period_start": month.isoformat(), "amount": "10000"})
    quota = admin.set_quota({"user_id": "rep-a", "period_kind": "month",
                             "period_start": month.isoformat(), "amount": "40000"})
    assert quota["amount"] == "40000.00" and len(admin.list_quotas({})) == 1
    with pytest.raises(ValidationFailed) as err:
        admin.set_quota({"user_id": "rep-a", "period_kind": "quarter",
                         "period_start": (month + timedelta(days=1)).isoformat(),
                         "amount": "1"})
    assert "period_start" in err.value.errors
    performance = rep.quota_performance({"period_kind": "month"}, REP_A)["items"]
    assert performance[0]["won"] == "20000.00"
    assert performance[0]["attainment_percent"] == "50.00"

    snapshot = admin.take_forecast_snapshot()
    assert snapshot["opportunities"] == 2
    # the big one slips to the next quarter
    rep.update_opportunity(big["id"], {"expected_close_date":
                                       (quarter_end + timedelta(days=5)).isoformat()},
                           scope=REP_A)
    accuracy = rep.forecast_accuracy({"period_kind": "quarter"}, REP_A)
    current = accuracy["periods"][-1]
    assert current["actual_won"] == "20000.00"
    taken = current["snapshots"][-1]
    assert taken["weighted"] == "125000.00"
    assert taken["slipped"]["count"] == 1 and taken["slipped"]["amount"] == "100000.00"
    slipped = rep.drill_down("slippage", {}, REP_A, {
        "run_id": taken["run_id"], "period_kind": "quarter",
        "period_start": current["start"]})
    assert [r["id"] for r in slipped["items"]] == [big["id"]]
    # the weekly timer does not take a second one in the same week
    admin.forecast_snapshot_timer()
    listed = admin.list_forecast_snapshots()
    assert set(listed) == {"items", "next_cursor"}  # the shape of every list
    assert len(listed["items"]) == 1 and listed["next_cursor"] is None

    insights = rep.customer_insights(customer["id"])
    assert insights["rfm"]["segment"] == "new" and insights["rfm"]["frequency"] == 1
    assert 0 <= insights["health"]["score"] <= 100 and insights["health"]["explanation"]


def test_dormant_customers_use_the_last_follow_up(make_service):
    rep = make_service("rep-a")
    quiet = rep.create_customer({"name": "广州白云电器设备有限公司"}, scope=REP_A)
    busy = rep.create_customer({"name": "厦门海辰储能科技有限公司"}, scope=REP_A)
    with make_service.engine.begin() as conn:
        conn.execute(update(Customer).values(created_at=datetime.now(UTC) - timedelta(days=60)))
    rep.record_followup({"kind": "call", "customer_id": busy["id"]}, scope=REP_A)
    result = rep.dormant_customers(30, {}, REP_A)
    assert [c["id"] for c in result["items"]] == [quiet["id"]] and result["total"] == 1
    assert result["items"][0]["last_followup_at"] is None
    assert make_service("rep-b").dormant_customers(30, {}, REP_B)["total"] == 0


# -- import and export -----------------------------------------------------------------------


def b64(text: str | bytes) -> str:
    raw = text.encode("utf-8-sig") if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


CUSTOMERS_CSV = (
    "名称,统一社会信用代码,客户等级,电话,标签,员工数\n"
    f"深圳市腾讯计算机系统有限公司,{TENCENT},A,0755-86013388,重点;华南,50000\n"
    "杭州某某科技有限公司,91330100716105852X,Z,123,,abc\n"  # bad code, tier, phone, number
    ",,,,,\n"  # blank: skipped silently
    "  ,,B,,,\n"  # no name
    f"阿里巴巴（中国）有限公司,{ALIBABA},B,,,\n"
)


def test_import_customers_dry_run_reports_every_bad_row_then_imports(make_service):
    admin = make_service("admin")
    admin.define_custom_field({"entity": "customer", "key": "employees", "label": "员工数",
                               "type": "number"})
    rep = make_service("rep-a")
    job = rep.start_import("customer", "客户.csv", b64(CUSTOMERS_CSV), {"dry_run": True},
                           REP_A)
    assert job["status"] == "queued" and job["total_rows"] == 4
    assert rep.run_import_jobs() == 1
    report = rep.get_import(job["id"], REP_A)
    assert report["status"] == "done" and report["dry_run"] is True
    # a dry run says what it would do, and that it created nothing
    assert (report["would_create"], report["would_update"], report["would_skip"]) == (2, 0, 0)
    assert (report["created"], report["updated"], report["failed"]) == (0, 0, 2)
    bad = {row["row"]: row["errors"] for row in report["bad_rows"]}
    assert set(bad) == {3, 5}
    assert set(bad[3]) == {"credit_code", "tier", "phone", "custom.employees"}
    assert "check digit" in bad[3]["credit_code"][0]
    assert bad[5] == {"name": ["is required"]}
    with make_service.engine.connect() as conn:
        assert conn.execute(select(Customer.id)).all() == []  # nothing written

    job = rep.start_import("customer", "客户.csv", b64(CUSTOMERS_CSV), {}, REP_A)
    rep.run_import_jobs()
    done = rep.get_import(job["id"], REP_A)
    assert (done["created"], done["failed"], done["processed_rows"]) == (2, 2, 4)
    page = rep.list_customers({}, REP_A)["items"]
    tencent = next(c for c in page if c["credit_code"] == TENCENT)
    assert tencent["owner_id"] == "rep-a" and tencent["tags"] == ["重点", "华南"]
    assert tencent["phone"] == "+8675586013388" and tencent["custom"] == {"employees": 50000}
    events = [json.loads(e) for e in _outbox(make_service.engine)]
    assert not any(e["event_type"] == "customer_created" for e in events)  # one summary only
    summary = [e["data"] for e in events if e["event_type"] == "customers_imported"]
    assert len(summary) == 1 and summary[0]["job_id"] == job["id"]
    assert (summary[0]["created"], summary[0]["failed"]) == (2, 2)
    assert {tencent["id"]} < set(summary[0]["created_ids"])

    # again with skip: the same credit code and a close name are duplicates
    again = rep.start_import("customer", "again.csv", b64(
        "name,credit_code,industry\n"
        f"腾讯计算机系统（深圳）有限公司,{TENCENT},互联网\n"
        "阿里巴巴(中国)有限公司,,电商\n"
        "全新客户有限公司,,制造\n"), {"on_duplicate": "skip"}, REP_A)
    rep.run_import_jobs()
    result = rep.get_import(again["id"], REP_A)
    assert (result["created"], result["skipped"]) == (1, 2)
    updated = rep.start_import("customer", "again.csv", b64(
        f"name,credit_code,industry\n深圳腾讯,{TENCENT},互联网\n"), {"on_duplicate": "update"},
        REP_A)
    rep.run_import_jobs()
    assert rep.get_import(updated["id"], REP_A)["updated"] == 1
    assert rep.get_customer(tencent["id"], REP_A)["industry"] == "互联网"
    # another rep cannot read the job
    with pytest.raises(NotFound):
        make_service("rep-b").get_import(job["id"], REP_B)


def _outbox(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(select(outbox.c.envelope)).scalars().all()


def test_import_contacts_from_xlsx_and_export_both_formats(make_service):
    rep = make_service("rep-a")
    customer = rep.create_customer({"name": "阿里巴巴（中国）有限公司", "credit_code": ALIBABA},
                                   scope=REP_A)
    book = Workbook()
    sheet = book.active
    sheet.append(["姓名", "客户名称", "手机", "邮箱", "生日", "角色"])
    sheet.append(["王芳", "阿里巴巴(中国)有限公司", 13800138000, "WF@Example.cn",
                  datetime(1990, 5, 1), "决策人"])
    sheet.append(["李雷", "不存在的公司", "138", "not-mail", "1990-13-01", "boss"])
    buffer = io.BytesIO()
    book.save(buffer)
    job = rep.start_import("contact", "联系人.xlsx", b64(buffer.getvalue()), {}, REP_A)
    assert job["format"] == "xlsx"
    rep.run_import_jobs()
    report = rep.get_import(job["id"], REP_A)
    assert (report["created"], report["failed"]) == (1, 1)
    assert set(report["bad_rows"][0]["errors"]) == {"customer", "phone", "email", "birthday",
                                                    "role"}
    contacts = rep.list_contacts({"customer_id": customer["id"]}, REP_A)["items"]
    assert contacts[0]["phone"] == "+8613800138000" and contacts[0]["email"] == "wf@example.cn"
    assert contacts[0]["role"] == "decision_maker" and contacts[0]["birthday"] == "1990-05-01"

    exported = rep.export("customer", {}, REP_A, "csv")
    text = base64.b64decode(exported["content_b64"]).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("ID,名称,统一社会信用代码")
    assert ALIBABA in text and exported["filename"].endswith(".csv")
    xlsx = rep.export("contact", {}, REP_A, "xlsx")
    rows = list(load_workbook(io.BytesIO(base64.b64decode(xlsx["content_b64"]))).active
                .iter_rows(values_only=True))
    assert rows[1][1] == "王芳" and len(rows) == 2
    assert make_service("rep-b").export("customer", {}, REP_B, "csv")["content_b64"]
    # the export reads back in: a dry run of it finds the customer as a duplicate
    back = rep.start_import("customer", exported["filename"],
                            exported["content_b64"], {"dry_run": True}, REP_A)
    rep.run_import_jobs()
    assert rep.get_import(back["id"], REP_A)["would_skip"] == 1


def test_a_file_that_cannot_be_read_is_refused_at_once(make_service):
    rep = make_service("rep-a")
    with pytest.raises(ValidationFailed) as err:
        rep.start_import("customer", "x.csv", b64("公司,电话\nA,1\n"), {}, REP_A)
    assert "header" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        rep.start_import("customer", "x.xlsx", b64("not a zip"), {}, REP_A)
    assert "file" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        rep.start_import("lead", "x.csv", b64("name\nA\n"), {"on_duplicate": "merge"}, REP_A)
    assert {"on_duplicate"} <= set(err.value.errors)
    # GBK (Excel on Chinese Windows) is read too
    job = rep.start_import("customer", "gbk.csv", b64("名称\n测试公司\n".encode("gbk")), {},
                           REP_A)
    rep.run_import_jobs()
    assert rep.get_import(job["id"], REP_A)["created"] == 1


def test_stage_flow_months_and_edge_days_add_up_like_days(make_service):
    """The funnel reads whole months from the monthly roll-up and edge days from the daily
    table: for any period the sums equal the daily table's."""
    from sqlalchemy import func as sa_func
    from sqlalchemy.orm import Session

    from services.sales.numbers.models import StageFlow

    rep = make_service("rep-a")
    pipeline = simple_pipeline(make_service("admin"))
    customer = rep.create_customer({"name": "华为技术有限公司"}, scope=REP_A)
    created = [opportunity(rep, pipeline, customer, str(1000 * (i + 1)), report_base.today())
               for i in range(6)]
    stage = pipeline["stages"][1]["id"]
    for item in created[:4]:
        rep.move_opportunity(item["id"], stage, scope=REP_A)
    spread = [date(2025, 1, 31), date(2025, 2, 1), date(2025, 2, 15), date(2025, 3, 31),
              date(2025, 4, 1), date(2025, 5, 20)]
    from services.sales.models import Opportunity

    with make_service.engine.begin() as conn:
        for item, day in zip(created, spread, strict=True):
            conn.execute(update(Opportunity).where(Opportunity.id == item["id"]).values(
                created_at=datetime(day.year, day.month, day.day, 6, tzinfo=UTC)))
    with Session(make_service.engine) as session, session.begin():
        stage_flow.fold_stage_flow(session)
    periods = [(None, None), (date(2025, 2, 1), date(2025, 3, 31)),
               (date(2025, 1, 31), date(2025, 4, 1)), (date(2025, 2, 2), date(2025, 2, 20)),
               (None, date(2025, 2, 15)), (date(2025, 3, 31), None),
               (date(2025, 1, 15), date(2025, 2, 1))]
    with Session(make_service.engine) as session:
        for first, last in periods:
            got = stage_flow.flow_by_stage(session, pipeline["id"], None,
                                          {"date_from": first, "date_to": last})
            query = select(StageFlow.stage_id, sa_func.sum(StageFlow.reached)).where(
                StageFlow.pipeline_id == pipeline["id"])
            if first:
                query = query.where(StageFlow.cohort_day >= first)
            if last:
                query = query.where(StageFlow.cohort_day <= last)
            expected = dict(session.execute(query.group_by(StageFlow.stage_id)).all())
            assert {k: int(v["reached"]) for k, v in got.items() if v["reached"]} == {
                k: int(v) for k, v in expected.items() if v}, (first, last)


def test_rollups_kept_by_triggers_match_the_rows_and_a_rebuild(make_service):
    """Every figure read from the trigger-kept roll-up equals the same figure computed from the
    opportunities (a custom-field filter that matches all forces that path), after creates,
    moves, wins, losses, amount, owner and close-date changes; a rebuild changes nothing."""
    from sqlalchemy.orm import Session

    from services.sales.numbers.models import OpportunityRollup
    from services.sales.numbers.queries import rollups

    admin, rep = make_service("admin"), make_service("rep-a")
    admin.define_custom_field({"entity": "opportunity", "key": "note", "label": "备注",
                               "type": "text"})
    pipeline = simple_pipeline(admin)
    stages = {s["name"]: s["id"] for s in pipeline["stages"]}
    customer = rep.create_customer({"name": "北京小米科技有限责任公司"}, scope=REP_A)
    today = report_base.today()
    made = [opportunity(rep, pipeline, customer, str(10000 + i * 1111), today +
                        timedelta(days=i * 20), source=("web", "expo", None)[i % 3])
            for i in range(9)]
    rep.move_opportunity(made[0]["id"], stages["方案"], scope=REP_A)
    rep.move_opportunity(made[0]["id"], stages["赢单"], reason="成交", scope=REP_A)
    rep.move_opportunity(made[1]["id"], stages["输单"], reason="价格", scope=REP_A)
    rep.move_opportunity(made[2]["id"], stages["输单"], reason="价格", scope=REP_A)
    rep.move_opportunity(made[3]["id"], stages["谈判"], scope=REP_A)
    rep.update_opportunity(made[3]["id"], {"amount": "77777.77"}, scope=REP_A)
    rep.update_opportunity(made[4]["id"], {"expected_close_date": None}, scope=REP_A)
    from services.sales.models import Opportunity

    with make_service.engine.begin() as conn:  # any write counts, not only the service's
        conn.execute(update(Opportunity).where(Opportunity.id == made[5]["id"])
                     .values(owner_id="rep-b"))
        conn.execute(update(Opportunity).where(Opportunity.id == made[6]["id"])
                     .values(created_at=datetime.now(UTC) - timedelta(days=90)))

    everything = {"note__exists": False}
    year = {"date_from": today - timedelta(days=400), "date_to": today + timedelta(days=400)}
    for filters in ({"pipeline_id": pipeline["id"]}, {"pipeline_id": pipeline["id"], **year}):
        fast, slow = (rep.funnel(filters, ALL),
                      rep.funnel({**_iso(filters), "custom": everything}, ALL))
        assert fast == slow
    for filters in ({}, year):
        assert rep.forecast(_iso(filters), ALL) == rep.forecast(
            {**_iso(filters), "custom": everything}, ALL)
        assert rep.channel_conversion(_iso(filters), ALL) == rep.channel_conversion(
            {**_iso(filters), "custom": everything}, ALL)

    def rollup_rows() -> set:
        with Session(make_service.engine) as session:
            return {(r.kind, r.grain, r.stage_id, r.owner_id, r.day, r.key, r.n,
                     Decimal(r.amount), int(r.seconds))
                    for r in session.scalars(select(OpportunityRollup)) if r.n}

    kept = rollup_rows()
    with make_service.engine.begin() as conn:
        rollups.rebuild(conn)
    assert rollup_rows() == kept


def _iso(filters: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in filters.items()}


def test_an_import_whose_process_died_is_resumed_after_its_committed_rows(make_service):
    from services.sales.numbers.models import ImportJob

    rep = make_service("rep-a")
    job = rep.start_import("customer", "c.csv", b64(
        "名称\n甲公司有限公司\n乙科技有限公司\n丙贸易有限公司\n"), {}, REP_A)
    with make_service.engine.begin() as conn:  # as if a process took it, did one row, died
        conn.execute(update(ImportJob).where(ImportJob.id == job["id"]).values(
            status="running", processed_rows=1, created=1,
            heartbeat_at=datetime.now(UTC) - timedelta(minutes=10)))
    assert rep.run_import_jobs() == 1
    done = rep.get_import(job["id"], REP_A)
    assert (done["status"], done["processed_rows"], done["created"]) == ("done", 3, 3)
    names = {c["name"] for c in rep.list_customers({}, REP_A)["items"]}
    assert names == {"乙科技有限公司", "丙贸易有限公司"}  # the first row was the dead one's
    # a running job that still beats is left alone
    other = rep.start_import("customer", "d.csv", b64("名称\n丁公司\n"), {}, REP_A)
    with make_service.engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == other["id"]).values(
            status="running", heartbeat_at=datetime.now(UTC)))
    assert rep.run_import_jobs() == 0


# -- limits: report ranges, statement timeouts, patterns, imports, fairness ---------------------


def test_report_ranges_and_periods_are_bounded_with_a_422_naming_the_filter(make_service):
    rep = make_service("rep-a")
    # the request that froze the service: 1,922 years by month
    with pytest.raises(ValidationFailed) as err:
        rep.forecast_accuracy({"date_from": "0078-11-02", "date_to": "2000-01-01",
                               "period_kind": "month"}, REP_A)
    assert set(err.value.errors) == {"date_from"}
    assert "1900-01-01" in err.value.errors["date_from"][0]
    with pytest.raises(ValidationFailed) as err:
        rep.funnel({"date_from": "2001-01-01", "date_to": "2026-12-31"}, REP_A)
    assert set(err.value.errors) == {"date_to"}
    assert f"{numbers.MAX_RANGE_DAYS:,} days" in err.value.errors["date_to"][0]
    # within the range, the number of periods is bounded per report
    with pytest.raises(ValidationFailed) as err:
        rep.forecast_accuracy({"date_from": "2024-01-01", "date_to": "2025-06-30",
                               "period_kind": "month"}, REP_A)
    message = err.value.errors["date_to"][0]
    assert "at most 12 periods" in message and "18" in message
    accuracy = rep.forecast_accuracy({"date_from": "2024-01-01", "date_to": "2025-06-30",
                                      "period_kind": "quarter"}, REP_A)
    assert len(accuracy["periods"]) == 6
    with pytest.raises(ValidationFailed) as err:
        rep.forecast({"date_to": "2199-12-31"}, REP_A)  # from this quarter: too long
    assert set(err.value.errors) == {"date_to"}
    forecast = rep.forecast({"date_from": "2024-01-01", "date_to": "2028-12-31"}, REP_A)
    assert len(forecast["by_period"]) == 60
    with pytest.raises(ValidationFailed) as err:
        rep.quota_performance({"date_from": "2020-01-01", "date_to": "2025-12-31"}, REP_A)
    assert set(err.value.errors) == {"date_to"}


def test_a_report_statement_past_its_timeout_is_a_422_and_the_service_goes_on(
    make_service, monkeypatch
):
    from sqlalchemy import text

    from services.sales.numbers.usecases import reports

    monkeypatch.setattr(reports, "REPORT_STATEMENT_SECONDS", 0.2)

    def runaway(session, filters, scope):
        return session.execute(text(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) FROM c")).scalar()

    monkeypatch.setattr(forecast_queries, "forecast", runaway)
    rep = make_service("rep-a")
    with pytest.raises(ValidationFailed) as err:
        rep.forecast({}, REP_A)
    assert set(err.value.errors) == {"filters"} and "0.2 s" in err.value.errors["filters"][0]
    # the connection is usable and unbounded by the report's limit afterwards
    assert rep.list_customers({}, REP_A)["items"] == []


def test_custom_field_patterns_match_in_linear_time_and_uniqueness_names_nobody(make_service):
    admin = make_service("admin")
    # the pattern that blocked the service: accepted, since RE2 does not backtrack
    admin.define_custom_field({"entity": "customer", "key": "code", "label": "代码",
                               "type": "text", "regex": "(a+)+$", "unique": True})
    for refused in (r"(a)\1", r"(?=a)a", "a{1000}{1000}", "(unclosed"):
        with pytest.raises(ValidationFailed) as err:
            admin.define_custom_field({"entity": "customer", "key": "other", "label": "x",
                                       "type": "text", "regex": refused})
        assert set(err.value.errors) == {"regex"}, refused
        assert "RE2" in err.value.errors["regex"][0]
    rep_a, rep_b = make_service("rep-a"), make_service("rep-b")
    with pytest.raises(ValidationFailed) as err:
        rep_a.create_customer({"name": "苏州精工机械有限公司",
                               "custom": {"code": "a" * 1999 + "b"}}, scope=REP_A)
    assert "does not match" in err.value.errors["custom.code"][0]
    hidden = rep_a.create_customer({"name": "苏州精工机械有限公司",
                                    "custom": {"code": "aaaa"}}, scope=REP_A)
    with pytest.raises(ValidationFailed) as err:
        rep_b.create_customer({"name": "杭州云栖软件有限公司", "custom": {"code": "aaaa"}},
                              scope=REP_B)
    message = err.value.errors["custom.code"][0]
    assert "unique" in message
    assert hidden["id"] not in str(err.value.errors) and "aaaa" not in str(err.value.errors)


def test_forecast_snapshots_page_with_a_cursor(make_service):
    admin = make_service("admin")
    taken = [admin.take_forecast_snapshot()["id"] for _ in range(3)]
    first = admin.list_forecast_snapshots(limit=2)
    assert [s["id"] for s in first["items"]] == taken[:0:-1] and first["next_cursor"]
    rest = admin.list_forecast_snapshots(limit=2, cursor=first["next_cursor"])
    assert [s["id"] for s in rest["items"]] == [taken[0]] and rest["next_cursor"] is None
    with pytest.raises(ValidationFailed) as err:
        admin.list_forecast_snapshots(limit=0)
    assert set(err.value.errors) == {"limit"}


def test_imports_have_per_user_limits_that_they_name(make_service, monkeypatch):
    from services.sales.numbers.usecases import importing

    rep = make_service("rep-a")
    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 40)
    with pytest.raises(ValidationFailed) as err:
        rep.start_import("customer", "c.csv", b64("名称\n" + "测试科技有限公司\n" * 5), {}, REP_A)
    assert "at most 40 B" not in err.value.errors["file"][0]
    assert "(40 bytes)" in err.value.errors["file"][0]
    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 10_000)
    monkeypatch.setattr(importing, "MAX_ROWS", 2)
    with pytest.raises(ValidationFailed) as err:
        rep.start_import("customer", "c.csv", b64("名称\nA公司\nB公司\nC公司\n"), {}, REP_A)
    assert "at most 2 rows" in err.value.errors["file"][0]
    monkeypatch.setattr(importing, "MAX_ROWS", 100)
    monkeypatch.setattr(importing, "MAX_ACTIVE_JOBS", 1)
    rep.start_import("customer", "c.csv", b64("名称\nA公司\n"), {"dry_run": True}, REP_A)
    with pytest.raises(Conflict) as err:
        rep.start_import("customer", "c.csv", b64("名称\nB公司\n"), {}, REP_A)
    assert err.value.extra["limit"] == "max_active_jobs" and "at most 1" in str(err.value)
    # another user has limits of their own
    make_service("rep-b").start_import("customer", "c.csv", b64("名称\nB公司\n"), {}, REP_B)
    assert rep.run_import_jobs() == 2
    monkeypatch.setattr(importing, "MAX_ROWS_PER_DAY", 3)
    rep.start_import("customer", "c.csv", b64("名称\nC公司\nD公司\n"), {}, REP_A)
    rep.run_import_jobs()
    with pytest.raises(Conflict) as err:
        rep.start_import("customer", "c.csv", b64("名称\nE公司\n"), {}, REP_A)
    assert err.value.extra["limit"] == "max_rows_per_day" and err.value.extra["rows_today"] == 3


def test_an_import_neither_updates_nor_names_a_customer_the_importer_cannot_see(make_service):
    rep_a, rep_b = make_service("rep-a"), make_service("rep-b")
    hidden = rep_a.create_customer({"name": "深圳市腾讯计算机系统有限公司",
                                    "credit_code": TENCENT, "industry": "互联网"}, scope=REP_A)
    for mode in ("update", "create"):
        job = rep_b.start_import("customer", "c.csv", b64(
            f"名称,统一社会信用代码,行业\n腾讯,{TENCENT},游戏\n"), {"on_duplicate": mode}, REP_B)
        rep_b.run_import_jobs()
        report = rep_b.get_import(job["id"], REP_B)
        assert (report["failed"], report["updated"], report["created"]) == (1, 0, 0), mode
        errors = report["bad_rows"][0]["errors"]
        assert "cannot see" in errors["credit_code"][0]
        assert hidden["id"] not in json.dumps(errors) and "深圳" not in json.dumps(errors)
    assert rep_a.get_customer(hidden["id"], REP_A)["industry"] == "互联网"
    # its owner may update it
    job = rep_a.start_import("customer", "c.csv", b64(
        f"名称,统一社会信用代码,行业\n腾讯,{TENCENT},游戏\n"), {"on_duplicate": "update"}, REP_A)
    rep_a.run_import_jobs()
    assert rep_a.get_import(job["id"], REP_A)["updated"] == 1
    assert rep_a.get_customer(hidden["id"], REP_A)["industry"] == "游戏"


def test_other_rpcs_are_answered_while_a_heavy_import_or_report_runs(make_service):
    """eventlet runs one greenlet at a time: an import or report that never yielded would run
    to its end before any other RPC of the process got an answer."""
    import eventlet

    rep, other = make_service("rep-a"), make_service("rep-b")
    known = other.create_customer({"name": "北京新程科技有限公司"}, scope=REP_B)
    rows = "".join(f"测试{i}号{i % 7}科技有限公司,0755-8601{i % 10000:04d},A\n"
                   for i in range(3000))
    rep.start_import("customer", "big.csv", b64("名称,电话,客户等级\n" + rows),
                     {"dry_run": True}, REP_A)
    running = eventlet.spawn(rep.run_import_jobs)
    eventlet.sleep(0)  # the import starts and runs until it yields
    assert other.get_customer(known["id"], REP_B)["id"] == known["id"]
    assert not running.dead  # answered while the import was still going
    assert running.wait() == 1

    report = eventlet.spawn(rep.forecast_accuracy, {"date_from": "2024-01-01",
                                                    "date_to": "2026-12-31"}, REP_A)
    eventlet.sleep(0)
    assert other.get_customer(known["id"], REP_B)["id"] == known["id"]
    assert not report.dead
    assert len(report.wait()["periods"]) == 12
