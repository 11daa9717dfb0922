"""Sales domain rules without a database: stage exit criteria, what a refused move names,
stage durations, customer name keys, duplicate matching and tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from services.sales.domain import accounts, conversion
from services.sales.domain import pipeline as p
from shared.errors import Conflict, PreconditionFailed, ValidationFailed
from shared.kernel.normalise import company_key, company_similarity


def stages_of(definition: dict) -> list[p.StageInfo]:
    cleaned = p.validate_stages(definition["stages"])
    return [
        p.StageInfo(id=f"s{s['position']}", name=s["name"], position=s["position"],
                    probability=s["probability"], kind=s["kind"],
                    exit_criteria=s["exit_criteria"])
        for s in cleaned
    ]


STAGES = stages_of(p.DEFAULT_PIPELINE)
QUALIFICATION, NEEDS, PROPOSAL, NEGOTIATION, WON, LOST = STAGES
FILLED = {
    "name": "MES", "amount": Decimal("100.00"), "expected_close_date": "2026-12-31",
    "contact_id": "c1", "products": ["MES"], "competitors": [], "custom": {},
}
NEEDS_MEETING = p.Activity("meeting", ("needs_analysis",))


# -- stage definitions ------------------------------------------------------------------------


def test_default_pipeline_is_valid_and_ordered():
    assert [s.probability for s in STAGES] == [10, 25, 50, 75, 100, 0]
    assert [s.kind for s in STAGES] == ["open"] * 4 + ["won", "lost"]
    assert NEEDS.exit_criteria["activities"] == [
        {"kind": "meeting", "tag": "needs_analysis", "min_count": 1}
    ]


@pytest.mark.parametrize(
    ("stages", "field", "fragment"),
    [
        ([], "stages", "at least one"),
        ([{"name": "A", "probability": 10}, {"name": "W", "probability": 100, "kind": "won"}],
         "stages", "kind 'lost'"),
        ([{"name": "A", "probability": 101}], "stages.0.probability", "0 to 100"),
        ([{"name": "A", "probability": 10}, {"name": "A", "probability": 20}],
         "stages.1.name", "duplicate"),
        ([{"name": "A", "probability": 10, "exit_criteria": {"fields": ["colour"]}}],
         "stages.0.exit_criteria.fields.0", "not a field"),
        ([{"name": "A", "probability": 10,
           "exit_criteria": {"activities": [{"kind": "dance", "tag": "x"}]}}],
         "stages.0.exit_criteria.activities.0", "kind must be one of"),
        ([{"name": "W", "probability": 100, "kind": "won"}, {"name": "A", "probability": 10},
          {"name": "L", "probability": 0, "kind": "lost"}], "stages", "after open"),
    ],
)
def test_invalid_stage_definitions_name_the_path(stages, field, fragment):
    with pytest.raises(ValidationFailed) as err:
        p.validate_stages(stages)
    assert field in err.value.errors
    assert any(fragment in message for message in err.value.errors[field])


def test_custom_fields_can_be_required_by_a_stage():
    cleaned = p.validate_stages([
        {"name": "A", "probability": 10, "exit_criteria": {"fields": ["custom.budget"]}},
        {"name": "W", "probability": 100, "kind": "won"},
        {"name": "L", "probability": 0, "kind": "lost"},
    ])
    assert cleaned[0]["exit_criteria"]["fields"] == ["custom.budget"]
    stage = p.StageInfo("a", "A", 0, 10, "open", cleaned[0]["exit_criteria"])
    missing = p.missing_requirements([stage], {"custom": {}}, [])
    assert missing[0]["field"] == "custom.budget"
    assert p.missing_requirements([stage], {"custom": {"budget": "5"}}, []) == []


# -- which stages a move leaves ------------------------------------------------------------


def test_forward_move_leaves_current_and_skipped_stages():
    assert p.stages_left(STAGES, QUALIFICATION, PROPOSAL) == [QUALIFICATION, NEEDS]
    assert p.stages_left(STAGES, NEEDS, PROPOSAL) == [NEEDS]


def test_backward_move_and_loss_need_nothing():
    assert p.stages_left(STAGES, PROPOSAL, QUALIFICATION) == []
    assert p.stages_left(STAGES, QUALIFICATION, LOST) == []


def test_won_needs_every_open_stage_from_the_current_one():
    assert p.stages_left(STAGES, NEEDS, WON) == [NEEDS, PROPOSAL, NEGOTIATION]


def test_reopening_a_closed_opportunity_needs_nothing():
    assert p.stages_left(STAGES, LOST, NEEDS) == []


# -- what is missing -------------------------------------------------------------------------


def test_refused_move_lists_every_missing_field_and_activity_by_stage():
    opportunity = {**FILLED, "contact_id": None, "amount": None}
    with pytest.raises(PreconditionFailed) as err:
        p.check_move(STAGES, QUALIFICATION, PROPOSAL, opportunity, [], None)
    missing = err.value.extra["missing"]
    assert [(m["stage"], m["type"], m.get("field") or m.get("tag")) for m in missing] == [
        ("线索确认 Qualification", "field", "contact_id"),
        ("需求分析 Needs analysis", "field", "amount"),
        ("需求分析 Needs analysis", "activity", "needs_analysis"),
    ]
    assert "contact_id must be filled to leave 线索确认 Qualification" in str(err.value)
    assert "a meeting follow-up tagged 'needs_analysis'" in str(err.value)
    assert err.value.extra["stage_id"] == PROPOSAL.id


def test_a_meeting_with_another_tag_or_a_call_does_not_count():
    activities = [p.Activity("meeting", ("demo",)), p.Activity("call", ("needs_analysis",))]
    missing = p.missing_requirements([NEEDS], FILLED, activities)
    assert len(missing) == 1 and missing[0]["found"] == 0


def test_the_tagged_meeting_lets_the_move_pass():
    left = p.check_move(STAGES, NEEDS, PROPOSAL, FILLED, [NEEDS_MEETING], None)
    assert left == [NEEDS]


def test_min_count_is_enforced():
    stage = p.StageInfo("x", "X", 0, 10, "open",
                        {"fields": [], "activities": [{"kind": "visit", "tag": None,
                                                       "min_count": 2}]})
    missing = p.missing_requirements([stage], {}, [p.Activity("visit")])
    assert missing[0]["found"] == 1 and "2 visit follow-ups" in missing[0]["message"]
    assert p.missing_requirements([stage], {}, [p.Activity("visit")] * 2) == []


def test_blank_values_count_as_missing():
    stage = p.StageInfo("x", "X", 0, 10, "open",
                        {"fields": ["name", "products", "amount"], "activities": []})
    missing = p.missing_requirements([stage], {"name": "  ", "products": [], "amount": 0}, [])
    assert [m["field"] for m in missing] == ["name", "products"]  # 0 is an amount


@pytest.mark.parametrize("kind_stage", [WON, LOST])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_won_and_lost_need_a_reason(kind_stage, reason):
    with pytest.raises(ValidationFailed) as err:
        p.check_move(STAGES, NEGOTIATION, kind_stage, FILLED, [NEEDS_MEETING], reason)
    assert "reason" in err.value.errors


def test_won_checks_the_remaining_stages():
    with pytest.raises(PreconditionFailed) as err:
        p.check_move(STAGES, NEEDS, WON, {**FILLED, "products": []}, [NEEDS_MEETING], "签约")
    assert [m["field"] for m in err.value.extra["missing"]] == ["products"]
    assert p.check_move(STAGES, NEEDS, WON, FILLED, [NEEDS_MEETING], "签约")


def test_lost_from_anywhere_with_a_reason():
    assert p.check_move(STAGES, QUALIFICATION, LOST, {}, [], "预算取消") == []


# -- history ---------------------------------------------------------------------------------


def test_stage_durations_add_up_visits_and_count_the_open_row_until_now():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        ("s0", t0, t0 + timedelta(days=2)),
        ("s1", t0 + timedelta(days=2), t0 + timedelta(days=3)),
        ("s0", t0 + timedelta(days=3), t0 + timedelta(days=4)),
        ("s1", t0 + timedelta(days=4), None),
    ]
    durations = p.stage_durations(rows, now=t0 + timedelta(days=10))
    assert durations == {"s0": 3 * 86400.0, "s1": 7 * 86400.0}


def test_weighted_amount_keeps_decimals():
    assert p.weighted_amount(Decimal("1000.00"), 25) == Decimal("250")
    assert p.weighted_amount(None, 25) is None


# -- customers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
        ("腾讯科技（深圳）有限公司", "腾讯科技"),
        ("ACME Co., Ltd.", "acme"),
        ("上海阿克米机械制造有限公司", "阿克米机械制造"),
        ("ＡＢＣ　股份有限公司", "abc"),
        ("公司", "公司"),
    ],
)
def test_name_key(name, key):
    assert accounts.name_key(name) == key


# Names the leads and sales services used to key apart (different suffix and region lists).
SAME_COMPANY_NAMES = [
    "招商银行深圳分行", "腾讯科技（深圳）有限公司", "ACME Co. LLP", "青岛啤酒股份有限公司",
    "深圳市腾讯计算机系统有限公司", "广东省深圳市华为技术有限公司", "海尔集团（青岛）",
    "Siemens Srl", "三菱商事株式会社", "The Boring Company", "杭州阿里巴巴网络科技分公司",
    "ＡＢＣ　股份有限公司", "公司",
]


@pytest.mark.parametrize("name", SAME_COMPANY_NAMES)
def test_a_leads_company_key_is_the_customers_name_key(name):
    """A lead (keyed by the shared kernel, as the leads service keys it) and the customer it
    becomes have the same duplicate key, so one finds the other."""
    assert accounts.name_key(name) == company_key(name)
    assert accounts.name_similarity(name, name) == company_similarity(name, name)


def test_branches_and_legal_forms_key_like_their_company():
    assert accounts.name_key("招商银行深圳分行") == accounts.name_key("招商银行") == "招商银行"
    assert accounts.name_key("ACME Co. LLP") == "acme"
    assert accounts.name_key("青岛啤酒股份有限公司") == "青岛啤酒"  # the city is the brand


def test_matches_put_the_credit_code_first_then_close_names():
    candidates = [
        ("a", "苏州精工机械有限公司", None),
        ("b", "精工机械股份有限公司", "91350100M000100Y43"),
        ("c", "精密仪器有限公司", None),
    ]
    matches = accounts.find_matches("精工机械", "91350100M000100Y43", candidates)
    assert [(m.customer_id, m.reason) for m in matches] == [("b", "credit_code"),
                                                            ("a", "name")]


def test_a_different_company_is_no_match():
    assert accounts.find_matches("华为技术", None, [("a", "腾讯科技", None)]) == []


def test_tags_are_normalised_and_deduplicated():
    assert accounts.normalise_tags([" VIP ", "vip", "重点客户", "ＡＢＣ"]) == ["VIP", "重点客户",
                                                                            "ABC"]
    assert accounts.apply_tag_change(["VIP", "制造"], add=["新"], remove=["vip"]) == ["制造", "新"]
    with pytest.raises(ValidationFailed) as err:
        accounts.normalise_tags(["", "x" * 40])
    assert len(err.value.errors["tags"]) == 2


def test_search_terms_keep_chinese_whole():
    assert accounts.search_terms("  腾讯科技　VIP ") == ["腾讯科技", "vip"]


def test_contact_normalisation_names_the_field():
    assert accounts.normalise_phone("138 0013 8000") == "+8613800138000"
    assert accounts.normalise_email(" Li.Lei@JingGong.CN ") == "li.lei@jinggong.cn"
    with pytest.raises(ValidationFailed) as err:
        accounts.normalise_phone("1-800-FLOWERS")
    assert "letters" in err.value.errors["phone"][0]


def test_criteria_on_undefined_custom_fields_are_named_by_path():
    stages = [
        {"exit_criteria": {"fields": ["amount", "custom.budget"], "activities": []}},
        {"exit_criteria": None},
        {"exit_criteria": {"fields": ["custom.nope", "custom.budget"]}},
    ]
    errors = p.undefined_custom_criteria(stages, {"budget"})
    assert list(errors) == ["stages.2.exit_criteria.fields.0"]
    assert "'custom.nope'" in errors["stages.2.exit_criteria.fields.0"][0]
    assert p.undefined_custom_criteria(stages, {"budget", "nope"}) == {}


def test_the_pipeline_schema_dumps_every_exit_criterion():
    from services.sales.contract import PipelineSchema

    stage = {"id": "s1", "name": "需求分析", "position": 0, "probability": 25, "kind": "open",
             "exit_criteria": {"fields": ["amount", "custom.budget"], "activities": [
                 {"kind": "meeting", "tag": "needs_analysis", "min_count": 1}]}}
    dumped = PipelineSchema().dump({"id": "p1", "name": "默认", "is_default": True,
                                    "stages": [stage]})
    assert dumped["stages"][0]["exit_criteria"] == stage["exit_criteria"]


# -- transitions: they check and change ------------------------------------------------------


def opportunity_at(stage: p.StageInfo, **values) -> SimpleNamespace:
    return SimpleNamespace(**{**FILLED, "source": None, "campaign": None, "stage_id": stage.id,
                              "status": "open", "closed_at": None, "won_lost_reason": None,
                              "stage_entered_at": None, "updated_at": None, **values})


def test_a_move_to_won_closes_the_opportunity_with_its_reason():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    opportunity = opportunity_at(NEGOTIATION)
    moved = p.move(opportunity, STAGES, WON.id, [NEEDS_MEETING], "  签约  ", now)
    assert (moved.left, moved.entered, moved.closed) == (NEGOTIATION, WON, "won")
    assert (opportunity.stage_id, opportunity.status, opportunity.closed_at,
            opportunity.won_lost_reason) == (WON.id, "won", now, "签约")
    reopened = p.move(opportunity, STAGES, PROPOSAL.id, [], None, now)
    assert reopened.closed is None and opportunity.status == "open"
    assert opportunity.closed_at is None and opportunity.won_lost_reason is None
    assert p.move(opportunity, STAGES, PROPOSAL.id, [], None, now) is None


def test_a_refused_move_changes_nothing():
    opportunity = opportunity_at(QUALIFICATION, amount=None)
    with pytest.raises(PreconditionFailed):
        p.move(opportunity, STAGES, PROPOSAL.id, [], None, datetime.now(UTC))
    assert opportunity.stage_id == QUALIFICATION.id and opportunity.updated_at is None
    retired = p.StageInfo("old", "旧", 9, 5, "open", active=False)
    with pytest.raises(ValidationFailed) as err:
        p.move(opportunity, [*STAGES, retired], "old", [], None, datetime.now(UTC))
    assert list(err.value.errors) == ["stage_id"]


def test_a_new_opportunity_starts_where_the_criteria_allow():
    assert p.starting_stage(STAGES, None, {}) == QUALIFICATION
    assert p.starting_stage(STAGES, NEEDS.id, FILLED) == NEEDS
    with pytest.raises(PreconditionFailed):
        p.starting_stage(STAGES, PROPOSAL.id, FILLED)  # needs a meeting, and it has none
    with pytest.raises(ValidationFailed):
        p.starting_stage(STAGES, WON.id, FILLED)


def test_assigning_a_customer_says_whether_it_changed():
    now = datetime.now(UTC)
    customer = SimpleNamespace(owner_id="rep-a", team_id="east", updated_at=None)
    assert accounts.assign(customer, "rep-a", None, now) is False
    assert accounts.assign(customer, "rep-a", "east", now) is False
    assert customer.updated_at is None
    assert accounts.assign(customer, "rep-b", "south", now) is True
    assert (customer.owner_id, customer.team_id, customer.updated_at) == ("rep-b", "south", now)


def customer_row(**values) -> SimpleNamespace:
    base = dict.fromkeys(("credit_code", "last_activity_at", "merged_into_id", "updated_at",
                          *accounts.MERGE_FILLS))
    return SimpleNamespace(**{**base, "tags": [], "custom": {}, **values})


def test_a_merge_fills_the_target_and_hands_the_credit_code_over_in_two_steps():
    now = datetime.now(UTC)
    target = customer_row(id="t", region="华东", tags=["VIP"], custom={"a": 1})
    source = customer_row(id="s", region="华南", industry="制造业", credit_code="CODE",
                          tags=["vip", "重点"], custom={"a": 2, "b": 3}, last_activity_at=now)
    seen = []
    accounts.merge(target, source, now, lambda: seen.append((source.credit_code,
                                                              target.credit_code)))
    assert seen == [(None, None)]  # the source gave the code up before the target took it
    assert (target.credit_code, target.region, target.industry) == ("CODE", "华东", "制造业")
    assert target.tags == ["VIP", "重点"] and target.custom == {"a": 1, "b": 3}
    assert source.merged_into_id == "t" and target.last_activity_at == now
    with pytest.raises(Conflict):
        accounts.merge(customer_row(id="x", credit_code="A"), customer_row(id="y",
                                                                           credit_code="B"),
                       now, lambda: None)


def test_a_conversions_team_follows_its_owner():
    teams = {"rep-a": "east", "rep-b": None}
    assert conversion.team_of("rep-a", None, teams, False) == "east"
    assert conversion.team_of("rep-a", "east", teams, False) == "east"
    assert conversion.team_of("rep-b", None, teams, False) is None
    assert conversion.team_of("nobody", None, teams, False) is None
    with pytest.raises(ValidationFailed) as err:
        conversion.team_of("rep-a", "south", teams, False)
    assert err.value.errors == {"team_id": [conversion.NOT_THE_OWNERS_TEAM]}
    assert conversion.team_of("rep-a", "south", teams, True) == "south"
    assert conversion.team_of("rep-a", "south", None, False) == "south"  # resolved by the caller
    assert conversion.owner_of({"owner_id": None}, {"owner_id": None}, "me") == "me"
