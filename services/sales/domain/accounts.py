"""Customers (accounts): name keys for fuzzy matching and search, duplicate detection, tags,
tiers and lifecycle stages. Pure Python."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rapidfuzz import fuzz

from shared.errors import ValidationFailed

TIERS = ("A", "B", "C")
LIFECYCLE_STAGES = ("prospect", "customer", "advocate", "churned")
CONTACT_ROLES = (
    "decision_maker",
    "technical_evaluator",
    "user",
    "business_approver",
    "influencer",
)
CHANNELS = ("phone", "email", "wechat")
NAME_MATCH_THRESHOLD = 90.0
MAX_TAGS = 30
MAX_SEARCH_TERMS = 5

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# Longest first, so 有限责任公司 is not left as 有限责任.
_CJK_SUFFIXES = (
    "股份有限公司", "有限责任公司", "集团有限公司", "株式会社", "有限公司", "控股集团",
    "分公司", "办事处", "总公司", "公司", "集团",
)  # fmt: skip
_LATIN_SUFFIXES = (
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc",
    "plc", "gmbh", "ag", "sa", "bv", "nv", "pte", "pty", "group", "holding", "holdings",
)  # fmt: skip
_REGIONS = (
    "北京", "上海", "天津", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
    "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "长沙", "郑州", "青岛",
    "厦门", "宁波", "大连", "沈阳", "济南", "合肥", "福州", "东莞", "佛山", "无锡", "中国",
)  # fmt: skip
_REGION_PREFIX = re.compile(
    "^(?:" + "|".join(sorted(_REGIONS, key=len, reverse=True)) + ")(?:省|市|自治区)?"
)
_BRACKETED = re.compile(r"[(\[【（]([^()\[\]【】（）]*)[)\]】）]")
_LATIN_SUFFIX = re.compile(r"\s(?:" + "|".join(_LATIN_SUFFIXES) + r")$")
_SPACE_NEXT_TO_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def fold(text: str) -> str:
    """NFKC (full-width to half-width) and case-folded."""
    return unicodedata.normalize("NFKC", text or "").casefold()


def _strip_suffixes(text: str) -> str:
    while True:
        before = text
        latin = _LATIN_SUFFIX.search(text)
        if latin:
            text = text[: latin.start()].rstrip()
        for suffix in _CJK_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)].rstrip()
                break
        if text == before:
            return text


def name_key(name: str) -> str:
    """A company name without case, spacing, punctuation, legal form or a leading region:
    "深圳市腾讯计算机系统有限公司" -> "腾讯计算机系统", "ACME Co., Ltd." -> "acme"."""
    text = fold(name)
    text = _BRACKETED.sub(" ", text)  # "腾讯科技（深圳）有限公司": the bracketed place is noise
    text = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text)
    text = " ".join(text.split())
    text = _SPACE_NEXT_TO_CJK.sub("", text)
    text = _strip_suffixes(text)
    for _ in range(2):  # province, then city
        match = _REGION_PREFIX.match(text)
        if match and len(text) - match.end() >= 2:
            text = text[match.end():]
    text = _strip_suffixes(text)
    return text.replace(" ", "") or fold(name).replace(" ", "")


def name_block(key: str) -> str | None:
    """The first two characters of the key: candidates for a fuzzy match share them."""
    return key[:2] or None


def name_similarity(a: str, b: str) -> float:
    """0..100 on the keys; a plain ratio, so "腾讯" does not match every "腾讯xxx" at 100."""
    key_a, key_b = name_key(a), name_key(b)
    if not key_a or not key_b:
        return 0.0
    return round(float(fuzz.ratio(key_a, key_b)), 2)


@dataclass(frozen=True)
class CustomerMatch:
    customer_id: str
    name: str
    reason: str  # credit_code | name
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_matches(
    name: str | None,
    credit_code: str | None,
    candidates: Iterable[tuple[str, str, str | None]],
    threshold: float = NAME_MATCH_THRESHOLD,
) -> list[CustomerMatch]:
    """Duplicates among (id, name, credit_code) candidates: the same credit code first (exact),
    then names at least `threshold` similar, best first."""
    exact: list[CustomerMatch] = []
    fuzzy: list[CustomerMatch] = []
    for customer_id, other_name, other_code in candidates:
        if credit_code and other_code and credit_code == other_code:
            exact.append(CustomerMatch(customer_id, other_name, "credit_code", 100.0))
            continue
        if name:
            score = name_similarity(name, other_name)
            if score >= threshold:
                fuzzy.append(CustomerMatch(customer_id, other_name, "name", score))
    fuzzy.sort(key=lambda m: -m.score)
    return exact + fuzzy


def normalise_tags(tags: Iterable[Any], field: str = "tags") -> list[str]:
    """Trimmed, NFKC, de-duplicated (first spelling kept), at most MAX_TAGS of 1..32 chars."""
    result: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            problems.append(f"item {index}: a non-empty string is required")
            continue
        clean = unicodedata.normalize("NFKC", tag).strip()
        if len(clean) > 32:
            problems.append(f"item {index}: at most 32 characters")
            continue
        if clean.casefold() not in seen:
            seen.add(clean.casefold())
            result.append(clean)
    if len(result) > MAX_TAGS:
        problems.append(f"at most {MAX_TAGS} tags")
    if problems:
        raise ValidationFailed.for_fields({field: problems})
    return result


def apply_tag_change(current: list[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    removed = {t.casefold() for t in normalise_tags(remove, "remove")}
    kept = [t for t in current if t.casefold() not in removed]
    return normalise_tags([*kept, *normalise_tags(add, "add")])


def search_terms(q: str) -> list[str]:
    """At most 5 distinct folded terms; Chinese has no spaces, so "腾讯科技" is one term."""
    terms: list[str] = []
    for word in fold(q).split():
        term = word[:100]
        if term not in terms:
            terms.append(term)
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return terms


def search_text(name: str, tags: Iterable[str]) -> str:
    """What a search matches against besides the name: the key and the tags, folded."""
    return " ".join([name_key(name), *(fold(t) for t in tags)])


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def normalise_phone(raw: str, default_region: str = "CN", field: str = "phone") -> str:
    """E.164 ("+8613800138000"); numbers without a country code are of `default_region`."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    invalid = f"{_clip(text)!r} is not a valid phone number for region {default_region}"
    if not text:
        raise ValidationFailed.for_fields({field: ["a phone number is required"]})
    if any(unicodedata.category(ch).startswith("L") for ch in text):
        raise ValidationFailed.for_fields({field: [invalid + " (it contains letters)"]})
    try:
        number = phonenumbers.parse(text, default_region or None)
    except phonenumbers.NumberParseException:
        raise ValidationFailed.for_fields({field: [invalid]}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed.for_fields({field: [invalid]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str, field: str = "email") -> str:
    text = unicodedata.normalize("NFKC", raw or "").strip()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed.for_fields(
            {field: [f"{_clip(text)!r} is not a valid email address: {exc}"]}
        ) from None
    return result.normalized.lower()
