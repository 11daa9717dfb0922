"""sales customers: name keys recomputed with the shared kernel's company key

The leads service and the sales service keyed company names with different suffix and region
lists, so a lead and the customer it became got different duplicate keys. Both now use the
shared kernel's `company_key`; this revision recomputes `customers.name_key` and `name_block`
of the stored rows.

Frozen: the key function below is a copy of shared/kernel/normalise.py as it was when this
revision was written (a later change of the kernel must not change what this migration does;
a later change of the keys is a new revision).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:30:00.000000
"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 1000


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


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



def name_key(name: str) -> str:
    """The customer's name key: the company key, or the folded name when nothing is left."""
    return (company_text(name).replace(" ", "")
            or nfkc(name or "").casefold().replace(" ", ""))


def name_block(key: str) -> str | None:
    return key[:2] or None


def upgrade() -> None:
    customers = sa.table("customers", sa.column("id", sa.String), sa.column("name", sa.String),
                         sa.column("name_key", sa.String), sa.column("name_block", sa.String))
    connection = op.get_bind()
    after = ""
    while True:
        rows = connection.execute(
            sa.select(customers.c.id, customers.c.name, customers.c.name_key,
                      customers.c.name_block)
            .where(customers.c.id > after).order_by(customers.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            key = name_key(row.name)
            if (key, name_block(key)) != (row.name_key, row.name_block):
                connection.execute(customers.update().where(customers.c.id == row.id)
                                   .values(name_key=key, name_block=name_block(key)))
        after = rows[-1].id


def downgrade() -> None:
    # The keys are derived data: the older revisions match customers with these keys too
    # (a little differently), so there is nothing to undo.
    pass
