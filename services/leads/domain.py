"""Business rules of the leads service, kept free of nameko and SQLAlchemy.

Everything here is a pure function over plain values so that it can be unit-tested without a
broker or a database, and so that the service layer stays a thin adapter. User data is often
Chinese, so every text comparison goes through NFKC (full-width ＡＢＣ／１２３ become ASCII) and
casefold, and nothing assumes words are separated by spaces.
"""

from __future__ import annotations

import copy
import importlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, wraps
from typing import Any, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rapidfuzz import fuzz

from shared.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed

__all__ = [
    "ATTRIBUTE_OPERATORS",
    "DEFAULT_SCORING_MODEL",
    "LEAD_STATUSES",
    "QUALIFICATIONS",
    "DuplicateMatch",
    "LeadIdentity",
    "HIDDEN_DUPLICATE",
    "ScoreLine",
    "ScoreResult",
    "check_claim",
    "check_release",
    "check_status_change",
    "company_key",
    "company_similarity",
    "find_duplicates",
    "lead_visible",
    "may_merge",
    "normalise_email",
    "normalise_phone",
    "qualification_for",
    "qualification_rank",
    "resolve_duplicates",
    "score_lead",
    "search_terms",
    "upgraded_qualification",
    "validate_scoring_model",
]


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _clip(text: str, limit: int = 60) -> str:
    # Error messages echo the input; a pasted paragraph must not blow up the response.
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# 1. Normalisation
# --------------------------------------------------------------------------------------------


def _remembered(normalise: Callable[..., str]) -> Callable[..., str]:
    """Remember what a value normalised to, and that the result normalises to itself: a
    capture normalises its email and phone, then dedupe compares them normalised again.
    Invalid values are not remembered (they raise)."""
    known: dict[tuple, str] = {}

    @wraps(normalise)
    def remembered(raw: str, *args: Any, **kwargs: Any) -> str:
        options = (*args, *sorted(kwargs.items()))
        result = known.get((raw, options))
        if result is None:
            result = normalise(raw, *args, **kwargs)
            if len(known) >= 8192:
                known.clear()
            known[(raw, options)] = known[(result, options)] = result
        return result

    return remembered


@_remembered
def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """Return `raw` as an E.164 number ("+8613800138000") or raise ValidationFailed on "phone".

    Numbers without a country code are read as numbers of `default_region`, so "13800138000"
    and "010-12345678" are Chinese. Extensions are not representable in E.164 and are dropped.
    """
    region = (default_region or "").strip().upper()
    text = _nfkc(raw or "").strip()
    if not text:
        raise ValidationFailed.for_fields({"phone": ["a phone number is required"]})
    invalid = f"{_clip(raw.strip())!r} is not a valid phone number for region {region}"
    # phonenumbers silently maps letters to keypad digits ("1-800-FLOWERS"); in this CRM a
    # letter (or "转" for an extension) is almost always a typo, so refuse rather than guess.
    if any(unicodedata.category(ch).startswith("L") for ch in text):
        raise ValidationFailed.for_fields({"phone": [invalid + " (it contains letters)"]})
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        raise ValidationFailed.for_fields({"phone": [invalid]}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed.for_fields({"phone": [invalid]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Leads come from few domains (a company's, qq.com, 163.com...): email_validator checks each
# address's domain once (IDNA, label rules), not at every capture. Its result is a pure function
# of the domain and the options; an invalid domain raises and is not cached. (The module, not
# the package's function of the same name.)
_email_validation = importlib.import_module("email_validator.validate_email")
_email_validation.validate_email_domain_name = lru_cache(maxsize=4096)(
    _email_validation.validate_email_domain_name)


@_remembered
def normalise_email(raw: str) -> str:
    """Return the validated, lower-cased address or raise ValidationFailed on "email".

    The whole address is lower-cased (local parts are case-sensitive in theory, but treating
    Zhang@x.com and zhang@x.com as two leads would defeat duplicate detection). Full-width
    input such as "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ" is accepted via NFKC.
    """
    text = _nfkc(raw or "").strip()
    if not text:
        raise ValidationFailed.for_fields({"email": ["an email address is required"]})
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        message = f"{_clip(raw.strip())!r} is not a valid email address: {exc}"
        raise ValidationFailed.for_fields({"email": [message]}) from None
    return result.normalized.lower()


# Ranges of scripts that are written without spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"

# Longest first so that 有限责任公司 is not left as 有限责任 after stripping 公司.
_CJK_LEGAL_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "株式会社",
    "有限公司",
    "控股集团",
    "总公司",
    "公司",
    "集团",
)
# A branch usually carries its city before the marker: "招商银行深圳分行".
_CJK_BRANCH_SUFFIXES = ("分公司", "办事处", "分行", "分部")

_LATIN_SUFFIXES = (
    "co",
    "company",
    "corp",
    "corporation",
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "llp",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "srl",
    "bv",
    "nv",
    "pte",
    "pty",
    "kk",
    "group",
    "holding",
    "holdings",
)

_REGION_NAMES = (
    # Municipalities, provinces and autonomous regions.
    "北京", "上海", "天津", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港",
    "澳门",
    # Provincial capitals and other cities that often prefix company names.
    "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "长沙", "郑州", "青岛",
    "厦门", "宁波", "大连", "沈阳", "济南", "合肥", "福州", "东莞", "佛山", "无锡", "昆明",
    "哈尔滨", "长春", "石家庄", "太原", "南昌", "南宁", "贵阳", "兰州", "海口", "呼和浩特",
    "乌鲁木齐", "拉萨", "银川", "西宁", "珠海", "常州", "温州", "绍兴", "嘉兴", "泉州",
    "烟台", "徐州", "南通", "中山", "惠州", "潍坊", "唐山", "洛阳",
    # Not a region strictly, but "中国平安" and "平安" are the same lead.
    "中国",
)  # fmt: skip
_REGION_ALT = "|".join(sorted(_REGION_NAMES, key=len, reverse=True))
_ADMIN_SUFFIX = "(?:特别行政区|壮族自治区|回族自治区|维吾尔自治区|自治区|省|市)"
_KNOWN_REGION_PREFIX = re.compile(rf"^(?:{_REGION_ALT}){_ADMIN_SUFFIX}?")
_GENERIC_REGION_PREFIX = re.compile(rf"^[{_CJK}]{{2,3}}[省市]")
_TRAILING_REGION = re.compile(rf"(?:(?:{_REGION_ALT}){_ADMIN_SUFFIX}?|[{_CJK}]{{2,3}}[省市])$")
_REGION_ONLY = re.compile(rf"^(?:(?:{_REGION_ALT}){_ADMIN_SUFFIX}?|[{_CJK}]{{2,3}}[省市]|china)$")
_BRACKETED = re.compile(r"[(\[【〔]([^()\[\]【】〔〕]*)[)\]】〕]")
_LATIN_SUFFIX_RE = re.compile(rf"(?:(?<=\s)|(?<=[{_CJK}]))(?:{'|'.join(_LATIN_SUFFIXES)})$")
_SPACE_NEXT_TO_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def _strip_region_prefix(text: str) -> str:
    """Drop one leading province/city; "深圳市腾讯" -> "腾讯", "广东省深圳市X" needs two calls."""
    for pattern in (_KNOWN_REGION_PREFIX, _GENERIC_REGION_PREFIX):
        match = pattern.match(text)
        if not match:
            continue
        rest = text[match.end() :].lstrip()
        # An explicit 省/市 marks a place for sure; a bare city name may be part of the brand
        # ("青岛啤酒" vs "哈尔滨啤酒" would both become "啤酒"), so it needs a longer remainder.
        explicit = match.group(0)[-1] in "省市区"
        if len(rest) >= (2 if explicit else 3):
            return rest
    return text


def _strip_suffixes(text: str) -> str:
    """Repeatedly drop legal-form and branch suffixes in both scripts: "acme co ltd" -> "acme"."""
    while True:
        if text in _CJK_LEGAL_SUFFIXES or text in _CJK_BRANCH_SUFFIXES:
            return text  # a name that is nothing but a suffix: keep it rather than mangle it
        before = text
        latin = _LATIN_SUFFIX_RE.search(text)
        if latin and latin.start() > 0:
            text = text[: latin.start()].rstrip()
        for suffix in _CJK_LEGAL_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)].rstrip()
                break
        for suffix in _CJK_BRANCH_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)].rstrip()
                region = _TRAILING_REGION.search(text)
                if region and region.start() > 0:
                    text = text[: region.start()].rstrip()
                break
        if text == before:
            return text


def _unbracket(match: re.Match[str]) -> str:
    inner = match.group(1).strip()
    # "腾讯科技（深圳）有限公司": a bracketed place is noise, other bracketed words are not.
    return " " if _REGION_ONLY.match(inner) else f" {inner} "


@lru_cache(maxsize=65536)  # dedupe compares each capture with up to hundreds of stored names
def _company_text(name: str) -> str:
    """Company name reduced to its distinctive words, Latin words still space-separated."""
    text = _nfkc(name or "").casefold()
    text = _BRACKETED.sub(_unbracket, text)
    # Keep letters, digits and combining marks; everything else (，。、·&., etc.) separates.
    text = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text)
    text = " ".join(text.split())
    text = _SPACE_NEXT_TO_CJK.sub("", text)
    if text.startswith("the ") and len(text) > 4:
        text = text[4:]
    text = _strip_suffixes(text)
    for _ in range(2):  # province then city: "广东省深圳市…"
        text = _strip_region_prefix(text)
    # A city prefix can hide a suffix only in odd names, but stripping again is cheap.
    return _strip_suffixes(text)


def company_key(name: str) -> str:
    """Key for fuzzy company matching: no case, spaces, punctuation, legal form or city prefix.

    "深圳市腾讯计算机系统有限公司" -> "腾讯计算机系统"; "ACME Co., Ltd." -> "acme".
    """
    return _company_text(name).replace(" ", "")


def company_similarity(a: str, b: str) -> float:
    """Similarity of two company names in 0..100 (0 when either is empty after normalising).

    Character-level ratio on the keys works for Chinese; token_sort_ratio additionally forgives
    reordered Latin words. Partial-ratio scorers are deliberately not used: they would rate
    "腾讯" against every "腾讯xxx" subsidiary at 100.
    """
    text_a, text_b = _company_text(a or ""), _company_text(b or "")
    key_a, key_b = text_a.replace(" ", ""), text_b.replace(" ", "")
    if not key_a or not key_b:
        return 0.0
    score = fuzz.ratio(key_a, key_b)
    if " " in text_a or " " in text_b:
        score = max(score, fuzz.token_sort_ratio(text_a, text_b, processor=None))
    return round(float(score), 2)


# --------------------------------------------------------------------------------------------
# 2. Duplicates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadIdentity:
    lead_id: str
    email: str | None
    phone: str | None
    company: str | None


@dataclass(frozen=True)
class DuplicateMatch:
    lead_id: str
    reason: Literal["email", "phone", "company"]
    score: float
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=8192)
def _email_for_matching(raw: str) -> str:
    # Stored data may predate validation; an unparseable value still matches its own twin.
    try:
        return normalise_email(raw)
    except ValidationFailed:
        return _nfkc(raw).strip().casefold()


@lru_cache(maxsize=8192)
def _phone_for_matching(raw: str) -> str:
    try:
        return normalise_phone(raw, "CN")  # as a capture passes it, so it is remembered
    except ValidationFailed:
        return re.sub(r"[^\d+]", "", _nfkc(raw))


def find_duplicates(
    candidate: LeadIdentity,
    existing: Iterable[LeadIdentity],
    company_threshold: float = 90.0,
) -> list[DuplicateMatch]:
    """Leads in `existing` that look like `candidate`, at most one match per lead.

    Same normalised email or phone is an exact duplicate (score 100); a company name at least
    `company_threshold` similar is a possible one. Phones without a country code are read as
    Chinese. Result order: exact first, then by score, then by lead id for stable output.
    """
    email = _email_for_matching(candidate.email) if candidate.email else ""
    phone = _phone_for_matching(candidate.phone) if candidate.phone else ""
    has_company = bool(candidate.company and company_key(candidate.company))

    best: dict[str, DuplicateMatch] = {}
    for other in existing:
        if other.lead_id == candidate.lead_id:
            continue
        match: DuplicateMatch | None = None
        if email and other.email and _email_for_matching(other.email) == email:
            match = DuplicateMatch(other.lead_id, "email", 100.0, True)
        elif phone and other.phone and _phone_for_matching(other.phone) == phone:
            match = DuplicateMatch(other.lead_id, "phone", 100.0, True)
        elif has_company and other.company:
            score = company_similarity(candidate.company or "", other.company)
            if score >= company_threshold:
                match = DuplicateMatch(other.lead_id, "company", score, False)
        if match is None:
            continue
        previous = best.get(other.lead_id)
        if previous is None or (match.exact, match.score) > (previous.exact, previous.score):
            best[other.lead_id] = match
    return sorted(best.values(), key=lambda m: (not m.exact, -m.score, m.lead_id))


# --------------------------------------------------------------------------------------------
# 3. Scoring
# --------------------------------------------------------------------------------------------

ATTRIBUTE_OPERATORS = ("equals", "not_equals", "contains", "in", "gte", "lte", "exists")
QUALIFICATIONS = ("mql", "sql")
_MAX_RULE_POINTS = 1000

DEFAULT_SCORING_MODEL: dict[str, Any] = {
    "version": 1,
    "attribute_rules": [
        {"id": "industry-manufacturing", "field": "industry", "operator": "equals",
         "value": "制造业", "points": 10, "group": "fit",
         "description": "Industry is manufacturing (制造业)"},
        {"id": "title-procurement-director", "field": "title", "operator": "contains",
         "value": "采购总监", "points": 15, "group": "role",
         "description": "Title contains procurement director (采购总监)"},
        {"id": "title-director", "field": "title", "operator": "contains", "value": "总监",
         "points": 8, "group": "role", "description": "Title contains director (总监)"},
        {"id": "title-manager", "field": "title", "operator": "contains", "value": "经理",
         "points": 5, "group": "role", "description": "Title contains manager (经理)"},
        {"id": "title-director-en", "field": "title", "operator": "contains",
         "value": "director", "points": 8, "group": "role",
         "description": "Title contains director"},
        {"id": "title-manager-en", "field": "title", "operator": "contains", "value": "manager",
         "points": 5, "group": "role", "description": "Title contains manager"},
        {"id": "source-website", "field": "source", "operator": "equals", "value": "website",
         "points": 5, "group": "source", "description": "Came in through the website"},
        {"id": "source-referral", "field": "source", "operator": "equals", "value": "referral",
         "points": 10, "group": "source", "description": "Referred by a customer or partner"},
        {"id": "has-phone", "field": "phone", "operator": "exists", "value": None, "points": 3,
         "group": None, "description": "Phone number known"},
    ],
    "behaviour_rules": [
        {"id": "pricing-page", "behaviour": "visited_pricing_page", "points": 10,
         "group": "web", "max_count": 2, "description": "Visited the pricing page"},
        {"id": "whitepaper", "behaviour": "downloaded_whitepaper", "points": 8, "group": None,
         "max_count": 3, "description": "Downloaded a whitepaper"},
        {"id": "webinar", "behaviour": "attended_webinar", "points": 12, "group": None,
         "max_count": 2, "description": "Attended a webinar"},
        {"id": "email-open", "behaviour": "opened_email", "points": 2, "group": "email",
         "max_count": 5, "description": "Opened a marketing email"},
        {"id": "demo-request", "behaviour": "requested_demo", "points": 25, "group": None,
         "max_count": 1, "description": "Requested a demo"},
    ],
    # A director who is also a procurement director must not collect every title rule.
    "caps": {"email": 10, "role": 15, "source": 10, "web": 15},
    "thresholds": {"mql": 40, "sql": 70},
}  # fmt: skip


@dataclass
class ScoreLine:
    """One rule that fired. `points` is the line's total (per-event points times `count`)."""

    rule_id: str
    kind: Literal["attribute", "behaviour"]
    description: str
    points: int
    group: str | None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies and cost 4 % of a capture.
        return {"rule_id": self.rule_id, "kind": self.kind, "description": self.description,
                "points": self.points, "group": self.group, "count": self.count}


@dataclass
class ScoreResult:
    """`total` = sum of lines minus `capped` (group -> points removed by its cap), floored at 0."""

    total: int
    lines: list[ScoreLine] = field(default_factory=list)
    capped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "lines": [line.to_dict() for line in self.lines],
            "capped": dict(self.capped),
        }


_MODEL_KEYS = {"version", "attribute_rules", "behaviour_rules", "caps", "thresholds"}
_ATTRIBUTE_RULE_KEYS = {"id", "field", "operator", "value", "points", "group", "description"}
_BEHAVIOUR_RULE_KEYS = {"id", "behaviour", "points", "group", "max_count", "description"}


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `"points": true` in JSON is a mistake, not 1 point.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _Errors:
    """Collects messages per path so that one response lists every problem in a model."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_path.setdefault(path, []).append(message)


def _check_keys(
    item: dict[str, Any], path: str, allowed: set[str], required: Sequence[str], errors: _Errors
) -> None:
    for key in sorted(set(item) - allowed, key=str):
        errors.add(f"{path}.{key}" if path else str(key), f"unknown key {key!r}")
    for key in required:
        if key not in item:
            errors.add(f"{path}.{key}" if path else key, "this key is required")


def _check_common_rule_fields(
    rule: dict[str, Any], path: str, seen_ids: set[str], errors: _Errors
) -> None:
    rule_id = rule.get("id")
    if "id" in rule:
        if not isinstance(rule_id, str) or not rule_id.strip():
            errors.add(f"{path}.id", "must be a non-empty string")
        elif rule_id in seen_ids:
            errors.add(f"{path}.id", f"duplicate rule id {rule_id!r}")
        else:
            seen_ids.add(rule_id)
    if "points" in rule:
        points = rule["points"]
        if not _is_int(points):
            errors.add(f"{path}.points", f"must be an integer, got {points!r}")
        elif abs(points) > _MAX_RULE_POINTS:
            errors.add(
                f"{path}.points", f"must be between -{_MAX_RULE_POINTS} and {_MAX_RULE_POINTS}"
            )
    group = rule.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        errors.add(f"{path}.group", "must be null or a non-empty string")
    description = rule.get("description")
    if description is not None and not isinstance(description, str):
        errors.add(f"{path}.description", "must be null or a string")


def _validate_attribute_rule(
    rule: Any, path: str, seen_ids: set[str], errors: _Errors
) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        errors.add(path, "must be an object")
        return None
    required = ["id", "field", "operator", "points"]
    if rule.get("operator") != "exists":
        required.append("value")
    _check_keys(rule, path, _ATTRIBUTE_RULE_KEYS, required, errors)
    _check_common_rule_fields(rule, path, seen_ids, errors)

    field_name = rule.get("field")
    if "field" in rule:
        if not isinstance(field_name, str) or not field_name.strip():
            errors.add(f"{path}.field", "must be a non-empty string")
        elif field_name.startswith("attributes.") and not field_name[len("attributes.") :]:
            errors.add(f"{path}.field", "'attributes.' must be followed by an attribute key")

    operator = rule.get("operator")
    value = rule.get("value")
    if "operator" in rule and operator not in ATTRIBUTE_OPERATORS:
        errors.add(
            f"{path}.operator",
            f"unknown operator {operator!r}; allowed: {', '.join(ATTRIBUTE_OPERATORS)}",
        )
    elif operator == "in":
        if not isinstance(value, list) or not value or not all(map(_is_scalar, value)):
            errors.add(f"{path}.value", "operator 'in' needs a non-empty list of values")
    elif operator in ("gte", "lte"):
        if not _is_number(value):
            errors.add(f"{path}.value", f"operator {operator!r} needs a number, got {value!r}")
    elif operator == "contains":
        if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
            errors.add(f"{path}.value", "operator 'contains' needs a non-empty text")
    elif operator in ("equals", "not_equals") and "value" in rule and not _is_scalar(value):
        errors.add(f"{path}.value", f"operator {operator!r} needs a single value")

    description = rule.get("description")
    if not isinstance(description, str) or not description.strip():
        description = f"{field_name} {operator}" + ("" if operator == "exists" else f" {value!r}")
    return {
        "id": rule.get("id"),
        "field": field_name,
        "operator": operator,
        # exists ignores the value; storing None keeps edited models from carrying junk.
        "value": None if operator == "exists" else copy.deepcopy(value),
        "points": rule.get("points"),
        "group": rule.get("group"),
        "description": description,
    }


def _validate_behaviour_rule(
    rule: Any, path: str, seen_ids: set[str], errors: _Errors
) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        errors.add(path, "must be an object")
        return None
    _check_keys(rule, path, _BEHAVIOUR_RULE_KEYS, ["id", "behaviour", "points"], errors)
    _check_common_rule_fields(rule, path, seen_ids, errors)
    behaviour = rule.get("behaviour")
    if "behaviour" in rule and (not isinstance(behaviour, str) or not behaviour.strip()):
        errors.add(f"{path}.behaviour", "must be a non-empty string")
    max_count = rule.get("max_count")
    if max_count is not None and (not _is_int(max_count) or max_count < 1):
        errors.add(f"{path}.max_count", f"must be null or an integer >= 1, got {max_count!r}")
    description = rule.get("description")
    if not isinstance(description, str) or not description.strip():
        description = f"behaviour {behaviour}"
    return {
        "id": rule.get("id"),
        "behaviour": behaviour,
        "points": rule.get("points"),
        "group": rule.get("group"),
        "max_count": max_count,
        "description": description,
    }


def _validate_rules(
    model: dict[str, Any], key: str, seen_ids: set[str], errors: _Errors
) -> list[dict[str, Any]]:
    rules = model.get(key)
    if key not in model:
        return []  # already reported as missing
    if not isinstance(rules, list):
        errors.add(key, "must be a list")
        return []
    validate = _validate_attribute_rule if key == "attribute_rules" else _validate_behaviour_rule
    checked = (
        validate(rule, f"{key}.{index}", seen_ids, errors) for index, rule in enumerate(rules)
    )
    return [rule for rule in checked if rule is not None]


def validate_scoring_model(model: dict[str, Any]) -> dict[str, Any]:
    """Return a normalised deep copy of `model` or raise ValidationFailed.

    Error field names are paths into the model ("attribute_rules.2.operator", "thresholds.sql")
    and every problem is reported at once. Defaults: `caps` {}, rule `group` None, behaviour
    `max_count` None (unlimited), and a generated `description` where none is given. Rule ids
    must be unique across both rule lists because score lines are keyed by them. Points may be
    negative (e.g. a competitor's domain); the total score is floored at 0 anyway.
    """
    errors = _Errors()
    if not isinstance(model, dict):
        raise ValidationFailed.for_fields({"model": ["a scoring model must be a JSON object"]})
    _check_keys(
        model,
        "",
        _MODEL_KEYS,
        ["version", "attribute_rules", "behaviour_rules", "thresholds"],
        errors,
    )

    version = model.get("version")
    if "version" in model and (not _is_int(version) or version < 1):
        errors.add("version", f"must be an integer >= 1, got {version!r}")

    seen_ids: set[str] = set()
    attribute_rules = _validate_rules(model, "attribute_rules", seen_ids, errors)
    behaviour_rules = _validate_rules(model, "behaviour_rules", seen_ids, errors)

    caps = model.get("caps") if model.get("caps") is not None else {}
    if not isinstance(caps, dict):
        errors.add("caps", "must be an object mapping group name to maximum points")
        caps = {}
    for group, cap in caps.items():
        if not _is_int(cap):
            errors.add(f"caps.{group}", f"must be an integer, got {cap!r}")
        elif cap < 0:
            errors.add(f"caps.{group}", f"must not be negative, got {cap}")

    thresholds = model.get("thresholds")
    if "thresholds" in model:
        if not isinstance(thresholds, dict):
            errors.add("thresholds", "must be an object with 'mql' and 'sql'")
        else:
            _check_keys(thresholds, "thresholds", set(QUALIFICATIONS), QUALIFICATIONS, errors)
            valid = True
            for name in QUALIFICATIONS:
                value = thresholds.get(name)
                if name in thresholds and (not _is_int(value) or value < 0):
                    errors.add(f"thresholds.{name}", f"must be an integer >= 0, got {value!r}")
                    valid = False
            if valid and all(name in thresholds for name in QUALIFICATIONS):
                if thresholds["mql"] > thresholds["sql"]:
                    errors.add(
                        "thresholds.sql",
                        f"sql threshold ({thresholds['sql']}) must not be lower than the mql "
                        f"threshold ({thresholds['mql']})",
                    )

    if errors.by_path:
        raise ValidationFailed.for_fields(errors.by_path, detail="Invalid scoring model")
    return {
        "version": version,
        "attribute_rules": attribute_rules,
        "behaviour_rules": behaviour_rules,
        "caps": dict(caps),
        "thresholds": {name: thresholds[name] for name in QUALIFICATIONS},
    }


_MISSING = object()


def _lead_value(lead: dict[str, Any], field_name: str) -> Any:
    if field_name.startswith("attributes."):
        attributes = lead.get("attributes")
        if not isinstance(attributes, dict):
            return _MISSING
        return attributes.get(field_name[len("attributes.") :], _MISSING)
    return lead.get(field_name, _MISSING)


def _is_blank(value: Any) -> bool:
    if value is _MISSING or value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | dict):
        return not value
    return False


def _fold(value: Any) -> Any:
    """Comparable form: text is NFKC + casefold + stripped, so "Website" equals "ｗｅｂｓｉｔｅ"."""
    if isinstance(value, str):
        return _nfkc(value).casefold().strip()
    return value


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(_nfkc(value).replace(",", "").strip())
        except ValueError:
            return None
    return None


def _scalar_matches(operator: str, actual: Any, expected: Any) -> bool:
    if operator in ("equals", "not_equals"):
        return _fold(actual) == _fold(expected)
    if operator == "contains":
        if isinstance(actual, bool) or not isinstance(actual, str | int | float):
            return False
        return str(_fold(expected)) in str(_fold(actual))
    if operator == "in":
        return _fold(actual) in {_fold(item) for item in expected}
    number = _as_number(actual)
    if number is None:
        return False
    return number >= expected if operator == "gte" else number <= expected


def _attribute_matches(rule: dict[str, Any], lead: dict[str, Any]) -> bool:
    actual = _lead_value(lead, rule["field"])
    operator = rule["operator"]
    if operator == "exists":
        return not _is_blank(actual)
    # A rule about a field the lead does not have never fires, so not_equals does not reward
    # missing data.
    if _is_blank(actual):
        return False
    items = list(actual) if isinstance(actual, list | tuple | set) else [actual]
    if operator == "not_equals":
        return not any(_scalar_matches("equals", item, rule["value"]) for item in items)
    return any(_scalar_matches(operator, item, rule["value"]) for item in items)


def score_lead(
    lead: dict[str, Any], behaviours: Sequence[str], model: dict[str, Any]
) -> ScoreResult:
    """Score `lead` and explain the score line by line.

    Attribute rules read top-level lead fields or "attributes.<key>" from the free-form
    attributes dict. Text comparisons ignore case and full-width/half-width differences;
    "contains" is a substring test. When the field holds a list, a rule matches if any element
    matches (not_equals: if no element is equal). A rule on a missing or blank field never
    fires, except that "exists" then is simply false.

    `behaviours` lists one entry per recorded event; repeats count, up to the rule's
    `max_count`. Each group's sum is limited by `caps[group]`; the excess is reported in
    `capped`, lines keep their uncapped points. The total is never below 0. The model must be
    one `validate_scoring_model` returned: scoring is on the hot path of every capture, so it is
    validated once when saved, not at every use.
    """
    checked = model
    lines: list[ScoreLine] = []
    for rule in checked["attribute_rules"]:
        if _attribute_matches(rule, lead):
            lines.append(
                ScoreLine(
                    rule["id"], "attribute", rule["description"], rule["points"], rule["group"]
                )
            )

    counts = Counter(name.strip() for name in behaviours if isinstance(name, str))
    for rule in checked["behaviour_rules"]:
        seen = counts.get(rule["behaviour"].strip(), 0)
        if not seen:
            continue
        count = seen if rule["max_count"] is None else min(seen, rule["max_count"])
        lines.append(
            ScoreLine(
                rule["id"],
                "behaviour",
                rule["description"],
                rule["points"] * count,
                rule["group"],
                count,
            )
        )

    group_sums: Counter[str] = Counter()
    for line in lines:
        if line.group is not None:
            group_sums[line.group] += line.points
    capped = {
        group: group_sums[group] - cap
        for group, cap in checked["caps"].items()
        if group_sums.get(group, 0) > cap
    }
    total = sum(line.points for line in lines) - sum(capped.values())
    return ScoreResult(total=max(0, total), lines=lines, capped=capped)


def qualification_for(score: int, thresholds: dict[str, int]) -> str | None:
    """ "sql" if score >= thresholds["sql"], "mql" if >= thresholds["mql"], else None."""
    if score >= thresholds["sql"]:
        return "sql"
    if score >= thresholds["mql"]:
        return "mql"
    return None


def qualification_rank(q: str | None) -> int:
    """None 0, "mql" 1, "sql" 2: lets callers see whether a lead crossed UP a threshold."""
    if q is None:
        return 0
    if q not in QUALIFICATIONS:
        raise ValidationFailed.for_fields(
            {"qualification": [f"{q!r} is not a qualification; allowed: null, mql, sql"]}
        )
    return QUALIFICATIONS.index(q) + 1


def upgraded_qualification(
    current: str | None, score: int, thresholds: dict[str, int]
) -> str | None:
    """The qualification to store after a re-score: `current` or higher, never lower.

    Qualification is only raised automatically. A score that drops (a capped group, a changed
    model, an edited title) does not demote an MQL or SQL: sales may already be working it,
    and silently taking it away would be worse than a stale label. Lowering is a human
    decision made through the API.
    """
    computed = qualification_for(score, thresholds)
    return computed if qualification_rank(computed) > qualification_rank(current) else current


# --------------------------------------------------------------------------------------------
# 4. Lead lifecycle
# --------------------------------------------------------------------------------------------

LEAD_STATUSES = ("new", "contacted", "qualified", "disqualified", "converted")

_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("contacted", "qualified", "disqualified"),
    "contacted": ("qualified", "disqualified"),
    "qualified": ("contacted", "disqualified", "converted"),
    # Reopening a disqualified lead is allowed; it starts over or resumes contact.
    "disqualified": ("new", "contacted"),
    # Converted leads live on as contacts/deals; changing them here would fork the history.
    "converted": (),
}


def check_status_change(current: str, target: str, reason: str | None) -> None:
    """Raise unless a lead in status `current` may move to `target`.

    ValidationFailed on "status" for an unknown target, on "reason" when disqualifying
    without a reason; PreconditionFailed when the current status does not allow the move
    (including moving to the same status, and any move out of "converted").
    """
    if target not in LEAD_STATUSES:
        raise ValidationFailed.for_fields(
            {"status": [f"{target!r} is not a lead status; allowed: {', '.join(LEAD_STATUSES)}"]}
        )
    if current not in _TRANSITIONS:
        raise PreconditionFailed(f"lead has an unknown status {current!r}")
    if current == target:
        raise PreconditionFailed(f"lead is already {current}")
    allowed = _TRANSITIONS[current]
    if target not in allowed:
        if not allowed:
            raise PreconditionFailed(f"lead is {current}; its status can no longer change")
        raise PreconditionFailed(
            f"cannot change status from {current} to {target}; allowed: {', '.join(allowed)}"
        )
    if target == "disqualified" and not (reason or "").strip():
        raise ValidationFailed.for_fields({"reason": ["a reason is required to disqualify a lead"]})


def check_claim(
    owner_id: str | None, status: str, user_id: str | None = None, reveal_owner: bool = False
) -> None:
    """Raise unless the lead can be claimed from the public pool (公海).

    A lead without an owner (None or "") is in the pool. Converted leads cannot be claimed;
    disqualified ones can (someone picking one from the pool is how it gets a second look).
    Pass `user_id` to get a clearer message when the caller already owns the lead, and
    `reveal_owner` when the caller may see who owns it (the owner is in their scope); otherwise
    the owner is "someone else" and not named.
    """
    if owner_id:
        if user_id is not None and owner_id == user_id:
            raise PreconditionFailed("you already own this lead")
        holder = f"user {owner_id}" if reveal_owner else "someone else"
        raise PreconditionFailed(
            f"lead is owned by {holder}; it must be released to the public pool first"
        )
    if status == "converted":
        raise PreconditionFailed("converted leads cannot be claimed")


def check_release(owner_id: str | None, user_id: str, may_act_for_others: bool) -> None:
    """Raise unless `user_id` may put the lead back into the public pool.

    PreconditionFailed if it is already there; Forbidden if the user is not the owner and is
    not allowed to act for others (e.g. a team manager).
    """
    if not owner_id:
        raise PreconditionFailed("lead is already in the public pool")
    if owner_id != user_id and not may_act_for_others:
        raise Forbidden("only the owner of this lead (or a manager) can release it")


# --------------------------------------------------------------------------------------------
# 5. Row-level visibility and edit rights
# --------------------------------------------------------------------------------------------

# The answer to a duplicate the caller may not see: that one exists, nothing of it.
HIDDEN_DUPLICATE = "a duplicate of this lead exists outside your view"


def lead_visible(owner_id: str | None, scope: Mapping[str, Any]) -> bool:
    """Whether a caller with `scope` (see services/leads/README.md) may see a lead owned by
    `owner_id` (None: in the public pool)."""
    if scope.get("all"):
        return True
    if owner_id is None:
        return bool(scope.get("include_pool"))
    return owner_id in scope.get("owner_ids", ())


def may_merge(owner_id: str | None, scope: Mapping[str, Any]) -> bool:
    """Whether the caller may merge into (or retire by merging) a lead owned by `owner_id`.

    A merge writes identity fields and attributes into a lead, rescoring it (which can fire
    rules), and a merge with a source retires the source: it needs edit rights, not sight.
    Leads of the caller's scope (their own; their teams' for a manager; all for an admin) may
    be merged. A public-pool lead belongs to nobody: only who manages the pool (scope
    `manage_pool`, a manager) may merge into or from it; a rep claims it first, so that taking
    a pool lead always goes through the claim (and the pool rules that watch claims) instead of
    being absorbed into the rep's own lead or written into unclaimed.
    """
    if scope.get("all"):
        return True
    if owner_id is None:
        return bool(scope.get("include_pool") and scope.get("manage_pool"))
    return owner_id in scope.get("owner_ids", ())


def resolve_duplicates(
    matches: Sequence[DuplicateMatch],
    owners: Mapping[str, str | None],
    scope: Mapping[str, Any],
    on_duplicate: str,
) -> str | None:
    """What a capture with `matches` (best first, as find_duplicates orders them) does: the id
    of the lead to merge into, None to create a new lead, or Conflict.

    `owners` maps each match's lead id to its owner. Only matches the caller may see are named
    (`existing_id`, `matches`); when none is visible, the Conflict says a duplicate exists and
    carries no id (existing_id None, matches []). `merge` goes to the best match the caller may
    merge into among the best kind of match (an exact one when there is one: a similar company
    name is never preferred to the same email or phone the caller cannot edit).
    """
    if not matches or on_duplicate == "create":
        return None
    if on_duplicate == "merge":
        best_kind = matches[0].exact
        for match in matches:
            if match.exact == best_kind and may_merge(owners[match.lead_id], scope):
                return match.lead_id
    visible = [match for match in matches if lead_visible(owners[match.lead_id], scope)]
    if not visible:
        raise Conflict(HIDDEN_DUPLICATE, {"existing_id": None, "matches": []})
    best = visible[0]
    detail = (
        f"a lead with the same {best.reason} exists"
        if best.exact
        else "a lead with a similar company name exists"
    )
    if on_duplicate == "merge":
        detail += (
            "; nothing was merged: you may merge only into a lead you may edit"
            " (claim a public-pool lead first)"
        )
    raise Conflict(detail, {"existing_id": best.lead_id,
                            "matches": [match.to_dict() for match in visible]})


# --------------------------------------------------------------------------------------------
# 6. Text search
# --------------------------------------------------------------------------------------------

MAX_SEARCH_TERMS = 5
MAX_SEARCH_TERM_LENGTH = 100


def search_terms(q: str) -> list[str]:
    """Split a search box query into at most 5 distinct terms of at most 100 characters.

    NFKC + casefold, split on any whitespace (including the ideographic space U+3000). Chinese
    has no spaces, so "腾讯科技" stays one term and is matched as a substring. The caller must
    still escape LIKE wildcards (% and _) in each term.
    """
    terms: list[str] = []
    for word in _nfkc(q or "").casefold().split():
        term = word[:MAX_SEARCH_TERM_LENGTH]
        if term not in terms:
            terms.append(term)
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return terms
