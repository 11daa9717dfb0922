"""The leads service's entrypoints with nameko's worker_factory: a real database (SQLite, and
PostgreSQL where reachable) and the real outbox recorder; no broker."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.leads.events import EVENT_SCHEMAS
from services.leads.models import outbox
from services.leads.service import LeadsService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}
ACME = {
    "name": "张伟",
    "company": "上海阿克米机械制造有限公司",
    "title": "采购总监",
    "email": "Zhang.Wei@Acme.CN",
    "phone": "138 0013 8000",
    "source": "website",
    "region": "华东",
    "industry": "制造业",
    "product_interest": ["MES"],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return migrated_database(request, tmp_path, "leads")


@pytest.fixture
def make_service(database_url):
    engine = get_engine(database_url)

    def make(actor: str | None = "u-admin") -> LeadsService:
        ctx = Context(correlation_id="corr-1", actor=actor)
        return service_worker(LeadsService, engine, outbox, EVENT_SCHEMAS, ctx)

    make.engine = engine
    return make


def outbox_events(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [json.loads(row) for row in rows]


def test_create_normalises_scores_and_records_lead_created(make_service):
    service = make_service()
    result = service.create_lead(ACME)
    lead = result["lead"]
    assert result["outcome"] == "created"
    assert lead["email"] == "zhang.wei@acme.cn"
    assert lead["phone"] == "+8613800138000"
    assert lead["status"] == "new" and lead["in_pool"] is True
    assert lead["score"] > 0
    events = outbox_events(make_service.engine)
    assert [e["event_type"] for e in events][0] == "lead_created"
    assert events[0]["correlation_id"] == "corr-1" and events[0]["actor"] == "u-admin"
    assert events[0]["data"]["lead"]["id"] == lead["id"]


def test_duplicates_are_refused_merged_or_created_on_request(make_service):
    service = make_service()
    first = service.create_lead(ACME)["lead"]
    same_phone = {**ACME, "email": "other@acme.cn", "phone": "+86 138-0013-8000"}
    with pytest.raises(Conflict) as refused:
        service.create_lead(same_phone)
    assert refused.value.extra["existing_id"] == first["id"]
    assert refused.value.extra["matches"][0]["reason"] in ("phone", "email")

    similar = {"name": "李四", "company": "阿克米机械制造", "email": "li@elsewhere.cn",
               "source": "referral"}
    with pytest.raises(Conflict) as possible:
        service.create_lead(similar)
    assert possible.value.extra["matches"][0]["exact"] is False

    merged = service.create_lead({**same_phone, "attributes": {"budget": "50万"}}, "merge")
    assert merged["outcome"] == "merged" and merged["lead"]["id"] == first["id"]
    assert merged["lead"]["attributes"]["budget"] == "50万"
    assert merged["lead"]["email"] == first["email"], "stored values are never overwritten"
    history = service.get_lead(first["id"], ALL)["history"]
    assert any(entry["kind"] == "merged" for entry in history)

    created = service.create_lead(similar, "create")
    assert created["outcome"] == "created" and created["lead"]["id"] != first["id"]


def test_bad_input_names_the_fields(make_service):
    service = make_service()
    with pytest.raises(ValidationFailed) as err:
        service.create_lead({"name": "", "email": "not-an-email", "source": "web", "x": 1})
    assert {"name", "x"} <= set(err.value.errors)
    with pytest.raises(ValidationFailed) as err:
        service.create_lead({"name": "王", "phone": "12ab", "source": "web"})
    assert "phone" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.create_lead({"name": "王", "source": "web"})
    assert "email" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.create_lead(ACME, "sometimes")
    assert "on_duplicate" in err.value.errors
    assert outbox_events(make_service.engine) == []


def test_behaviours_rescore_and_qualify(make_service):
    service = make_service()
    lead = service.create_lead({**ACME, "title": "工程师", "industry": "零售"})["lead"]
    for behaviour in ("requested_demo", "attended_webinar", "downloaded_whitepaper",
                      "visited_pricing_page"):
        lead = service.record_behaviour(lead["id"], {"type": behaviour}, ALL)
    assert lead["qualification"] in ("mql", "sql")
    detail = service.get_lead(lead["id"], ALL)
    assert detail["score_breakdown"]["total"] == detail["score"]
    assert any(line["rule_id"] for line in detail["score_breakdown"]["lines"])
    kinds = [e["event_type"] for e in outbox_events(make_service.engine)]
    assert "lead_scored" in kinds and "lead_qualified" in kinds
    assert kinds.count("lead_behaviour_recorded") == 4


def test_status_changes_follow_the_lifecycle(make_service):
    service = make_service()
    lead = service.create_lead(ACME)["lead"]
    lead = service.change_status(lead["id"], "contacted", None, ALL)
    assert lead["status"] == "contacted"
    with pytest.raises(ValidationFailed) as err:
        service.change_status(lead["id"], "disqualified", "", ALL)
    assert "reason" in err.value.errors
    lead = service.change_status(lead["id"], "disqualified", "no budget", ALL)
    assert lead["disqualify_reason"] == "no budget"
    with pytest.raises(PreconditionFailed):
        service.change_status(lead["id"], "disqualified", "again", ALL)


def test_pool_claim_release_and_visibility(make_service):
    admin = make_service("u-admin")
    rep = make_service("u-rep")
    other = make_service("u-other")
    lead = admin.create_lead(ACME)["lead"]
    rep_scope = {"owner_ids": ["u-rep"], "include_pool": True}
    other_scope = {"owner_ids": ["u-other"], "include_pool": True}

    assert rep.get_lead(lead["id"], rep_scope)["in_pool"] is True
    claimed = rep.claim_lead(lead["id"], "u-rep")
    assert claimed["owner_id"] == "u-rep"
    with pytest.raises(PreconditionFailed):
        other.claim_lead(lead["id"], "u-other")
    with pytest.raises(NotFound):
        other.get_lead(lead["id"], other_scope)
    assert other.list_leads({}, other_scope)["items"] == []
    assert [item["id"] for item in rep.list_leads({}, rep_scope)["items"]] == [lead["id"]]

    released = rep.release_lead(lead["id"], "not my territory", rep_scope)
    assert released["in_pool"] is True
    assert other.get_lead(lead["id"], other_scope)["id"] == lead["id"]
    kinds = [e["event_type"] for e in outbox_events(make_service.engine)]
    assert "lead_claimed" in kinds and "lead_released" in kinds


def test_list_filters_search_and_cursor(make_service):
    service = make_service()
    names = ["深圳华强电子", "北京字节跳动", "杭州阿里巴巴", "Shanghai Widgets", "广州视源电子"]
    for index, company in enumerate(names):
        service.create_lead({"name": f"联系人{index}", "company": company,
                             "email": f"c{index}@example.cn", "source": "website"}, "create")
    found = service.list_leads({"q": "电子"}, ALL)["items"]
    assert sorted(item["company"] for item in found) == ["广州视源电子", "深圳华强电子"]
    assert service.list_leads({"q": "widgets"}, ALL)["items"][0]["company"] == "Shanghai Widgets"

    seen, cursor = [], None
    while True:
        page = service.list_leads({}, ALL, cursor, 2)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(ValidationFailed) as err:
        service.list_leads({}, ALL, "garbage", 2)
    assert "cursor" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        service.list_leads({"status": "sleeping"}, ALL)
    assert "status" in err.value.errors


def test_scoring_model_is_validated_versioned_and_rescores(make_service):
    service = make_service()
    lead = service.create_lead({**ACME, "title": "工程师", "industry": "零售"})["lead"]
    model = service.get_scoring_model()
    model["attribute_rules"].append({"id": "east", "field": "region", "operator": "equals",
                                     "value": "华东", "points": 30, "group": None})
    saved = service.set_scoring_model(model)
    assert saved["version"] == model["version"] + 1
    rescored = service.get_lead(lead["id"], ALL)
    assert rescored["score"] >= lead["score"] + 30
    assert any(line["rule_id"] == "east" for line in rescored["score_breakdown"]["lines"])
    bad = {**model, "attribute_rules": [{**model["attribute_rules"][0], "operator": "like"}]}
    with pytest.raises(ValidationFailed) as err:
        service.set_scoring_model(bad)
    assert any("operator" in field for field in err.value.errors)


def test_merge_two_stored_leads_keeps_history(make_service):
    service = make_service()
    a = service.create_lead(ACME)["lead"]
    b = service.create_lead({"name": "张伟", "email": "zw@gmail.com", "source": "trade_show",
                             "attributes": {"wechat": "zw"}}, "create")["lead"]
    service.record_behaviour(b["id"], {"type": "attended_webinar"}, ALL)
    merged = service.merge_leads(a["id"], b["id"], ALL)
    assert merged["attributes"]["wechat"] == "zw"
    source = service.get_lead(b["id"], ALL)
    assert source["merged_into_id"] == a["id"]
    target = service.get_lead(a["id"], ALL)
    assert any(item["type"] == "attended_webinar" for item in target["behaviours"])
    with pytest.raises(Conflict):
        service.merge_leads(a["id"], b["id"], ALL)


def test_a_lead_converted_by_sales_shows_it_once(make_service):
    service = make_service()
    lead = service.create_lead(ACME)["lead"]
    envelope = {
        "event_id": "ev-conv-1", "event_type": "lead_converted",
        "occurred_at": "2026-11-23T08:00:00+00:00", "producer": "sales",
        "data": {"lead_id": lead["id"], "customer_id": "c-1", "contact_id": "p-1",
                 "opportunity_id": "o-1", "converted_by": "u-rep"},
    }
    service.on_sales_lead_converted(envelope)
    service.on_sales_lead_converted(envelope)  # redelivered: no second effect
    converted = service.get_lead(lead["id"], ALL)
    assert converted["status"] == "converted"
    assert converted["conversion"]["customer_id"] == "c-1"
    assert converted["conversion"]["opportunity_id"] == "o-1"
    assert [h["kind"] for h in converted["history"]].count("converted") == 1
    changes = [e for e in outbox_events(make_service.engine)
               if e["event_type"] == "lead_status_changed"]
    assert len(changes) == 1 and changes[0]["data"]["status"] == "converted"
    with pytest.raises(PreconditionFailed):
        service.change_status(lead["id"], "contacted", None, ALL)
