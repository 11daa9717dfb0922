"""The leads service's entrypoints with nameko's worker_factory: a real database (SQLite, and
PostgreSQL where reachable) and the real outbox recorder; no broker."""

from __future__ import annotations

import json

import eventlet
import pytest
from sqlalchemy import select, text

from services.leads import domain
from services.leads.contract import EVENT_SCHEMAS
from services.leads.models import outbox
from services.leads.service import LeadsService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
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
        service.create_lead(same_phone, scope=ALL)
    assert refused.value.extra["existing_id"] == first["id"]
    assert refused.value.extra["matches"][0]["reason"] in ("phone", "email")

    similar = {"name": "李四", "company": "阿克米机械制造", "email": "li@elsewhere.cn",
               "source": "referral"}
    with pytest.raises(Conflict) as possible:
        service.create_lead(similar, scope=ALL)
    assert possible.value.extra["matches"][0]["exact"] is False

    merged = service.create_lead({**same_phone, "attributes": {"budget": "50万"}}, "merge",
                                 scope=ALL)
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
    claimed = rep.claim_lead(lead["id"], "u-rep", rep_scope)
    assert claimed["owner_id"] == "u-rep"
    with pytest.raises(NotFound):  # claimed by someone the caller cannot see: hidden
        other.claim_lead(lead["id"], "u-other", other_scope)
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


# --------------------------------------------------------------------------------------------
# Row-level visibility on every path (issue 13). Scopes as the gateway passes them: u-rep and
# u-mate are reps of the manager's team, u-other a rep of another team.
# --------------------------------------------------------------------------------------------

REP = {"owner_ids": ["u-rep"], "include_pool": True}
MATE = {"owner_ids": ["u-mate"], "include_pool": True}
OTHER = {"owner_ids": ["u-other"], "include_pool": True}
MANAGER = {"owner_ids": ["u-manager", "u-mate", "u-rep"], "include_pool": True,
           "manage_pool": True}
SCOPES = {"u-rep": REP, "u-mate": MATE, "u-other": OTHER, "u-manager": MANAGER, "u-admin": ALL}
MISSING_ID = "00000000-0000-4000-8000-000000000000"


def lead_of(service: LeadsService, owner_id: str | None, number: int, **fields) -> dict:
    """A stored lead of `owner_id` (None: the pool) with its own email and phone."""
    data = {"name": f"客户{number}", "email": f"c{number}@kunde{number}.cn",
            "phone": f"139{number:08d}", "source": "referral", **fields}
    return service.create_lead(data, "create", owner_id, ALL)["lead"]


def raised(call, *args) -> Exception:
    try:
        call(*args)
    except Exception as err:  # noqa: BLE001 - the answer under test
        return err
    raise AssertionError("expected an error")


def assert_reveals_nothing(err: Exception, lead: dict) -> None:
    text = err.detail + json.dumps(err.extra, ensure_ascii=False)
    for secret in (lead["id"], lead["name"], lead["email"], lead["phone"]):
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("on_duplicate", ["reject", "merge"])
@pytest.mark.parametrize("caller", ["u-other", "u-mate"])
def test_a_hidden_duplicate_is_only_said_to_exist(make_service, caller, on_duplicate):
    admin = make_service()
    hidden = lead_of(admin, "u-rep", 1, attributes={"wechat": "kept"})
    events_before = len(outbox_events(make_service.engine))
    capture = {"name": "冒充者", "phone": hidden["phone"], "email": "new@elsewhere.cn",
               "company": "写入公司", "source": "web", "attributes": {"budget": "100万"}}

    err = raised(lambda: make_service(caller).create_lead(capture, on_duplicate,
                                                          scope=SCOPES[caller]))
    assert isinstance(err, Conflict)
    assert err.detail == domain.HIDDEN_DUPLICATE
    assert err.extra == {"existing_id": None, "matches": []}
    assert_reveals_nothing(err, hidden)
    stored = admin.get_lead(hidden["id"], ALL)
    assert stored["company"] is None and stored["attributes"] == {"wechat": "kept"}
    assert "merged" not in [entry["kind"] for entry in stored["history"]]
    assert len(outbox_events(make_service.engine)) == events_before


def test_merging_a_capture_needs_edit_rights_on_the_existing_lead(make_service):
    admin = make_service()
    owned = lead_of(admin, "u-rep", 1)
    pool = lead_of(admin, None, 2)

    def capture(lead: dict, budget: str) -> dict:
        return {"name": "重复", "phone": lead["phone"], "source": "web",
                "attributes": {f"budget-{budget}": budget}}

    for actor in ("u-rep", "u-manager", "u-admin"):
        merged = make_service(actor).create_lead(capture(owned, actor), "merge",
                                                 scope=SCOPES[actor])
        assert merged["outcome"] == "merged" and merged["lead"]["id"] == owned["id"]

    rep = make_service("u-rep")
    refused = raised(lambda: rep.create_lead(capture(pool, "r"), scope=REP))
    assert isinstance(refused, Conflict) and refused.extra["existing_id"] == pool["id"]
    assert [m["lead_id"] for m in refused.extra["matches"]] == [pool["id"]]
    not_merged = raised(lambda: rep.create_lead(capture(pool, "r"), "merge", scope=REP))
    assert isinstance(not_merged, Conflict), "a rep may not write into a pool lead"
    assert not_merged.extra["existing_id"] == pool["id"]
    assert admin.get_lead(pool["id"], ALL)["attributes"] == {}

    by_manager = make_service("u-manager").create_lead(capture(pool, "m"), "merge",
                                                       scope=MANAGER)
    assert by_manager["lead"]["id"] == pool["id"]
    rep.claim_lead(pool["id"], "u-rep", REP)
    assert rep.create_lead(capture(pool, "r"), "merge", scope=REP)["lead"]["id"] == pool["id"]


def test_a_capture_merges_into_the_best_lead_the_caller_may_edit(make_service):
    admin = make_service()
    hidden = lead_of(admin, "u-other", 1)
    own = lead_of(admin, "u-rep", 2, company="杭州星河软件有限公司")
    rep = make_service("u-rep")
    both = {"name": "两个都像", "email": hidden["email"], "phone": own["phone"], "source": "web"}
    refused = raised(lambda: rep.create_lead(both, scope=REP))
    assert refused.extra["existing_id"] == own["id"]
    assert [m["lead_id"] for m in refused.extra["matches"]] == [own["id"]]
    assert_reveals_nothing(refused, hidden)
    assert rep.create_lead(both, "merge", scope=REP)["lead"]["id"] == own["id"]

    # The same email as a hidden lead and a company like one's own: not merged into the
    # merely similar one.
    similar = {"name": "相似", "email": hidden["email"], "company": "星河软件", "source": "web"}
    not_merged = raised(lambda: rep.create_lead(similar, "merge", scope=REP))
    assert isinstance(not_merged, Conflict) and not_merged.extra["existing_id"] == own["id"]
    assert_reveals_nothing(not_merged, hidden)


@pytest.mark.parametrize("caller", ["u-other", "u-mate"])
def test_every_operation_by_id_answers_a_hidden_lead_as_a_missing_one(make_service, caller):
    admin = make_service()
    hidden = lead_of(admin, "u-rep", 1)
    already_merged = lead_of(admin, "u-rep", 2)
    admin.merge_leads(hidden["id"], already_merged["id"], ALL)
    scope = SCOPES[caller]
    service = make_service(caller)
    own = lead_of(admin, caller, 3)
    operations = {
        "get": lambda lead_id: service.get_lead(lead_id, scope),
        "behaviour": lambda lead_id: service.record_behaviour(
            lead_id, {"type": "requested_demo"}, scope),
        # "new" -> "new" would be a 412 on a visible lead
        "status": lambda lead_id: service.change_status(lead_id, "new", None, scope),
        "claim": lambda lead_id: service.claim_lead(lead_id, caller, scope),
        "release": lambda lead_id: service.release_lead(lead_id, "不要了", scope),
        "assign": lambda lead_id: service.assign_lead(lead_id, caller, scope),
        "merge into": lambda lead_id: service.merge_leads(lead_id, own["id"], scope),
        "merge from": lambda lead_id: service.merge_leads(own["id"], lead_id, scope),
    }
    events_before = len(outbox_events(make_service.engine))
    for name, operation in operations.items():
        missing = raised(operation, MISSING_ID)
        assert isinstance(missing, NotFound), (name, missing)
        for lead in (hidden, already_merged):
            answer = raised(operation, lead["id"])
            assert type(answer) is NotFound, (name, answer)
            assert answer.detail.replace(lead["id"], MISSING_ID) == missing.detail, name
            assert answer.extra == missing.extra, name
    assert len(outbox_events(make_service.engine)) == events_before
    assert admin.get_lead(hidden["id"], ALL)["owner_id"] == "u-rep"


def test_claim_names_the_owner_only_to_who_may_see_them(make_service):
    admin = make_service()
    owned = lead_of(admin, "u-rep", 1)
    pool = lead_of(admin, None, 2)
    mine = raised(lambda: make_service("u-rep").claim_lead(owned["id"], "u-rep", REP))
    assert isinstance(mine, PreconditionFailed)
    assert mine.detail == "you already own this lead"
    teams = raised(lambda: make_service("u-manager").claim_lead(owned["id"], "u-manager",
                                                                 MANAGER))
    assert isinstance(teams, PreconditionFailed) and "user u-rep" in teams.detail
    captured_for_other = raised(lambda: make_service("u-rep").create_lead(
        {**ACME, "email": "x@kunde.cn", "phone": None}, "create", "u-other", REP))
    assert isinstance(captured_for_other, Forbidden)
    for_other = raised(lambda: make_service("u-rep").claim_lead(pool["id"], "u-mate", REP))
    assert isinstance(for_other, Forbidden)
    assert admin.get_lead(pool["id"], ALL)["in_pool"] is True
    assert isinstance(raised(lambda: admin.claim_lead(owned["id"], "u-admin")), NotFound), (
        "no scope: nothing is visible")


def test_merging_two_stored_leads_needs_edit_rights_on_both(make_service):
    admin = make_service()
    target = lead_of(admin, "u-rep", 1)
    source = lead_of(admin, "u-rep", 2)
    pool = lead_of(admin, None, 3)
    hidden = lead_of(admin, "u-other", 4)
    rep = make_service("u-rep")
    for pair in ((target["id"], pool["id"]), (pool["id"], target["id"])):
        err = raised(rep.merge_leads, *pair, REP)
        assert isinstance(err, Forbidden), "absorbing a pool lead would bypass the claim"
    assert admin.get_lead(pool["id"], ALL)["merged_into_id"] is None
    missing = raised(lambda: rep.merge_leads(target["id"], MISSING_ID, REP))
    hidden_source = raised(lambda: rep.merge_leads(target["id"], hidden["id"], REP))
    assert isinstance(hidden_source, NotFound) and hidden_source.extra == missing.extra
    assert missing.extra == {"field": "source_id"}

    admin.merge_leads(hidden["id"], source["id"], ALL)
    conflict = raised(lambda: rep.merge_leads(target["id"], source["id"], REP))
    assert isinstance(conflict, Conflict), "the source is still u-rep's, merged into a hidden one"
    assert conflict.extra == {"field": "source_id", "existing_id": None}
    assert_reveals_nothing(conflict, hidden)
    seen = raised(lambda: admin.merge_leads(target["id"], source["id"], ALL))
    assert seen.extra["existing_id"] == hidden["id"]
    assert make_service("u-manager").merge_leads(target["id"], pool["id"], MANAGER)["id"] == (
        target["id"])


def test_assignment_keeps_to_the_callers_scope(make_service):
    admin = make_service()
    other_team = lead_of(admin, "u-other", 1)
    team = lead_of(admin, "u-rep", 2)
    pool = lead_of(admin, None, 3)
    manager = make_service("u-manager")
    assert isinstance(raised(lambda: manager.assign_lead(other_team["id"], "u-mate", MANAGER)),
                      NotFound)
    assert isinstance(raised(lambda: manager.assign_lead(team["id"], "u-other", MANAGER)),
                      Forbidden)
    assert manager.assign_lead(team["id"], "u-mate", MANAGER)["owner_id"] == "u-mate"
    assert manager.assign_lead(pool["id"], "u-rep", MANAGER)["owner_id"] == "u-rep"
    rep = make_service("u-rep")
    assert isinstance(raised(lambda: rep.assign_lead(pool["id"], "u-mate", REP)), Forbidden)
    assert admin.get_lead(other_team["id"], ALL)["owner_id"] == "u-other"


def test_two_claims_of_one_pool_lead_have_one_winner(make_service, database_url):
    """The claim locks the row: a claim that meets another in flight waits for it and then
    finds the lead taken, instead of overwriting the first owner (a lost update)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has a single writer; the row lock matters on PostgreSQL")
    admin = make_service()
    pool = lead_of(admin, None, 1)
    rep = make_service("u-rep")

    def claim():
        try:
            return rep.claim_lead(pool["id"], "u-rep", REP)
        except Exception as err:  # noqa: BLE001 - the answer under test
            return err

    with make_service.engine.connect() as first_claim:
        with first_claim.begin():
            first_claim.execute(text("UPDATE leads SET owner_id = 'u-mate' WHERE id = :id"),
                                {"id": pool["id"]})
            second = eventlet.spawn(claim)
            eventlet.sleep(0.5)  # let the second claim reach the locked row
        outcome = second.wait()
    assert isinstance(outcome, NotFound), outcome
    assert admin.get_lead(pool["id"], ALL)["owner_id"] == "u-mate"


def test_a_merged_lead_names_the_lead_it_went_into_only_to_who_may_see_it(make_service):
    service = make_service()
    target = service.create_lead(ACME, "create", "u-other", ALL)["lead"]
    source = service.create_lead({"name": "张伟", "email": "zw2@gmail.com", "source": "web"},
                                 "create", "u-rep", ALL)["lead"]
    service.merge_leads(target["id"], source["id"], ALL)
    assert service.get_lead(source["id"], ALL)["merged_into_id"] == target["id"]
    assert service.get_lead(source["id"], REP)["merged_into_id"] is None
