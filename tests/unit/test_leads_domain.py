"""Unit tests of the leads business rules: no broker, no database."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

# tests/unit has no __init__.py and the project is not installed, so when pytest is pointed
# at this file alone the repository root would not be importable.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from services.leads.contract import LEAD_STATUSES  # noqa: E402
from services.leads.domain import (  # noqa: E402
    DEFAULT_SCORING_MODEL,
    HIDDEN_DUPLICATE,
    DuplicateMatch,
    LeadIdentity,
    ScoreLine,
    ScoreResult,
    check_claim,
    check_release,
    check_status_change,
    find_duplicates,
    lead_visible,
    may_merge,
    qualification_for,
    qualification_rank,
    resolve_duplicates,
    score_lead,
    search_terms,
    upgraded_qualification,
    validate_scoring_model,
)
from shared.errors import (  # noqa: E402
    Conflict,
    Forbidden,
    PreconditionFailed,
    ValidationFailed,
)
from shared.kernel.normalise import (  # noqa: E402
    company_key,
    company_similarity,
    normalise_email,
    normalise_phone,
)

# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+86 138 0013 8000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("＋８６ １３８００１３８０００", "+8613800138000"),  # full-width, as typed by an IME
        ("１３８００１３８０００", "+8613800138000"),
        ("010-12345678", "+861012345678"),  # Beijing landline
        ("(0755) 8601 3388", "+8675586013388"),  # Shenzhen landline
        ("400-810-0000", "+864008100000"),
        ("+1 650-253-0000", "+16502530000"),
        ("  13800138000\u3000", "+8613800138000"),  # ideographic space
    ],
)
def test_normalise_phone_accepts_common_chinese_forms(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


def test_normalise_phone_uses_default_region() -> None:
    assert normalise_phone("(650) 253-0000", default_region="US") == "+16502530000"
    assert normalise_phone("650 253 0000", default_region="us") == "+16502530000"


@pytest.mark.parametrize("raw", ["12ab", "123", "1380013800099999", "+86 123", "转123", "abc"])
def test_normalise_phone_rejects_invalid_numbers_on_phone_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_phone(raw)
    assert list(info.value.errors) == ["phone"]
    message = info.value.errors["phone"][0]
    assert repr(raw) in message
    assert "not a valid phone number for region CN" in message


def test_normalise_phone_message_matches_documented_example() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_phone("12ab")
    assert info.value.errors["phone"][0].startswith(
        "'12ab' is not a valid phone number for region CN"
    )


@pytest.mark.parametrize("raw", ["", "   ", "\u3000"])
def test_normalise_phone_requires_a_value(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_phone(raw)
    assert info.value.errors == {"phone": ["a phone number is required"]}


def test_normalise_phone_clips_long_input_in_message() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_phone("1" * 300)
    assert len(info.value.errors["phone"][0]) < 150


# --------------------------------------------------------------------------------------------
# Emails
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Zhang.Wei@Example.COM ", "zhang.wei@example.com"),
        ("ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "zhang@example.com"),
        ("sales+crm@sub.example.cn", "sales+crm@sub.example.cn"),
        ("张伟@例子.中国", "张伟@例子.中国"),
    ],
)
def test_normalise_email(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["zhang", "zhang@", "@example.com", "a@@b.com", "zhang wei@example.com", "a@b"]
)
def test_normalise_email_rejects_malformed_with_reason(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_email(raw)
    assert list(info.value.errors) == ["email"]
    message = info.value.errors["email"][0]
    assert message.startswith(f"{raw!r} is not a valid email address: ")
    assert len(message) > len(f"{raw!r} is not a valid email address: ")  # carries the reason


def test_normalise_email_requires_a_value() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_email("  ")
    assert info.value.errors == {"email": ["an email address is required"]}

def test_each_address_is_checked_whole_though_its_domain_is_checked_once() -> None:
    assert normalise_email("ok@Corp-Once.cn") == "ok@corp-once.cn"
    for bad in ("a..b@corp-once.cn", ".a@corp-once.cn", "a b@corp-once.cn", "a@corp-once.cn-"):
        with pytest.raises(ValidationFailed):
            normalise_email(bad)
    for _ in range(2):  # a refused domain is refused again, not remembered as valid
        with pytest.raises(ValidationFailed):
            normalise_email("a@-bad-.cn")
    assert normalise_email("Other@CORP-ONCE.cn") == "other@corp-once.cn"



# --------------------------------------------------------------------------------------------
# Company keys and similarity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
        ("北京字节跳动科技有限公司", "字节跳动科技"),
        ("广东省深圳市华为技术有限公司", "华为技术"),
        ("腾讯科技（深圳）有限公司", "腾讯科技"),
        ("阿里巴巴（中国）有限公司", "阿里巴巴"),
        ("招商银行股份有限公司深圳分行", "招商银行"),
        ("上海 某某 信息技术 有限责任公司", "某某信息技术"),
        ("海尔集团公司", "海尔"),
        ("中国平安保险（集团）股份有限公司", "平安保险"),
        ("ACME Co., Ltd.", "acme"),
        ("Acme Corporation", "acme"),
        ("ＡＣＭＥ　ＩＮＣ．", "acme"),
        ("The Boeing Company", "boeing"),
        ("Siemens AG", "siemens"),
        ("Costco", "costco"),  # "co" is only a suffix as a separate word
        ("Pte Ltd", "pte"),  # never strips a name down to nothing
        ("有限公司", "有限公司"),
        ("", ""),
        ("·，。、", ""),
    ],
)
def test_company_key(name: str, key: str) -> None:
    assert company_key(name) == key


def test_company_key_keeps_bare_city_when_it_is_part_of_the_brand() -> None:
    # Stripping 青岛/哈尔滨 would make both "啤酒" and flag unrelated breweries as duplicates.
    assert company_key("青岛啤酒股份有限公司") == "青岛啤酒"
    assert company_key("北京银行") == "北京银行"
    assert company_similarity("青岛啤酒股份有限公司", "哈尔滨啤酒有限公司") < 90


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
        ("北京字节跳动科技有限公司", "字节跳动科技"),
        ("ACME Co., Ltd.", "acme"),
        ("Widgets Acme Inc", "Acme Widgets Ltd"),  # reordered Latin words
    ],
)
def test_company_similarity_close(a: str, b: str) -> None:
    assert company_similarity(a, b) == 100.0


def test_company_similarity_fuzzy_typo() -> None:
    assert (
        90
        <= company_similarity("Acme Widgets International Ltd", "ACME Widgts International")
        < 100
    )
    # One wrong character is a big share of a short Chinese name: at the default threshold of
    # 90 it takes about ten characters (after stripping) for a single typo to still match.
    assert company_similarity("字节跳动科技有限公司", "字节跳动科枝") == pytest.approx(83.33)
    assert (
        company_similarity(
            "上海浦东新区张江高科技园区开发股份有限公司", "浦东新区张江高科枝园区开发"
        )
        >= 90
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("腾讯", "阿里巴巴"),
        ("腾讯科技有限公司", "腾讯音乐娱乐集团"),
        ("中国工商银行", "中国建设银行"),
        ("Acme Widgets", "Apex Gadgets"),
    ],
)
def test_company_similarity_far(a: str, b: str) -> None:
    assert company_similarity(a, b) < 90


def test_company_similarity_unrelated_is_zero() -> None:
    assert company_similarity("腾讯", "阿里巴巴") == 0.0


@pytest.mark.parametrize(("a", "b"), [("", "腾讯"), ("腾讯", ""), ("", ""), ("（）", "腾讯")])
def test_company_similarity_empty_is_zero(a: str, b: str) -> None:
    assert company_similarity(a, b) == 0.0


def test_company_similarity_is_symmetric_and_bounded() -> None:
    a, b = "杭州网易雷火科技有限公司", "网易科技"
    assert company_similarity(a, b) == company_similarity(b, a)
    assert 0.0 <= company_similarity(a, b) <= 100.0


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------


def _lead(
    lead_id: str, email: str | None = None, phone: str | None = None, company: str | None = None
) -> LeadIdentity:
    return LeadIdentity(lead_id=lead_id, email=email, phone=phone, company=company)


def test_find_duplicates_exact_email_and_phone_after_normalisation() -> None:
    candidate = _lead("new", email=" Zhang@Example.com", phone="＋８６ １３８００１３８０００")
    existing = [
        _lead("a", email="zhang@example.com"),
        _lead("b", phone="13800138000"),
        _lead("c", email="li@example.com", phone="13900139000"),
    ]
    matches = find_duplicates(candidate, existing)
    assert matches == [
        DuplicateMatch("a", "email", 100.0, True),
        DuplicateMatch("b", "phone", 100.0, True),
    ]


def test_find_duplicates_fuzzy_company() -> None:
    candidate = _lead("new", company="北京字节跳动科技有限公司")
    existing = [_lead("a", company="字节跳动科技"), _lead("b", company="阿里巴巴")]
    matches = find_duplicates(candidate, existing)
    assert matches == [DuplicateMatch("a", "company", 100.0, False)]


def test_find_duplicates_threshold_is_respected() -> None:
    candidate = _lead("new", company="字节跳动科技")
    existing = [_lead("a", company="字节跳动")]
    assert find_duplicates(candidate, existing) == []
    loose = find_duplicates(candidate, existing, company_threshold=75)
    assert [(m.lead_id, m.reason, m.exact) for m in loose] == [("a", "company", False)]


def test_find_duplicates_one_match_per_lead_strongest_wins() -> None:
    candidate = _lead("new", email="x@example.com", phone="13800138000", company="腾讯科技")
    existing = [_lead("a", email="x@example.com", phone="13800138000", company="腾讯科技")]
    assert find_duplicates(candidate, existing) == [DuplicateMatch("a", "email", 100.0, True)]


def test_find_duplicates_same_lead_listed_twice_keeps_exact() -> None:
    candidate = _lead("new", email="x@example.com", company="腾讯科技")
    existing = [_lead("a", company="腾讯科技"), _lead("a", email="X@example.com")]
    assert find_duplicates(candidate, existing) == [DuplicateMatch("a", "email", 100.0, True)]


def test_find_duplicates_never_matches_itself() -> None:
    candidate = _lead("a", email="x@example.com", company="腾讯科技")
    assert find_duplicates(candidate, [candidate, _lead("a", email="x@example.com")]) == []


def test_find_duplicates_sorted_exact_first_then_score() -> None:
    candidate = _lead("new", phone="13800138000", company="字节跳动科技有限公司")
    existing = [
        _lead("fuzzy-lower", company="字节跳动科枝"),
        _lead("fuzzy-exact-name", company="北京字节跳动科技有限公司"),
        _lead("z-phone", phone="+8613800138000"),
    ]
    matches = find_duplicates(candidate, existing, company_threshold=80)
    assert [m.lead_id for m in matches] == ["z-phone", "fuzzy-exact-name", "fuzzy-lower"]
    assert [m.exact for m in matches] == [True, False, False]
    assert matches[1].score > matches[2].score


def test_find_duplicates_ignores_missing_values() -> None:
    candidate = _lead("new")
    existing = [_lead("a"), _lead("b", email="", phone="", company="")]
    assert find_duplicates(candidate, existing) == []
    assert find_duplicates(_lead("new", email="", phone=""), [_lead("a", email="", phone="")]) == []


def test_find_duplicates_tolerates_legacy_invalid_values() -> None:
    candidate = _lead("new", phone="12-34")
    assert find_duplicates(candidate, [_lead("a", phone="1234")]) == [
        DuplicateMatch("a", "phone", 100.0, True)
    ]


def test_duplicate_match_to_dict() -> None:
    assert DuplicateMatch("a", "company", 93.5, False).to_dict() == {
        "lead_id": "a",
        "reason": "company",
        "score": 93.5,
        "exact": False,
    }


def test_find_duplicates_accepts_generator() -> None:
    candidate = _lead("new", email="x@example.com")
    existing = (_lead(str(i), email=f"{i}@example.com") for i in range(3))
    assert find_duplicates(candidate, existing) == []


# --------------------------------------------------------------------------------------------
# Scoring model validation
# --------------------------------------------------------------------------------------------


def _model(**overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "version": 1,
        "attribute_rules": [
            {"id": "a1", "field": "title", "operator": "contains", "value": "总监", "points": 10}
        ],
        "behaviour_rules": [{"id": "b1", "behaviour": "opened_email", "points": 2}],
        "thresholds": {"mql": 10, "sql": 20},
    }
    model.update(overrides)
    return model


def _valid_model(**overrides: Any) -> dict[str, Any]:
    """Scoring takes models as saved, i.e. validated."""
    return validate_scoring_model(_model(**overrides))


def _errors(model: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as info:
        validate_scoring_model(model)
    return info.value.errors


def test_validate_fills_defaults_and_returns_a_copy() -> None:
    model = _model()
    checked = validate_scoring_model(model)
    assert checked["caps"] == {}
    assert checked["attribute_rules"][0] == {
        "id": "a1",
        "field": "title",
        "operator": "contains",
        "value": "总监",
        "points": 10,
        "group": None,
        "description": "title contains '总监'",
    }
    assert checked["behaviour_rules"][0] == {
        "id": "b1",
        "behaviour": "opened_email",
        "points": 2,
        "group": None,
        "max_count": None,
        "description": "behaviour opened_email",
    }
    assert model == _model()  # input untouched
    checked["attribute_rules"][0]["points"] = 99
    assert model["attribute_rules"][0]["points"] == 10


def test_validate_default_model_is_valid_and_stable() -> None:
    original = copy.deepcopy(DEFAULT_SCORING_MODEL)
    assert validate_scoring_model(DEFAULT_SCORING_MODEL) == DEFAULT_SCORING_MODEL
    assert DEFAULT_SCORING_MODEL == original
    thresholds = DEFAULT_SCORING_MODEL["thresholds"]
    assert thresholds == {"mql": 40, "sql": 70}


def test_validate_is_idempotent() -> None:
    once = validate_scoring_model(_model())
    assert validate_scoring_model(once) == once


def test_validate_exists_needs_no_value_and_drops_it() -> None:
    rule = {
        "id": "x",
        "field": "attributes.budget",
        "operator": "exists",
        "points": 1,
        "value": "junk",
    }
    checked = validate_scoring_model(_model(attribute_rules=[rule]))
    assert checked["attribute_rules"][0]["value"] is None
    assert checked["attribute_rules"][0]["description"] == "attributes.budget exists"


def test_validate_rejects_non_object() -> None:
    assert _errors([1, 2]) == {"model": ["a scoring model must be a JSON object"]}


def test_validate_missing_top_level_keys() -> None:
    errors = _errors({})
    for key in ("version", "attribute_rules", "behaviour_rules", "thresholds"):
        assert errors[key] == ["this key is required"]
    assert "caps" not in errors


def test_validate_unknown_top_level_key() -> None:
    assert _errors(_model(threshold={"mql": 1})) == {"threshold": ["unknown key 'threshold'"]}


@pytest.mark.parametrize(
    ("rule_patch", "path", "fragment"),
    [
        ({"operator": "like"}, "attribute_rules.0.operator", "unknown operator 'like'"),
        ({"points": "10"}, "attribute_rules.0.points", "must be an integer"),
        ({"points": 1.5}, "attribute_rules.0.points", "must be an integer"),
        ({"points": True}, "attribute_rules.0.points", "must be an integer"),
        ({"points": 5000}, "attribute_rules.0.points", "between"),
        ({"id": ""}, "attribute_rules.0.id", "non-empty string"),
        ({"field": ""}, "attribute_rules.0.field", "non-empty string"),
        ({"field": "attributes."}, "attribute_rules.0.field", "attribute key"),
        ({"group": ""}, "attribute_rules.0.group", "non-empty string"),
        ({"description": 5}, "attribute_rules.0.description", "string"),
        ({"pionts": 5}, "attribute_rules.0.pionts", "unknown key 'pionts'"),
        ({"operator": "in", "value": "制造业"}, "attribute_rules.0.value", "non-empty list"),
        ({"operator": "in", "value": []}, "attribute_rules.0.value", "non-empty list"),
        ({"operator": "gte", "value": "100"}, "attribute_rules.0.value", "needs a number"),
        ({"operator": "contains", "value": ""}, "attribute_rules.0.value", "non-empty text"),
        ({"operator": "equals", "value": {"a": 1}}, "attribute_rules.0.value", "single value"),
    ],
)
def test_validate_attribute_rule_errors(
    rule_patch: dict[str, Any], path: str, fragment: str
) -> None:
    rule = {"id": "a1", "field": "title", "operator": "contains", "value": "总监", "points": 10}
    rule.update(rule_patch)
    errors = _errors(_model(attribute_rules=[rule]))
    assert list(errors) == [path]
    assert fragment in errors[path][0]


def test_validate_missing_rule_keys() -> None:
    errors = _errors(_model(attribute_rules=[{"id": "a1"}], behaviour_rules=[{}]))
    assert errors["attribute_rules.0.field"] == ["this key is required"]
    assert errors["attribute_rules.0.operator"] == ["this key is required"]
    assert errors["attribute_rules.0.value"] == ["this key is required"]
    assert errors["attribute_rules.0.points"] == ["this key is required"]
    assert errors["behaviour_rules.0.id"] == ["this key is required"]
    assert errors["behaviour_rules.0.behaviour"] == ["this key is required"]
    assert errors["behaviour_rules.0.points"] == ["this key is required"]


def test_validate_error_paths_use_the_rule_index() -> None:
    rules = [
        {"id": "a1", "field": "title", "operator": "contains", "value": "总监", "points": 1},
        {"id": "a2", "field": "region", "operator": "equals", "value": "华东", "points": 1},
        {"id": "a3", "field": "industry", "operator": "matches", "value": "x", "points": 1},
    ]
    errors = _errors(_model(attribute_rules=rules))
    assert list(errors) == ["attribute_rules.2.operator"]
    assert (
        "allowed: equals, not_equals, contains, in, gte, lte, exists"
        in errors["attribute_rules.2.operator"][0]
    )


def test_validate_duplicate_rule_ids_across_lists() -> None:
    errors = _errors(
        _model(behaviour_rules=[{"id": "a1", "behaviour": "opened_email", "points": 2}])
    )
    assert errors == {"behaviour_rules.0.id": ["duplicate rule id 'a1'"]}


@pytest.mark.parametrize("max_count", [0, -1, "5", 2.5, True])
def test_validate_bad_max_count(max_count: Any) -> None:
    rule = {"id": "b1", "behaviour": "opened_email", "points": 2, "max_count": max_count}
    errors = _errors(_model(behaviour_rules=[rule]))
    assert list(errors) == ["behaviour_rules.0.max_count"]


def test_validate_rules_must_be_lists_of_objects() -> None:
    errors = _errors(_model(attribute_rules={"id": "a1"}, behaviour_rules=["x"]))
    assert errors == {
        "attribute_rules": ["must be a list"],
        "behaviour_rules.0": ["must be an object"],
    }


@pytest.mark.parametrize(
    ("caps", "path", "fragment"),
    [
        ({"email": -1}, "caps.email", "must not be negative"),
        ({"email": "10"}, "caps.email", "must be an integer"),
        ([10], "caps", "must be an object"),
    ],
)
def test_validate_caps(caps: Any, path: str, fragment: str) -> None:
    errors = _errors(_model(caps=caps))
    assert list(errors) == [path]
    assert fragment in errors[path][0]


def test_validate_caps_zero_and_null_are_fine() -> None:
    assert validate_scoring_model(_model(caps={"email": 0}))["caps"] == {"email": 0}
    assert validate_scoring_model(_model(caps=None))["caps"] == {}


def test_validate_mql_above_sql() -> None:
    errors = _errors(_model(thresholds={"mql": 80, "sql": 70}))
    assert list(errors) == ["thresholds.sql"]
    assert "(70)" in errors["thresholds.sql"][0] and "(80)" in errors["thresholds.sql"][0]


@pytest.mark.parametrize(
    ("thresholds", "paths"),
    [
        ({"mql": 10}, ["thresholds.sql"]),
        ({"mql": -1, "sql": 10}, ["thresholds.mql"]),
        ({"mql": 10, "sql": "high"}, ["thresholds.sql"]),
        ({"mql": 10, "sql": 20, "hot": 30}, ["thresholds.hot"]),
        ([10, 20], ["thresholds"]),
    ],
)
def test_validate_thresholds(thresholds: Any, paths: list[str]) -> None:
    assert sorted(_errors(_model(thresholds=thresholds))) == paths


def test_validate_equal_thresholds_allowed() -> None:
    assert validate_scoring_model(_model(thresholds={"mql": 50, "sql": 50}))["thresholds"] == {
        "mql": 50,
        "sql": 50,
    }


def test_validate_version() -> None:
    assert list(_errors(_model(version=0))) == ["version"]
    assert list(_errors(_model(version="1"))) == ["version"]


def test_validate_reports_all_problems_at_once() -> None:
    errors = _errors(
        _model(
            version="x",
            caps={"a": -1},
            thresholds={"mql": 9, "sql": 1},
            behaviour_rules=[{"id": "b", "behaviour": "", "points": "1"}],
        )
    )
    assert set(errors) == {
        "version",
        "caps.a",
        "thresholds.sql",
        "behaviour_rules.0.behaviour",
        "behaviour_rules.0.points",
    }


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _attr(
    rule_id: str, field: str, operator: str, value: Any, points: int = 10, group: str | None = None
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "field": field,
        "operator": operator,
        "value": value,
        "points": points,
        "group": group,
    }


def _score_one(rule: dict[str, Any], lead: dict[str, Any]) -> int:
    return score_lead(lead, [], _valid_model(attribute_rules=[rule], behaviour_rules=[])).total


@pytest.mark.parametrize(
    ("rule", "lead", "points"),
    [
        (_attr("r", "industry", "equals", "制造业"), {"industry": "制造业"}, 10),
        (_attr("r", "industry", "equals", "制造业"), {"industry": "零售"}, 0),
        (_attr("r", "source", "equals", "website"), {"source": " Website "}, 10),
        (_attr("r", "source", "equals", "website"), {"source": "ｗｅｂｓｉｔｅ"}, 10),
        (_attr("r", "source", "not_equals", "cold_call"), {"source": "website"}, 10),
        (_attr("r", "source", "not_equals", "cold_call"), {"source": "Cold_Call"}, 0),
        (_attr("r", "source", "not_equals", "cold_call"), {}, 0),  # missing never rewards
        (_attr("r", "source", "not_equals", "cold_call"), {"source": ""}, 0),
        (_attr("r", "title", "contains", "采购总监"), {"title": "华东区采购总监"}, 10),
        (_attr("r", "title", "contains", "采购总监"), {"title": "采购经理"}, 0),
        (_attr("r", "title", "contains", "director"), {"title": "Purchasing DIRECTOR"}, 10),
        (_attr("r", "title", "contains", "总监"), {"title": None}, 0),
        (
            _attr("r", "product_interest", "contains", "crm"),
            {"product_interest": ["ERP", "CRM系统"]},
            10,
        ),
        (_attr("r", "product_interest", "contains", "crm"), {"product_interest": ["ERP"]}, 0),
        (_attr("r", "product_interest", "equals", "ERP"), {"product_interest": ["erp", "x"]}, 10),
        (_attr("r", "product_interest", "not_equals", "ERP"), {"product_interest": ["erp"]}, 0),
        (_attr("r", "product_interest", "not_equals", "ERP"), {"product_interest": ["CRM"]}, 10),
        (_attr("r", "region", "in", ["华东", "华南"]), {"region": "华南"}, 10),
        (_attr("r", "region", "in", ["华东", "华南"]), {"region": "华北"}, 0),
        (_attr("r", "product_interest", "in", ["CRM", "ERP"]), {"product_interest": ["erp"]}, 10),
        (_attr("r", "attributes.employees", "gte", 500), {"attributes": {"employees": 500}}, 10),
        (_attr("r", "attributes.employees", "gte", 500), {"attributes": {"employees": 499}}, 0),
        (
            _attr("r", "attributes.employees", "gte", 500),
            {"attributes": {"employees": "１,２００"}},
            10,
        ),
        (_attr("r", "attributes.employees", "gte", 500), {"attributes": {"employees": "很多"}}, 0),
        (_attr("r", "attributes.employees", "gte", 500), {"attributes": {"employees": True}}, 0),
        (_attr("r", "attributes.employees", "lte", 50), {"attributes": {"employees": 12.5}}, 10),
        (_attr("r", "attributes.employees", "lte", 50), {"attributes": None}, 0),
        (_attr("r", "attributes.budget", "exists", None), {"attributes": {"budget": "50万"}}, 10),
        (_attr("r", "attributes.budget", "exists", None), {"attributes": {"budget": " "}}, 0),
        (_attr("r", "attributes.budget", "exists", None), {"attributes": {}}, 0),
        (_attr("r", "phone", "exists", None), {"phone": "+8613800138000"}, 10),
        (_attr("r", "attributes.tags", "exists", None), {"attributes": {"tags": []}}, 0),
        (_attr("r", "attributes.count", "exists", None), {"attributes": {"count": 0}}, 10),
    ],
)
def test_attribute_operators(rule: dict[str, Any], lead: dict[str, Any], points: int) -> None:
    assert _score_one(rule, lead) == points


def test_score_lead_default_model_explains_every_line() -> None:
    lead = {"industry": "制造业", "title": "采购总监", "source": "referral", "company": "某公司"}
    behaviours = ["opened_email"] * 7 + ["requested_demo", "visited_pricing_page"]
    result = score_lead(lead, behaviours, DEFAULT_SCORING_MODEL)
    by_id = {line.rule_id: line for line in result.lines}
    assert set(by_id) == {
        "industry-manufacturing",
        "title-procurement-director",
        "title-director",
        "source-referral",
        "email-open",
        "demo-request",
        "pricing-page",
    }
    assert by_id["email-open"] == ScoreLine(
        "email-open", "behaviour", "Opened a marketing email", 10, "email", 5
    )
    assert by_id["title-director"].kind == "attribute"
    assert by_id["title-director"].description == "Title contains director (总监)"
    # role group: 15 + 8 capped at 15
    assert result.capped == {"role": 8}
    assert result.total == 10 + 15 + 10 + 10 + 25 + 10
    assert qualification_for(result.total, DEFAULT_SCORING_MODEL["thresholds"]) == "sql"


def test_score_lead_empty_lead_scores_zero() -> None:
    result = score_lead({}, [], DEFAULT_SCORING_MODEL)
    assert result == ScoreResult(total=0, lines=[], capped={})


def test_score_lead_max_count_and_repeats() -> None:
    model = _valid_model(
        attribute_rules=[],
        behaviour_rules=[
            {"id": "open", "behaviour": "opened_email", "points": 2, "max_count": 3},
            {"id": "visit", "behaviour": "visited_site", "points": 1},
        ],
    )
    result = score_lead({}, ["opened_email"] * 10 + ["visited_site"] * 4 + ["unknown"], model)
    assert [(line.rule_id, line.count, line.points) for line in result.lines] == [
        ("open", 3, 6),
        ("visit", 4, 4),
    ]
    assert result.total == 10


def test_score_lead_caps_limit_group_sum() -> None:
    model = _valid_model(
        attribute_rules=[
            _attr("t1", "title", "contains", "总监", 15, "role"),
            _attr("t2", "title", "contains", "采购", 10, "role"),
            _attr("i1", "industry", "equals", "制造业", 7),
        ],
        behaviour_rules=[
            {"id": "open", "behaviour": "opened_email", "points": 2, "group": "email"}
        ],
        caps={"role": 20, "email": 5, "unused": 1},
    )
    result = score_lead({"title": "采购总监", "industry": "制造业"}, ["opened_email"] * 4, model)
    # lines keep uncapped points so the explanation shows what each rule was worth
    assert [line.points for line in result.lines] == [15, 10, 7, 8]
    assert result.capped == {"role": 5, "email": 3}
    assert result.total == 20 + 7 + 5


def test_score_lead_cap_of_zero_silences_group() -> None:
    model = _valid_model(
        caps={"x": 0}, attribute_rules=[_attr("a", "title", "exists", None, 10, "x")]
    )
    result = score_lead({"title": "经理"}, [], model)
    assert result.total == 0 and result.capped == {"x": 10}


def test_score_lead_negative_points_floor_at_zero() -> None:
    model = _valid_model(
        attribute_rules=[
            _attr("competitor", "attributes.is_competitor", "equals", True, -50),
            _attr("title", "title", "contains", "经理", 10),
        ],
        behaviour_rules=[{"id": "unsub", "behaviour": "unsubscribed", "points": -5}],
    )
    lead = {"title": "销售经理", "attributes": {"is_competitor": True}}
    result = score_lead(lead, ["unsubscribed"], model)
    assert [line.points for line in result.lines] == [-50, 10, -5]
    assert result.total == 0


def test_score_result_to_dict_is_json_ready() -> None:
    result = score_lead({"title": "采购总监"}, ["opened_email"], _valid_model(caps={"none": 1}))
    assert result.to_dict() == {
        "total": 12,
        "lines": [
            {
                "rule_id": "a1",
                "kind": "attribute",
                "description": "title contains '总监'",
                "points": 10,
                "group": None,
                "count": 1,
            },
            {
                "rule_id": "b1",
                "kind": "behaviour",
                "description": "behaviour opened_email",
                "points": 2,
                "group": None,
                "count": 1,
            },
        ],
        "capped": {},
    }


# --------------------------------------------------------------------------------------------
# Qualification
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0, None), (39, None), (40, "mql"), (69, "mql"), (70, "sql"), (500, "sql")],
)
def test_qualification_for(score: int, expected: str | None) -> None:
    assert qualification_for(score, {"mql": 40, "sql": 70}) == expected


def test_qualification_rank() -> None:
    assert [qualification_rank(q) for q in (None, "mql", "sql")] == [0, 1, 2]
    with pytest.raises(ValidationFailed) as info:
        qualification_rank("hot")
    assert list(info.value.errors) == ["qualification"]


def test_qualification_is_raised_but_never_lowered_by_score() -> None:
    thresholds = {"mql": 40, "sql": 70}
    assert upgraded_qualification(None, 45, thresholds) == "mql"
    assert upgraded_qualification("mql", 75, thresholds) == "sql"
    assert upgraded_qualification(None, 10, thresholds) is None
    # a score drop keeps the qualification that was reached
    assert upgraded_qualification("sql", 45, thresholds) == "sql"
    assert upgraded_qualification("sql", 0, thresholds) == "sql"
    assert upgraded_qualification("mql", 5, thresholds) == "mql"


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------

_ALLOWED = {
    ("new", "contacted"),
    ("new", "qualified"),
    ("new", "disqualified"),
    ("contacted", "qualified"),
    ("contacted", "disqualified"),
    ("qualified", "contacted"),
    ("qualified", "disqualified"),
    ("qualified", "converted"),
    ("disqualified", "new"),
    ("disqualified", "contacted"),
}
_ALL_PAIRS = [(a, b) for a in LEAD_STATUSES for b in LEAD_STATUSES]


@pytest.mark.parametrize(("current", "target"), sorted(_ALLOWED))
def test_allowed_status_changes(current: str, target: str) -> None:
    check_status_change(current, target, "预算不足" if target == "disqualified" else None)


@pytest.mark.parametrize(
    ("current", "target"), [pair for pair in _ALL_PAIRS if pair not in _ALLOWED]
)
def test_forbidden_status_changes(current: str, target: str) -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_status_change(current, target, "原因")
    if current == target:
        assert info.value.detail == f"lead is already {current}"
    elif current == "converted":
        assert "can no longer change" in info.value.detail
    else:
        assert f"from {current} to {target}" in info.value.detail


def test_status_change_unknown_target_lists_allowed_values() -> None:
    with pytest.raises(ValidationFailed) as info:
        check_status_change("new", "won", None)
    message = info.value.errors["status"][0]
    assert "'won'" in message
    assert "new, contacted, qualified, disqualified, converted" in message


def test_status_change_unknown_current() -> None:
    with pytest.raises(PreconditionFailed):
        check_status_change("archived", "new", None)


@pytest.mark.parametrize("reason", [None, "", "   ", "\u3000"])
def test_disqualify_requires_reason(reason: str | None) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_status_change("new", "disqualified", reason)
    assert list(info.value.errors) == ["reason"]


def test_disqualify_with_chinese_reason() -> None:
    check_status_change("contacted", "disqualified", "无采购需求")


def test_converted_is_final() -> None:
    for target in LEAD_STATUSES:
        with pytest.raises(PreconditionFailed):
            check_status_change("converted", target, "x")


# --------------------------------------------------------------------------------------------
# Public pool
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["new", "contacted", "qualified", "disqualified"])
def test_claim_from_pool(status: str) -> None:
    check_claim(None, status)
    check_claim("", status)


def test_claim_owned_lead() -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_claim("u1", "new")
    assert info.value.detail == (
        "lead is owned by someone else; it must be released to the public pool first"
    )
    with pytest.raises(PreconditionFailed) as own:
        check_claim("u1", "new", user_id="u1")
    assert own.value.detail == "you already own this lead"
    with pytest.raises(PreconditionFailed) as named:
        check_claim("u1", "new", user_id="u2", reveal_owner=True)
    assert named.value.detail == (
        "lead is owned by user u1; it must be released to the public pool first"
    )
    with pytest.raises(PreconditionFailed) as unnamed:
        check_claim("u1", "new", user_id="u2")
    assert "u1" not in unnamed.value.detail


def test_claim_converted_lead() -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_claim(None, "converted")
    assert "converted" in info.value.detail


def test_release_by_owner_and_manager() -> None:
    check_release("u1", "u1", may_act_for_others=False)
    check_release("u1", "manager", may_act_for_others=True)


def test_release_already_in_pool() -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_release(None, "u1", may_act_for_others=True)
    assert "public pool" in info.value.detail


def test_release_by_someone_else_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        check_release("u1", "u2", may_act_for_others=False)


# --------------------------------------------------------------------------------------------
# Visibility, edit rights and duplicates the caller may not see
# --------------------------------------------------------------------------------------------

REP_SCOPE = {"owner_ids": ["u1"], "include_pool": True}
MANAGER_SCOPE = {"owner_ids": ["m", "u1"], "include_pool": True, "manage_pool": True}


@pytest.mark.parametrize(
    ("owner_id", "scope", "visible", "mergeable"),
    [
        ("u1", REP_SCOPE, True, True),
        (None, REP_SCOPE, True, False),  # a rep claims a pool lead before merging it
        ("u2", REP_SCOPE, False, False),
        (None, MANAGER_SCOPE, True, True),
        ("u1", MANAGER_SCOPE, True, True),
        ("u2", MANAGER_SCOPE, False, False),
        ("u2", {"all": True}, True, True),
        (None, {"owner_ids": ["u1"], "manage_pool": True}, False, False),
        ("u1", {}, False, False),
    ],
)
def test_visibility_and_merge_rights(owner_id, scope, visible, mergeable) -> None:
    assert lead_visible(owner_id, scope) is visible
    assert may_merge(owner_id, scope) is mergeable


def _match(lead_id: str, exact: bool = True) -> DuplicateMatch:
    return DuplicateMatch(lead_id, "phone" if exact else "company", 100.0 if exact else 95.0,
                          exact)


def test_a_hidden_duplicate_names_nothing() -> None:
    owners = {"h": "u2"}
    for on_duplicate in ("reject", "merge"):
        with pytest.raises(Conflict) as err:
            resolve_duplicates([_match("h")], owners, REP_SCOPE, on_duplicate)
        assert err.value.detail == HIDDEN_DUPLICATE
        assert err.value.extra == {"existing_id": None, "matches": []}
    assert resolve_duplicates([_match("h")], owners, REP_SCOPE, "create") is None


def test_only_visible_duplicates_are_named_and_merged_into() -> None:
    matches = [_match("h"), _match("own"), _match("pool")]
    owners = {"h": "u2", "own": "u1", "pool": None}
    with pytest.raises(Conflict) as err:
        resolve_duplicates(matches, owners, REP_SCOPE, "reject")
    assert err.value.extra["existing_id"] == "own"
    assert [m["lead_id"] for m in err.value.extra["matches"]] == ["own", "pool"]
    assert resolve_duplicates(matches, owners, REP_SCOPE, "merge") == "own"
    assert resolve_duplicates(matches, owners, {"all": True}, "merge") == "h"


def test_merge_never_prefers_a_similar_company_to_an_exact_match() -> None:
    matches = [_match("h"), _match("own", exact=False)]
    with pytest.raises(Conflict) as err:
        resolve_duplicates(matches, {"h": "u2", "own": "u1"}, REP_SCOPE, "merge")
    assert err.value.extra["existing_id"] == "own"
    assert "nothing was merged" in err.value.detail


def test_a_pool_duplicate_is_named_to_a_rep_but_not_merged_into() -> None:
    with pytest.raises(Conflict) as err:
        resolve_duplicates([_match("pool")], {"pool": None}, REP_SCOPE, "merge")
    assert err.value.extra["existing_id"] == "pool"
    assert resolve_duplicates([_match("pool")], {"pool": None}, MANAGER_SCOPE, "merge") == "pool"


# --------------------------------------------------------------------------------------------
# Search terms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("腾讯", ["腾讯"]),
        ("腾讯科技 深圳", ["腾讯科技", "深圳"]),
        ("  ACME   Widgets ", ["acme", "widgets"]),
        ("ＡＣＭＥ\u3000腾讯", ["acme", "腾讯"]),  # full-width letters, ideographic space
        ("", []),
        ("   \t\n", []),
        ("a b c d e f g", ["a", "b", "c", "d", "e"]),
        ("腾讯 腾讯 TENCENT tencent", ["腾讯", "tencent"]),
        ("Straße", ["strasse"]),
    ],
)
def test_search_terms(q: str, terms: list[str]) -> None:
    assert search_terms(q) == terms


def test_search_terms_caps_length() -> None:
    terms = search_terms("字" * 250 + " x")
    assert terms == ["字" * 100, "x"]


def test_normalisation_remembers_results_but_never_a_failure() -> None:
    assert normalise_email("Zhang.Wei@Example.CN") == "zhang.wei@example.cn"
    assert normalise_email("zhang.wei@example.cn") == "zhang.wei@example.cn"
    assert normalise_phone("138 0013 8000", "CN") == normalise_phone("+8613800138000", "CN")
    assert normalise_phone("(650) 253-0000", default_region="US") == "+16502530000"
    for _ in range(2):
        with pytest.raises(ValidationFailed):
            normalise_email("zhang.wei@")
        with pytest.raises(ValidationFailed):
            normalise_phone("138 0013", "CN")
