"""The sales service's entrypoints with nameko's worker_factory: a real database (SQLite, and
PostgreSQL where reachable, both migrated) and the real outbox recorder; no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.sales.events import EVENT_SCHEMAS
from services.sales.models import Customer, StageHistory, outbox
from services.sales.numbers.models import CustomFieldDefinition
from services.sales.service import SalesService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}
REP_A = {"owner_ids": ["rep-a"]}
REP_B = {"owner_ids": ["rep-b"]}
MANAGER = {"owner_ids": ["manager", "rep-a", "rep-b"]}
# A valid unified social credit code (check digit Y... computed by GB 32100).
CREDIT_CODE = "91350100M000100Y43"
LEAD = {
    "id": "lead-1", "name": "李雷", "company": "苏州精工机械有限公司", "title": "采购总监",
    "email": "li.lei@jinggong.cn", "phone": "+8613800138000", "source": "trade_show",
    "region": "华东", "industry": "制造业", "product_interest": ["MES"], "campaign": "工博会2026",
    "attributes": {}, "status": "qualified", "owner_id": "rep-a",
}


# The leads service as sales asks it for a lead to convert: what `known` was given last.
LEADS: dict[str, dict] = {}


def known(lead: dict) -> str:
    """Make the (fake) leads service answer `lead`; its id, for a `convert_lead` call."""
    LEADS[lead["id"]] = lead
    return lead["id"]


class FakeLeads:
    """`get_lead.call_async(...).result()`, as the sales service calls the leads service."""

    def __init__(self) -> None:
        self.get_lead = self
        self.asked: list[tuple[str, dict]] = []

    def call_async(self, lead_id: str, scope: dict) -> FakeLeads:
        self.asked.append((lead_id, scope))
        self._lead_id = lead_id
        return self

    def result(self) -> dict:
        if self._lead_id not in LEADS:
            raise NotFound(f"lead {self._lead_id} not found", {"field": "lead_id"})
        return LEADS[self._lead_id]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return migrated_database(request, tmp_path, "sales")


@pytest.fixture
def make_service(database_url):
    engine = get_engine(database_url)
    LEADS.clear()

    def make(actor: str | None = "rep-a") -> SalesService:
        ctx = Context(correlation_id="corr-1", actor=actor)
        return service_worker(SalesService, engine, outbox, EVENT_SCHEMAS, ctx,
                              leads=FakeLeads())

    make.engine = engine
    return make


def events_of(engine, event_type: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    envelopes = [json.loads(row) for row in rows]
    return [e for e in envelopes if event_type is None or e["event_type"] == event_type]


def stage_ids(service: SalesService) -> dict[str, str]:
    names = ("qualification", "needs", "proposal", "negotiation", "won", "lost")
    return dict(zip(names, (s["id"] for s in service.get_pipeline()["stages"]), strict=True))


def new_customer(service: SalesService, scope=REP_A, **fields) -> dict:
    return service.create_customer({"name": "上海阿克米机械制造有限公司", **fields}, scope=scope)


# -- customers -------------------------------------------------------------------------------


def test_create_customer_records_the_event_with_the_callers_correlation(make_service):
    service = make_service()
    customer = new_customer(service, credit_code=" 91350100m000100y43 ", tags=["VIP", "vip"],
                            tier="A")
    assert customer["credit_code"] == CREDIT_CODE
    assert customer["owner_id"] == "rep-a" and customer["lifecycle_stage"] == "prospect"
    assert customer["tags"] == ["VIP"]
    [event] = events_of(make_service.engine, "customer_created")
    assert event["data"]["customer"]["id"] == customer["id"]
    assert event["correlation_id"] == "corr-1" and event["actor"] == "rep-a"


def test_bad_credit_code_names_the_field_and_the_check_digit(make_service):
    with pytest.raises(ValidationFailed) as err:
        new_customer(make_service(), credit_code="91350100M000100Y44")
    assert "check digit" in err.value.errors["credit_code"][0]


def test_duplicates_by_credit_code_and_by_close_name(make_service):
    service = make_service()
    first = new_customer(service, credit_code=CREDIT_CODE)
    with pytest.raises(Conflict) as err:
        service.create_customer({"name": "别的名字", "credit_code": CREDIT_CODE}, scope=REP_A)
    assert err.value.extra["existing_id"] == first["id"]
    assert err.value.extra["field"] == "credit_code"
    with pytest.raises(Conflict) as err:
        service.create_customer({"name": "阿克米机械制造（上海）"}, scope=REP_A)
    assert err.value.extra["matches"][0]["reason"] == "name"
    second = service.create_customer({"name": "阿克米机械制造（上海）"}, scope=REP_A,
                                     on_duplicate="create")
    assert second["id"] != first["id"]


def test_search_chinese_text_tags_and_pages(make_service):
    service = make_service()
    names = ["深圳市腾讯计算机系统有限公司", "腾讯科技（上海）有限公司", "华为技术有限公司"]
    for name in names:
        service.create_customer({"name": name, "tags": ["重点客户"] if "华为" in name else []},
                                scope=REP_A, on_duplicate="create")
    found = service.list_customers({"q": "腾讯"}, scope=REP_A)["items"]
    assert sorted(c["name"] for c in found) == sorted(names[:2])
    assert [c["name"] for c in service.list_customers({"q": "重点"}, scope=REP_A)["items"]] == [
        names[2]]
    assert len(service.list_customers({"tag": "重点客户"}, scope=REP_A)["items"]) == 1
    assert service.list_customers({"tag": "重点"}, scope=REP_A)["items"] == []
    page = service.list_customers({}, scope=REP_A, limit=2)
    rest = service.list_customers({}, scope=REP_A, cursor=page["next_cursor"], limit=2)
    ids = [c["id"] for c in page["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 3 and rest["next_cursor"] is None


def test_reps_see_their_own_customers_and_managers_their_team(make_service):
    mine = new_customer(make_service("rep-a"))
    theirs = make_service("rep-b").create_customer({"name": "华为技术有限公司"}, scope=REP_B)
    service = make_service("rep-a")
    with pytest.raises(NotFound):
        service.get_customer(theirs["id"], scope=REP_A)
    with pytest.raises(NotFound):
        service.update_customer(theirs["id"], {"tier": "A"}, scope=REP_A)
    assert [c["id"] for c in service.list_customers({}, scope=REP_A)["items"]] == [mine["id"]]
    assert len(service.list_customers({}, scope=MANAGER)["items"]) == 2
    # Another rep is not a user rep-a may give records to: answered like a missing user.
    with pytest.raises(ValidationFailed) as err:
        service.create_customer({"name": "小米科技", "owner_id": "rep-b"}, scope=REP_A)
    assert list(err.value.errors) == ["owner_id"]


def test_update_tag_assign(make_service):
    service = make_service()
    customer = new_customer(service)
    updated = service.update_customer(customer["id"], {"tier": "B", "lifecycle_stage": "advocate"},
                                      scope=REP_A)
    assert (updated["tier"], updated["lifecycle_stage"]) == ("B", "advocate")
    with pytest.raises(ValidationFailed) as err:
        service.update_customer(customer["id"], {"tier": "D"}, scope=REP_A)
    assert "tier" in err.value.errors
    tagged = service.tag_customer(customer["id"], add=["重点", "华东"], remove=[], scope=REP_A)
    tagged = service.tag_customer(customer["id"], add=[], remove=["华东"], scope=REP_A)
    assert tagged["tags"] == ["重点"]
    assigned = service.assign_customer(customer["id"], "rep-b", scope=MANAGER, team_id="t1")
    assert (assigned["owner_id"], assigned["team_id"]) == ("rep-b", "t1")
    last = events_of(make_service.engine, "customer_updated")[-1]["data"]
    assert last["changed"] == ["owner_id"] and last["previous_owner_id"] == "rep-a"
    with pytest.raises(NotFound):
        service.get_customer(customer["id"], scope=REP_A)


# -- contacts and follow-ups -----------------------------------------------------------------


def test_contact_is_normalised_and_its_event_carries_the_birthday(make_service):
    service = make_service()
    customer = new_customer(service)
    contact = service.create_contact({
        "customer_id": customer["id"], "name": "张伟", "phone": "138 0013 8000",
        "email": "Zhang.Wei@Acme.CN", "role": "decision_maker", "preferred_channel": "wechat",
        "wechat": "zhangwei88", "birthday": "1985-06-01", "consent": True,
    }, scope=REP_A)
    assert contact["phone"] == "+8613800138000" and contact["email"] == "zhang.wei@acme.cn"
    [event] = events_of(make_service.engine, "contact_created")
    assert event["data"]["contact"]["birthday"] == "1985-06-01"
    assert event["data"]["contact"]["customer_id"] == customer["id"]
    with pytest.raises(ValidationFailed) as err:
        service.create_contact({"customer_id": customer["id"], "name": "x", "email": "no",
                                "role": "boss"}, scope=REP_A)
    assert set(err.value.errors) == {"role"}  # the schema answers first
    with pytest.raises(ValidationFailed) as err:
        service.create_contact({"customer_id": customer["id"], "name": "x", "email": "no"},
                               scope=REP_A)
    assert "email" in err.value.errors
    changed = service.update_contact(contact["id"], {"consent": False}, scope=REP_A)
    assert changed["consent"] is False
    assert events_of(make_service.engine, "contact_updated")[0]["data"]["changed"] == ["consent"]


def test_followup_takes_the_customer_from_the_opportunity_and_publishes(make_service):
    service = make_service()
    customer = new_customer(service)
    opportunity = service.create_opportunity({"customer_id": customer["id"], "name": "MES"},
                                             scope=REP_A)
    followup = service.record_followup({
        "kind": "visit", "opportunity_id": opportunity["id"], "subject": "现场拜访",
        "check_in": {"lat": 31.23, "lng": 121.47, "address": "上海市浦东新区"},
        "key_points": {"pain_points": ["排产靠人工"], "competitors": ["SAP"],
                       "objections": ["价格高"]},
        "next_followup_at": "2099-01-01T02:00:00+00:00",
    }, scope=REP_A)
    assert followup["customer_id"] == customer["id"]
    assert followup["key_points"]["competitors"] == ["SAP"]
    [event] = events_of(make_service.engine, "followup_recorded")
    assert event["data"]["followup"]["next_followup_at"] == "2099-01-01T02:00:00+00:00"
    assert service.get_customer(customer["id"], scope=REP_A)["last_activity_at"]
    listed = service.list_followups({"customer_id": customer["id"]}, scope=REP_A)["items"]
    assert [f["id"] for f in listed] == [followup["id"]]
    assert service.list_followups({"customer_id": customer["id"]}, scope=REP_B)["items"] == []


def test_followup_input_errors_name_the_field(make_service):
    service = make_service()
    customer = new_customer(service)
    with pytest.raises(ValidationFailed) as err:
        service.record_followup({"kind": "visit", "customer_id": customer["id"]}, scope=REP_A)
    assert "check_in" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.record_followup({"kind": "call"}, scope=REP_A)
    assert "customer_id" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.record_followup({"kind": "call", "customer_id": customer["id"],
                                 "occurred_at": "2026-05-01T00:00:00+00:00",
                                 "next_followup_at": "2026-04-01T00:00:00+00:00"}, scope=REP_A)
    assert "next_followup_at" in err.value.errors


# -- pipeline moves --------------------------------------------------------------------------


def test_moves_are_checked_history_kept_and_won_needs_a_reason(make_service):
    service = make_service()
    stages = stage_ids(service)
    customer = new_customer(service)
    contact = service.create_contact({"customer_id": customer["id"], "name": "张伟"},
                                     scope=REP_A)
    opportunity = service.create_opportunity(
        {"customer_id": customer["id"], "name": "MES 一期", "amount": "880000.5"}, scope=REP_A)
    assert opportunity["amount"] == "880000.50" and opportunity["currency"] == "CNY"
    assert opportunity["stage"]["probability"] == 10

    with pytest.raises(PreconditionFailed) as err:
        service.move_opportunity(opportunity["id"], stages["proposal"], scope=REP_A)
    missing = {(m["type"], m.get("field") or m.get("tag")) for m in err.value.extra["missing"]}
    assert missing == {("field", "contact_id"), ("field", "expected_close_date"),
                       ("activity", "needs_analysis")}

    service.update_opportunity(opportunity["id"], {"contact_id": contact["id"],
                                                   "expected_close_date": "2026-12-31"},
                               scope=REP_A)
    with pytest.raises(PreconditionFailed) as err:
        service.move_opportunity(opportunity["id"], stages["proposal"], scope=REP_A)
    assert [m["tag"] for m in err.value.extra["missing"]] == ["needs_analysis"]
    assert "needs_analysis" in str(err.value)

    service.record_followup({"kind": "meeting", "opportunity_id": opportunity["id"],
                             "tags": ["needs_analysis"]}, scope=REP_A)
    moved = service.move_opportunity(opportunity["id"], stages["proposal"], scope=REP_A)
    assert moved["stage_id"] == stages["proposal"] and moved["probability"] == 50
    assert moved["weighted_amount"] == "440000.25"

    with pytest.raises(ValidationFailed) as err:
        service.move_opportunity(opportunity["id"], stages["won"], scope=REP_A)
    assert "reason" in err.value.errors
    service.update_opportunity(opportunity["id"], {"products": ["MES"]}, scope=REP_A)
    won = service.move_opportunity(opportunity["id"], stages["won"], reason="方案契合",
                                   scope=REP_A)
    assert won["status"] == "won" and won["closed_at"] and won["won_lost_reason"] == "方案契合"

    history = service.get_opportunity(opportunity["id"], scope=REP_A)["history"]
    assert [h["stage_id"] for h in history] == [stages["qualification"], stages["proposal"],
                                                stages["won"]]
    assert all(h["left_at"] for h in history[:-1]) and history[-1]["left_at"] is None
    assert history[1]["entered_at"] == history[0]["left_at"]
    kinds = [e["event_type"] for e in events_of(make_service.engine)]
    assert kinds.count("opportunity_stage_changed") == 2 and kinds.count("opportunity_won") == 1
    won_event = events_of(make_service.engine, "opportunity_won")[0]["data"]
    assert won_event["reason"] == "方案契合"
    detail = service.get_customer(customer["id"], scope=REP_A)
    assert detail["lifecycle_stage"] == "customer"
    assert [c["id"] for c in detail["contacts"]] == [contact["id"]]
    rfm = detail["insights"]["rfm"]
    assert rfm["frequency"] == 1 and rfm["monetary"] == "880000.50" and rfm["explanation"]
    assert 0 <= detail["insights"]["health"]["score"] <= 100


def test_refused_move_changes_nothing(make_service):
    service = make_service()
    stages = stage_ids(service)
    opportunity = service.create_opportunity(
        {"customer_id": new_customer(service)["id"], "name": "x"}, scope=REP_A)
    with pytest.raises(PreconditionFailed):
        service.move_opportunity(opportunity["id"], stages["negotiation"], scope=REP_A)
    assert service.get_opportunity(opportunity["id"], scope=REP_A)["stage_id"] == \
        stages["qualification"]
    with make_service.engine.connect() as conn:
        rows = conn.execute(select(StageHistory.stage_id)).scalars().all()
    assert rows == [stages["qualification"]]
    assert events_of(make_service.engine, "opportunity_stage_changed") == []


def test_lost_from_anywhere_and_stage_changes_only_through_moves(make_service):
    service = make_service()
    stages = stage_ids(service)
    opportunity = service.create_opportunity(
        {"customer_id": new_customer(service)["id"], "name": "x"}, scope=REP_A)
    with pytest.raises(ValidationFailed) as err:
        service.update_opportunity(opportunity["id"], {"stage_id": stages["won"]}, scope=REP_A)
    assert "move" in err.value.errors["stage_id"][0]
    lost = service.move_opportunity(opportunity["id"], stages["lost"], reason="预算取消",
                                    scope=REP_A)
    assert lost["status"] == "lost"
    assert events_of(make_service.engine, "opportunity_lost")[0]["data"]["reason"] == "预算取消"
    with pytest.raises(NotFound):
        service.move_opportunity(opportunity["id"], stages["lost"], reason="x", scope=REP_B)


def test_creating_past_the_first_stage_is_checked_too(make_service):
    service = make_service()
    stages = stage_ids(service)
    customer = new_customer(service)
    with pytest.raises(PreconditionFailed):
        service.create_opportunity({"customer_id": customer["id"], "name": "x",
                                    "stage_id": stages["proposal"]}, scope=REP_A)
    with pytest.raises(ValidationFailed) as err:
        service.create_opportunity({"customer_id": customer["id"], "name": "x",
                                    "stage_id": stages["won"]}, scope=REP_A)
    assert "stage_id" in err.value.errors


def test_board_groups_by_stage_with_sums_per_currency(make_service):
    service = make_service()
    stages = stage_ids(service)
    customer = new_customer(service)
    for amount, currency in (("100.10", "CNY"), ("200.20", "CNY"), ("50", "USD")):
        service.create_opportunity({"customer_id": customer["id"], "name": "x",
                                    "amount": amount, "currency": currency}, scope=REP_A)
    board = service.opportunity_board({}, scope=REP_A)
    columns = {c["stage"]["id"]: c for c in board["columns"]}
    first = columns[stages["qualification"]]
    assert first["count"] == 3 and len(first["items"]) == 3
    assert first["amounts"] == {"CNY": "300.30", "USD": "50.00"}
    assert first["weighted_amounts"] == {"CNY": "30.03", "USD": "5.00"}
    assert columns[stages["proposal"]]["count"] == 0
    assert service.opportunity_board({}, scope=REP_B)["columns"][0]["count"] == 0


def test_pipeline_admin(make_service):
    service = make_service("admin")
    stages = [
        {"name": "初步接触", "probability": 20,
         "exit_criteria": {"fields": ["amount"], "activities": [{"kind": "visit"}]}},
        {"name": "报价", "probability": 60},
        {"name": "成交", "probability": 100, "kind": "won"},
        {"name": "丢单", "probability": 0, "kind": "lost"},
    ]
    pipeline = service.create_pipeline({"name": "渠道销售", "stages": stages})
    assert [s["position"] for s in pipeline["stages"]] == [0, 1, 2, 3]
    assert pipeline["stages"][0]["exit_criteria"]["activities"] == [
        {"kind": "visit", "tag": None, "min_count": 1}]
    with pytest.raises(Conflict):
        service.create_pipeline({"name": "渠道销售", "stages": stages})
    customer = new_customer(service, scope=ALL)
    opportunity = service.create_opportunity({"customer_id": customer["id"], "name": "x",
                                              "pipeline_id": pipeline["id"]}, scope=ALL)
    kept = [{**s, "id": s["id"]} for s in pipeline["stages"]]
    for stage in kept:
        stage.pop("position")
    with pytest.raises(Conflict) as err:
        service.update_pipeline(pipeline["id"], {"name": "渠道销售", "stages": kept[1:]})
    assert err.value.extra["stage_id"] == opportunity["stage_id"]
    kept[1]["probability"] = 70
    updated = service.update_pipeline(pipeline["id"], {"name": "渠道销售 v2",
                                                       "stages": [kept[0], kept[1], kept[3],
                                                                  kept[2]]})
    assert [s["probability"] for s in updated["stages"]] == [20, 70, 0, 100]
    assert [e["data"]["created"] for e in events_of(make_service.engine, "pipeline_changed")] \
        == [True, False]
    assert service.get_pipeline()["is_default"] is True  # the seeded one stays the default


# -- lead conversion -------------------------------------------------------------------------


def test_conversion_creates_customer_contact_opportunity_once(make_service):
    service = make_service("rep-a")
    result = service.convert_lead(known(LEAD), {}, scope=REP_A)
    assert result["customer_created"] is True and result["replayed"] is False
    customer, contact, opportunity = result["customer"], result["contact"], result["opportunity"]
    assert customer["name"] == "苏州精工机械有限公司" and customer["source"] == "trade_show"
    assert contact["name"] == "李雷" and contact["lead_id"] == "lead-1"
    assert opportunity["source"] == "trade_show" and opportunity["campaign"] == "工博会2026"
    assert opportunity["products"] == ["MES"] and opportunity["contact_id"] == contact["id"]
    assert opportunity["stage"]["probability"] == 10 and opportunity["owner_id"] == "rep-a"
    [event] = events_of(make_service.engine, "lead_converted")
    assert event["data"] == {
        "lead_id": "lead-1", "customer_id": customer["id"], "contact_id": contact["id"],
        "opportunity_id": opportunity["id"], "converted_by": "rep-a", "customer_created": True,
        "source": "trade_show", "campaign": "工博会2026",
    }

    again = service.convert_lead(known(LEAD), {}, scope=REP_A)
    assert again["replayed"] is True
    assert (again["customer_id"], again["opportunity_id"]) == (customer["id"],
                                                               opportunity["id"])
    assert len(events_of(make_service.engine, "lead_converted")) == 1


def test_conversion_links_an_existing_customer(make_service):
    service = make_service("rep-a")
    by_code = new_customer(service, credit_code=CREDIT_CODE)
    linked = service.convert_lead(
        known({**LEAD, "attributes": {"credit_code": CREDIT_CODE}}), {}, scope=REP_A)
    assert linked["customer_id"] == by_code["id"] and linked["customer_created"] is False
    by_name = service.convert_lead(
        known({**LEAD, "id": "lead-2", "company": "精工机械（苏州）"}), {}, scope=REP_A)
    by_name_2 = service.convert_lead(known({**LEAD, "id": "lead-3"}), {}, scope=REP_A)
    assert by_name["customer_id"] == by_name_2["customer_id"]
    chosen = service.convert_lead(known({**LEAD, "id": "lead-4"}),
                                  {"customer_id": by_code["id"], "create_opportunity": False},
                                  scope=REP_A)
    assert chosen["customer_id"] == by_code["id"] and chosen["opportunity"] is None


def test_conversion_needs_a_qualified_lead(make_service):
    with pytest.raises(PreconditionFailed) as err:
        make_service().convert_lead(known({**LEAD, "status": "contacted"}), {}, scope=REP_A)
    assert err.value.extra["field"] == "status"


# -- merge and custom fields -------------------------------------------------------------------


def test_merge_moves_everything_to_the_survivor(make_service):
    service = make_service()
    target = new_customer(service, tags=["A"])
    source = service.create_customer({"name": "阿克米机械", "credit_code": CREDIT_CODE,
                                      "tags": ["B"]}, scope=REP_A, on_duplicate="create")
    contact = service.create_contact({"customer_id": source["id"], "name": "王芳"}, scope=REP_A)
    opportunity = service.create_opportunity({"customer_id": source["id"], "name": "x"},
                                             scope=REP_A)
    merged = service.merge_customers(target["id"], source["id"], scope=REP_A)
    assert merged["credit_code"] == CREDIT_CODE and merged["tags"] == ["A", "B"]
    assert service.get_contact(contact["id"], scope=REP_A)["customer_id"] == target["id"]
    assert service.get_opportunity(opportunity["id"], scope=REP_A)["customer_id"] == target["id"]
    assert service.get_customer(source["id"], scope=REP_A)["merged_into_id"] == target["id"]
    assert [c["id"] for c in service.list_customers({}, scope=REP_A)["items"]] == [target["id"]]
    [event] = events_of(make_service.engine, "customer_merged")
    assert event["data"]["moved"] == {"contacts": 1, "opportunities": 1, "followups": 0}
    with pytest.raises(Conflict):
        service.merge_customers(target["id"], source["id"], scope=REP_A)


def test_custom_fields_are_validated_and_stored_on_every_write(make_service):
    now = datetime.now(UTC)
    with sessionmaker(make_service.engine)() as session, session.begin():
        session.add(CustomFieldDefinition(
            id="f1", entity="customer", key="employees", label="员工数", type="number",
            required=False, options=[], unique=False, position=0, active=True,
            created_at=now, updated_at=now))
        session.add(CustomFieldDefinition(
            id="f2", entity="opportunity", key="budget_approved", label="预算已批",
            type="boolean", required=True, options=[], unique=False, position=0, active=True,
            created_at=now, updated_at=now))
    service = make_service()
    with pytest.raises(ValidationFailed) as err:
        new_customer(service, custom={"employees": "many"})
    assert "custom.employees" in err.value.errors
    customer = new_customer(service, custom={"employees": 250})
    assert customer["custom"] == {"employees": 250}
    with pytest.raises(ValidationFailed) as err:
        service.update_customer(customer["id"], {"custom": {"colour": "red"}}, scope=REP_A)
    assert "custom.colour" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.create_opportunity({"customer_id": customer["id"], "name": "x"}, scope=REP_A)
    assert "custom.budget_approved" in err.value.errors
    opportunity = service.create_opportunity(
        {"customer_id": customer["id"], "name": "x", "custom": {"budget_approved": True}},
        scope=REP_A)
    assert opportunity["custom"] == {"budget_approved": True}
    with sessionmaker(make_service.engine)() as session:
        assert session.get(Customer, customer["id"]).custom == {"employees": 250}


def test_duplicates_are_found_and_different_companies_are_not_merged(make_service):
    service = make_service()
    target = new_customer(service, credit_code=CREDIT_CODE)
    lookalike = service.create_customer({"name": "阿克米机械制造（上海）"}, scope=REP_A,
                                        on_duplicate="create")
    make_service("rep-b").create_customer({"name": "阿克米机械"}, scope=REP_B,
                                          on_duplicate="create")  # not rep-a's to see
    found = service.find_duplicate_customers(target["id"], scope=REP_A)
    assert [(d["customer_id"], d["reason"]) for d in found] == [(lookalike["id"], "name")]
    other = service.create_customer({"name": "阿克米机械制造 二厂", "credit_code":
                                     "91110000100000000R"}, scope=REP_A,
                                    on_duplicate="create")
    with pytest.raises(Conflict) as err:
        service.merge_customers(target["id"], other["id"], scope=REP_A)
    assert "different credit codes" in str(err.value)


def test_conversion_keeps_the_owners_team(make_service):
    result = make_service().convert_lead(known(LEAD), {"team_id": "team-east"}, scope=REP_A)
    assert result["customer"]["team_id"] == "team-east"
    assert result["opportunity"]["team_id"] == "team-east"


def test_conversion_files_the_records_under_the_owners_team(make_service):
    teams = {"rep-a": "team-east", "rep-b": "team-south"}
    result = make_service().convert_lead(known(LEAD), {}, scope=REP_A, owner_teams=teams)
    assert result["customer"]["team_id"] == result["opportunity"]["team_id"] == "team-east"
    assert refused(make_service().convert_lead, known({**LEAD, "id": "lead-2"}),
                   {"team_id": "team-south"}, scope=REP_A, owner_teams=teams) == {
        "team_id": ["Must be the owner's team: the team follows the owner."]}
    # An admin may file it elsewhere; the lead's owner stays the owner.
    filed = make_service("admin").convert_lead(known({**LEAD, "id": "lead-3"}),
                                               {"team_id": "team-south"}, scope=ALL,
                                               owner_teams=teams)
    assert filed["opportunity"]["team_id"] == "team-south"
    assert filed["opportunity"]["owner_id"] == "rep-a"


def test_conversion_asks_the_leads_service_in_the_callers_scope(make_service):
    service = make_service("rep-a")
    scope = {**REP_A, "include_pool": True}
    service.convert_lead(known(LEAD), {}, scope=scope)
    assert service.leads.asked == [("lead-1", {**scope, "all": False, "manage_pool": False})]
    with pytest.raises(NotFound) as err:
        service.convert_lead("lead-unknown", {}, scope=scope)
    assert err.value.extra == {"field": "lead_id"}
    assert events_of(make_service.engine, "lead_converted")[0]["data"]["lead_id"] == "lead-1"
    assert len(events_of(make_service.engine, "lead_converted")) == 1


def test_a_retried_conversion_replays_once_the_lead_is_marked_converted(make_service):
    """The reply of a conversion got lost; meanwhile the leads service marked the lead
    converted (it consumed `lead_converted`). The retry answers the first result."""
    service = make_service("rep-a")
    first = service.convert_lead(known(LEAD), {}, scope=REP_A)
    again = service.convert_lead(known({**LEAD, "status": "converted"}), {}, scope=REP_A)
    assert again["replayed"] is True and again["customer_id"] == first["customer_id"]
    assert len(service.list_customers({}, scope=ALL)["items"]) == 1
    assert len(events_of(make_service.engine, "customer_created")) == 1


# -- references in bodies and duplicates across views (issue 13) ----------------------------

MISSING = "00000000-0000-4000-8000-00000000dead"


def refused(call, *args, **kwargs) -> dict:
    """The field errors of a call that must be refused as invalid input."""
    with pytest.raises(ValidationFailed) as err:
        call(*args, **kwargs)
    return err.value.errors


def test_body_references_to_hidden_records_answer_like_missing_ones(make_service):
    theirs = make_service("rep-b")
    hidden_customer = theirs.create_customer({"name": "华为技术有限公司"}, scope=REP_B)
    hidden_contact = theirs.create_contact({"customer_id": hidden_customer["id"], "name": "余承东"},
                                           scope=REP_B)
    hidden_opportunity = theirs.create_opportunity(
        {"customer_id": hidden_customer["id"], "name": "鸿蒙"}, scope=REP_B)
    service = make_service("rep-a")
    mine = new_customer(service)
    before = len(events_of(make_service.engine))

    hidden = hidden_customer["id"]
    no_such_customer = {"customer_id": ["no such customer"]}
    assert refused(service.create_contact, {"customer_id": hidden, "name": "x"},
                   scope=REP_A) == no_such_customer
    assert refused(service.create_contact, {"customer_id": MISSING, "name": "x"},
                   scope=REP_A) == no_such_customer
    assert refused(service.create_opportunity, {"customer_id": hidden, "name": "x"},
                   scope=REP_A) == no_such_customer
    assert refused(service.convert_lead, known(LEAD), {"customer_id": hidden},
                   scope=REP_A) == no_such_customer
    for source_id in (hidden, MISSING):
        assert refused(service.merge_customers, mine["id"], source_id, scope=REP_A) == {
            "source_id": ["no such customer"]}
    for field, hidden, what in (("customer_id", hidden_customer["id"], "customer"),
                                ("contact_id", hidden_contact["id"], "contact"),
                                ("opportunity_id", hidden_opportunity["id"], "opportunity")):
        expected = {field: [f"no such {what}"]}
        assert refused(service.record_followup, {"kind": "call", field: hidden},
                       scope=REP_A) == expected
        assert refused(service.record_followup, {"kind": "call", field: MISSING},
                       scope=REP_A) == expected
    # A contact of another customer is not the opportunity's, hidden or not.
    assert refused(service.create_opportunity, {"customer_id": mine["id"], "name": "x",
                                                "contact_id": hidden_contact["id"]},
                   scope=REP_A) == {"contact_id": ["not a contact of this customer"]}
    assert refused(service.create_opportunity, {"customer_id": mine["id"], "name": "x",
                                                "pipeline_id": MISSING},
                   scope=REP_A) == {"pipeline_id": ["no such pipeline"]}
    # Nothing was written by any of these.
    assert len(events_of(make_service.engine)) == before


def test_owner_and_author_ids_must_be_in_the_callers_scope(make_service):
    service = make_service("rep-a")
    customer = new_customer(service)
    opportunity = service.create_opportunity({"customer_id": customer["id"], "name": "x"},
                                             scope=REP_A)
    no_such_user = {"owner_id": ["no such active user in your view"]}
    assert refused(service.record_followup, {"kind": "call", "customer_id": customer["id"],
                                             "owner_id": "rep-b"}, scope=REP_A) == no_such_user
    assert refused(service.create_contact, {"customer_id": customer["id"], "name": "x",
                                            "owner_id": "rep-b"}, scope=REP_A) == no_such_user
    assert refused(service.create_opportunity, {"customer_id": customer["id"], "name": "x",
                                                "owner_id": "rep-b"}, scope=REP_A) == no_such_user
    assert refused(service.update_opportunity, opportunity["id"], {"owner_id": "rep-b"},
                   scope=REP_A) == no_such_user
    assert refused(service.assign_customer, customer["id"], "rep-c", scope=MANAGER) == \
        no_such_user
    assert refused(service.convert_lead, known(LEAD), {"owner_id": "rep-b"},
                   scope=REP_A) == no_such_user
    # Within the scope it works: the manager attributes a follow-up to a team member.
    followup = service.record_followup({"kind": "call", "customer_id": customer["id"],
                                        "owner_id": "rep-a"}, scope=MANAGER)
    assert followup["owner_id"] == "rep-a"


def test_duplicate_conflicts_name_only_customers_the_caller_sees(make_service):
    hidden = make_service("rep-b").create_customer(
        {"name": "上海阿克米机械制造有限公司", "credit_code": CREDIT_CODE}, scope=REP_B)
    service = make_service("rep-a")
    with pytest.raises(Conflict) as err:
        service.create_customer({"name": "别的名字", "credit_code": CREDIT_CODE}, scope=REP_A)
    assert err.value.extra == {"field": "credit_code", "matches": []}
    assert hidden["id"] not in str(err.value) and hidden["name"] not in str(err.value)
    with pytest.raises(Conflict) as err:
        service.create_customer({"name": "阿克米机械制造（上海）"}, scope=REP_A)
    assert err.value.extra == {"field": "name", "matches": []}
    assert hidden["id"] not in str(err.value)
    mine = service.create_customer({"name": "阿克米机械制造（上海）"}, scope=REP_A,
                                   on_duplicate="create")
    with pytest.raises(Conflict) as err:
        service.update_customer(mine["id"], {"credit_code": CREDIT_CODE}, scope=REP_A)
    assert err.value.extra == {"field": "credit_code"}
    # The manager sees both: the conflict names the match.
    with pytest.raises(Conflict) as err:
        service.create_customer({"name": "别的名字", "credit_code": CREDIT_CODE}, scope=MANAGER)
    assert err.value.extra["existing_id"] == hidden["id"]
    assert [m["customer_id"] for m in err.value.extra["matches"]][0] == hidden["id"]
    # A customer merged into one the caller does not see: the survivor is not named.
    make_service("admin").merge_customers(hidden["id"], mine["id"], scope=ALL)
    with pytest.raises(Conflict) as err:
        service.update_customer(mine["id"], {"tier": "A"}, scope=REP_A)
    assert "existing_id" not in err.value.extra and hidden["id"] not in str(err.value)
    with pytest.raises(Conflict) as err:
        service.update_customer(mine["id"], {"tier": "A"}, scope=MANAGER)
    assert err.value.extra["existing_id"] == hidden["id"]


def test_conversion_never_links_or_replays_a_customer_outside_the_view(make_service):
    hidden = make_service("rep-b").create_customer(
        {"name": "苏州精工机械有限公司", "credit_code": CREDIT_CODE}, scope=REP_B)
    lead = {**LEAD, "attributes": {"credit_code": CREDIT_CODE}}
    with pytest.raises(Conflict) as err:
        make_service("rep-a").convert_lead(known(lead), {}, scope=REP_A)
    assert err.value.extra == {"field": "credit_code"} and hidden["id"] not in str(err.value)
    # Without the code, the similar hidden name is not linked: a customer of rep-a's own.
    result = make_service("rep-a").convert_lead(
        known(LEAD), {"customer": {"name": "苏州精工机械"}}, scope=REP_A)
    assert result["customer_created"] is True and result["customer"]["id"] != hidden["id"]
    with pytest.raises(Conflict) as err:
        make_service("rep-b").convert_lead(known(LEAD), {}, scope=REP_B)
    assert err.value.extra == {"field": "lead_id"}
    assert result["customer"]["id"] not in str(err.value)
    assert make_service("rep-a").convert_lead(known(LEAD), {}, scope=REP_A)["replayed"] is True


def test_converted_leads_are_listed_and_their_followups_reach_the_customer(make_service):
    service = make_service("rep-a")
    result = service.convert_lead(known(LEAD), {}, scope=REP_A)
    customer = service.get_customer(result["customer_id"], scope=REP_A)
    assert customer["converted_lead_ids"] == [LEAD["id"]]
    followup = service.record_followup({"kind": "call", "lead_id": LEAD["id"]}, scope=REP_A)
    assert followup["customer_id"] == result["customer_id"]
    # Someone who does not see the customer logs on the lead alone.
    other = make_service("rep-b").record_followup({"kind": "call", "lead_id": LEAD["id"]},
                                                  scope=REP_B)
    assert other["customer_id"] is None


def test_exit_criteria_on_undefined_custom_fields_are_refused_at_save(make_service):
    now = datetime.now(UTC)
    with sessionmaker(make_service.engine)() as session, session.begin():
        session.add(CustomFieldDefinition(
            id="f1", entity="opportunity", key="budget", label="预算", type="decimal",
            required=False, options=[], unique=False, position=0, active=True,
            created_at=now, updated_at=now))
        session.add(CustomFieldDefinition(  # the same key on another entity does not count
            id="f2", entity="customer", key="employees", label="员工数", type="number",
            required=False, options=[], unique=False, position=0, active=True,
            created_at=now, updated_at=now))
    service = make_service()
    stages = [
        {"name": "初访", "probability": 10, "kind": "open",
         "exit_criteria": {"fields": ["amount", "custom.budget", "custom.employees"],
                           "activities": [{"kind": "visit", "min_count": 2}]}},
        {"name": "成交", "probability": 100, "kind": "won"},
        {"name": "丢单", "probability": 0, "kind": "lost"},
    ]
    errors = refused(service.create_pipeline, {"name": "渠道", "stages": stages})
    assert list(errors) == ["stages.0.exit_criteria.fields.2"]
    assert "custom.employees" in errors["stages.0.exit_criteria.fields.2"][0]
    assert all(p["name"] != "渠道" for p in service.list_pipelines())
    stages[0]["exit_criteria"]["fields"].pop()
    pipeline = service.create_pipeline({"name": "渠道", "stages": stages})
    assert pipeline["stages"][0]["exit_criteria"] == {
        "fields": ["amount", "custom.budget"],
        "activities": [{"kind": "visit", "tag": None, "min_count": 2}]}
    kept = [{k: v for k, v in s.items() if k != "position"} for s in pipeline["stages"]]
    kept[0]["exit_criteria"] = {"fields": ["custom.nope"]}
    assert list(refused(service.update_pipeline, pipeline["id"],
                        {"name": "渠道", "stages": kept})) == ["stages.0.exit_criteria.fields.0"]
    assert service.get_pipeline(pipeline["id"])["stages"][0]["exit_criteria"]["fields"] == [
        "amount", "custom.budget"]
