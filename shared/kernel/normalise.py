"""Phone numbers, e-mail addresses and company names, normalised alike in every service.

A lead and the customer it becomes must have the same duplicate keys, so the leads and sales
services both use these. User data is often Chinese: every comparison goes through NFKC
(full-width ＡＢＣ／１２３ become ASCII) and casefold, and nothing assumes words are separated
by spaces.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rapidfuzz import fuzz

from shared.errors import ValidationFailed

__all__ = [
    "clip",
    "company_key",
    "company_similarity",
    "company_text",
    "email_for_matching",
    "fold",
    "nfkc",
    "normalise_email",
    "normalise_phone",
    "phone_for_matching",
]


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """NFKC (full-width to half-width) and case-folded."""
    return nfkc(text or "").casefold()


def clip(text: str, limit: int = 60) -> str:
    # Error messages echo the input; a pasted paragraph must not blow up the response.
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
def normalise_phone(raw: str, default_region: str = "CN", field: str = "phone") -> str:
    """Return `raw` as an E.164 number ("+8613800138000") or raise ValidationFailed on `field`.

    Numbers without a country code are read as numbers of `default_region`, so "13800138000"
    and "010-12345678" are Chinese. Extensions are not representable in E.164 and are dropped.
    """
    region = (default_region or "").strip().upper()
    text = nfkc(raw or "").strip()
    if not text:
        raise ValidationFailed.for_fields({field: ["a phone number is required"]})
    invalid = f"{clip(raw.strip())!r} is not a valid phone number for region {region}"
    # phonenumbers silently maps letters to keypad digits ("1-800-FLOWERS"); in this CRM a
    # letter (or "转" for an extension) is almost always a typo, so refuse rather than guess.
    if any(unicodedata.category(ch).startswith("L") for ch in text):
        raise ValidationFailed.for_fields({field: [invalid + " (it contains letters)"]})
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        raise ValidationFailed.for_fields({field: [invalid]}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed.for_fields({field: [invalid]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Leads come from few domains (a company's, qq.com, 163.com...): email_validator checks each
# address's domain once (IDNA, label rules), not at every capture. Its result is a pure function
# of the domain and the options; an invalid domain raises and is not cached. (The module, not
# the package's function of the same name.)
_email_validation = importlib.import_module("email_validator.validate_email")
_email_validation.validate_email_domain_name = lru_cache(maxsize=4096)(
    _email_validation.validate_email_domain_name)


@_remembered
def normalise_email(raw: str, field: str = "email") -> str:
    """Return the validated, lower-cased address or raise ValidationFailed on `field`.

    The whole address is lower-cased (local parts are case-sensitive in theory, but treating
    Zhang@x.com and zhang@x.com as two leads would defeat duplicate detection). Full-width
    input such as "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ" is accepted via NFKC.
    """
    text = nfkc(raw or "").strip()
    if not text:
        raise ValidationFailed.for_fields({field: ["an email address is required"]})
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        message = f"{clip(raw.strip())!r} is not a valid email address: {exc}"
        raise ValidationFailed.for_fields({field: [message]}) from None
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
def company_text(name: str) -> str:
    """Company name reduced to its distinctive words, Latin words still space-separated."""
    text = nfkc(name or "").casefold()
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
    return company_text(name).replace(" ", "")


def company_similarity(a: str, b: str) -> float:
    """Similarity of two company names in 0..100 (0 when either is empty after normalising).

    Character-level ratio on the keys works for Chinese; token_sort_ratio additionally forgives
    reordered Latin words. Partial-ratio scorers are deliberately not used: they would rate
    "腾讯" against every "腾讯xxx" subsidiary at 100.
    """
    text_a, text_b = company_text(a or ""), company_text(b or "")
    key_a, key_b = text_a.replace(" ", ""), text_b.replace(" ", "")
    if not key_a or not key_b:
        return 0.0
    score = fuzz.ratio(key_a, key_b)
    if " " in text_a or " " in text_b:
        score = max(score, fuzz.token_sort_ratio(text_a, text_b, processor=None))
    return round(float(score), 2)


@lru_cache(maxsize=8192)
def email_for_matching(raw: str) -> str:
    """The address as duplicate detection compares it. Stored data may predate validation: an
    address that does not validate still matches its own twin."""
    try:
        return normalise_email(raw)
    except ValidationFailed:
        return nfkc(raw).strip().casefold()


@lru_cache(maxsize=8192)
def phone_for_matching(raw: str, default_region: str = "CN") -> str:
    """The number as duplicate detection compares it (E.164, or its digits when it does not
    parse)."""
    try:
        return normalise_phone(raw, default_region)
    except ValidationFailed:
        return re.sub(r"[^\d+]", "", nfkc(raw))
