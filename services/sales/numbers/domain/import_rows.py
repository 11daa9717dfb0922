"""Reading customer and contact files (CSV or xlsx) and checking every row. Pure Python.

A file is read as rows of text; the header row is mapped to fields by English or Chinese
names (名称 / name, 统一社会信用代码 / credit_code, ...), and custom fields by key or label.
Each data row becomes a clean record or a list of problems by field, with its spreadsheet
row number (the header is row 1), so a dry run can report every bad row and field.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.sales.domain import accounts, credit_code
from services.sales.numbers.contract import (  # noqa: F401 - the limits: offered here too
    IMPORT_ENTITIES,
    MAX_ACTIVE_JOBS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    MAX_ROWS_PER_DAY,
    ON_DUPLICATE,
    limits,
    limits_text,
)
from services.sales.numbers.domain.custom_fields import clean_value, field_path
from shared import config
from shared.errors import ValidationFailed
from shared.kernel.normalise import normalise_email, normalise_phone

FORMATS = ("csv", "xlsx")
COUNT_PAUSE_ROWS = 5000  # counting a file's rows calls `pause` this often
MAX_CELL = 2000

# field -> header spellings (compared after NFKC, case-fold, spaces/_/- removed)
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "customer": {
        "name": ("name", "customer", "company", "名称", "客户名称", "客户", "公司名称", "企业名称"),
        "credit_code": ("credit_code", "creditcode", "uscc", "统一社会信用代码", "信用代码",
                        "社会信用代码"),
        "tier": ("tier", "level", "客户等级", "等级", "级别"),
        "lifecycle_stage": ("lifecycle_stage", "lifecycle", "stage", "生命周期", "阶段",
                            "客户阶段"),
        "tags": ("tags", "标签"),
        "owner_id": ("owner_id", "owner", "负责人", "负责人id"),
        "region": ("region", "地区", "区域", "省份"),
        "industry": ("industry", "行业"),
        "source": ("source", "channel", "来源", "渠道", "客户来源"),
        "campaign": ("campaign", "活动", "市场活动"),
        "phone": ("phone", "telephone", "电话", "联系电话", "座机"),
        "website": ("website", "url", "网站", "网址", "官网"),
        "address": ("address", "地址", "公司地址"),
    },
    "contact": {
        "name": ("name", "contact", "姓名", "联系人", "联系人姓名"),
        "customer_name": ("customer", "customer_name", "company", "客户", "客户名称", "公司",
                          "公司名称"),
        "customer_credit_code": ("customer_credit_code", "credit_code", "统一社会信用代码",
                                 "信用代码"),
        "customer_id": ("customer_id", "客户id"),
        "title": ("title", "job_title", "position", "职位", "职务", "头衔"),
        "role": ("role", "decision_role", "角色", "决策角色"),
        "phone": ("phone", "mobile", "手机", "手机号", "电话", "联系电话"),
        "email": ("email", "e-mail", "mail", "邮箱", "电子邮箱", "电子邮件"),
        "wechat": ("wechat", "weixin", "微信", "微信号"),
        "preferred_channel": ("preferred_channel", "channel", "首选渠道", "联系方式偏好"),
        "birthday": ("birthday", "birth_date", "生日", "出生日期"),
        "consent": ("consent", "marketing_consent", "同意营销", "营销许可"),
        "owner_id": ("owner_id", "owner", "负责人", "负责人id"),
    },
}
# Chinese labels of the built-in values, accepted on import and written on export.
ROLE_WORDS = {"决策人": "decision_maker", "技术评估人": "technical_evaluator", "使用者": "user",
              "商务审批人": "business_approver", "影响者": "influencer"}
LIFECYCLE_WORDS = {"潜在客户": "prospect", "成交客户": "customer", "忠诚客户": "advocate",
                   "流失客户": "churned"}
CHANNEL_WORDS = {"电话": "phone", "邮件": "email", "邮箱": "email", "微信": "wechat"}
YES = frozenset({"true", "yes", "y", "1", "是", "同意", "√"})
NO = frozenset({"false", "no", "n", "0", "否", "不同意", "×", ""})


def header_key(text: Any) -> str:
    folded = unicodedata.normalize("NFKC", str(text or "")).casefold().strip()
    return "".join(ch for ch in folded if ch not in " _-*　")


# The file as a whole cannot be read (format, encoding, header). Not a subclass: only the
# registered error classes cross RPC as themselves.
FileProblem = ValidationFailed


# -- reading -------------------------------------------------------------------------------


def sniff_format(filename: str, content: bytes) -> str:
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise FileProblem.for_fields({"file": ["not a valid xlsx file (not a zip archive)"]})
    if filename.lower().endswith(".xls"):
        raise FileProblem.for_fields(
            {"file": ["old .xls files are not supported: save as .xlsx or CSV"]}
        )
    return "csv"


def decode_text(content: bytes) -> str:
    """UTF-8 (a BOM is dropped), else GB18030 (a superset of GBK, what Excel on Chinese
    Windows writes)."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise FileProblem.for_fields(
            {"file": ["cannot decode the file: save it as UTF-8 (or GBK) CSV"]}
        ) from None


@dataclass
class Sheet:
    header: list[str]
    total_rows: int
    rows: Iterator[tuple[int, list[str]]]  # (spreadsheet row number, cells as text)
    format: str = "csv"


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else (
            value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 13800138000.0 -> "13800138000"
    return str(value).strip()


def read_sheet(
    filename: str, content: bytes, *, max_rows: int | None = None,
    pause: Callable[[], None] | None = None,
) -> Sheet:
    """The file's header and rows. `total_rows` of a CSV is counted up to `max_rows` + 1 (a
    larger file is refused without reading it all), calling `pause` (a cooperative yield)
    every COUNT_PAUSE_ROWS rows."""
    if not content:
        raise FileProblem.for_fields({"file": ["the file is empty"]})
    kind = sniff_format(filename, content)
    return _read_xlsx(content) if kind == "xlsx" else _read_csv(content, max_rows, pause)


def _count_rows(text: str, dialect: Any, max_rows: int | None,
                pause: Callable[[], None] | None) -> int:
    total = 0
    for row in csv.reader(io.StringIO(text), dialect):
        if any(c.strip() for c in row):
            total += 1
            if pause is not None and total % COUNT_PAUSE_ROWS == 0:
                pause()
            if max_rows is not None and total > max_rows + 1:  # the header is one of them
                break
    return total


def _read_csv(content: bytes, max_rows: int | None = None,
              pause: Callable[[], None] | None = None) -> Sheet:
    text = decode_text(content)
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # counting first gives the progress total; parsing twice is cheap next to validating
    try:
        total = _count_rows(text, dialect, max_rows, pause)
    except csv.Error as exc:
        raise FileProblem.for_fields({"file": [f"not a readable CSV file: {exc}"]}) from None
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblem.for_fields({"file": ["the file has no header row"]}) from None
    except csv.Error as exc:
        raise FileProblem.for_fields({"file": [f"not a readable CSV file: {exc}"]}) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for row in reader:
                number = reader.line_num
                if any(cell.strip() for cell in row):
                    yield number, [cell.strip() for cell in row]
        except csv.Error as exc:
            raise FileProblem.for_fields(
                {"file": [f"row {number + 1}: not readable CSV: {exc}"]}
            ) from None

    return Sheet([cell.strip() for cell in header], max(total - 1, 0), rows(), "csv")


def _read_xlsx(content: bytes) -> Sheet:
    from openpyxl import load_workbook  # only the xlsx path pays for the import

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise FileProblem.for_fields({"file": [f"not a readable xlsx file: {exc}"]}) from None
    sheet = book.worksheets[0]
    iterator = sheet.iter_rows(values_only=True)
    try:
        header = [cell_text(v) for v in next(iterator)]
    except StopIteration:
        raise FileProblem.for_fields({"file": ["the sheet has no header row"]}) from None
    while header and not header[-1]:
        header.pop()
    total = max((sheet.max_row or 1) - 1, 0)  # from the sheet's dimension: may count blanks

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(iterator, 2):
            cells = [cell_text(v) for v in values[: len(header)]]
            if any(cells):
                yield number, cells
        book.close()

    return Sheet(header, total, rows(), "xlsx")


# -- header --------------------------------------------------------------------------------


@dataclass
class ColumnMap:
    columns: list[tuple[int, str]]  # (column index, field or "custom.<key>")
    ignored: list[str] = field(default_factory=list)


def map_header(entity: str, header: list[str], definitions: list[dict[str, Any]]) -> ColumnMap:
    """Which column feeds which field; unknown columns are ignored (and listed), a repeated
    field or a missing required column is a file problem."""
    spellings: dict[str, str] = {}
    for name, words in HEADERS[entity].items():
        for word in words:
            spellings.setdefault(header_key(word), name)
    for definition in definitions:
        target = field_path(definition["key"])
        for word in (definition["key"], definition["label"], target):
            spellings.setdefault(header_key(word), target)
    columns: list[tuple[int, str]] = []
    seen: dict[str, str] = {}
    ignored: list[str] = []
    errors: list[str] = []
    for index, title in enumerate(header):
        target = spellings.get(header_key(title))
        if target is None:
            if title:
                ignored.append(title)
            continue
        if target in seen:
            errors.append(f"columns {seen[target]!r} and {title!r} both give {target}")
            continue
        seen[target] = title
        columns.append((index, target))
    if "name" not in seen:
        words = " / ".join(HEADERS[entity]["name"][:4])
        errors.append(f"no name column (one of: {words})")
    if entity == "contact" and not ({"customer_name", "customer_credit_code", "customer_id"}
                                    & set(seen)):
        errors.append("no customer column (客户名称 / customer, 统一社会信用代码, customer_id)")
    if errors:
        raise FileProblem.for_fields({"header": errors})
    return ColumnMap(columns, ignored)


# -- rows ----------------------------------------------------------------------------------


def _text(limit: int) -> Callable[[str], str]:
    def clean(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters")
        return value

    return clean


def _word(allowed: tuple[str, ...], words: dict[str, str]) -> Callable[[str], str]:
    def clean(value: str) -> str:
        choice = words.get(value, value.lower() if value.isascii() else value)
        if choice not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return choice

    return clean


def _tier(value: str) -> str:
    tier = value.upper().removesuffix("类").removesuffix("级")
    if tier not in accounts.TIERS:
        raise ValueError(f"{value!r} is not one of {', '.join(accounts.TIERS)}")
    return tier


def _credit_code(value: str) -> str:
    try:
        return credit_code.validate(value)
    except credit_code.CreditCodeError as exc:
        raise ValueError(str(exc)) from None


def _tags(value: str) -> list[str]:
    parts = [p for p in value.replace("；", ";").replace("，", ",").replace(";", ",").split(",")]
    try:
        return accounts.normalise_tags([p for p in parts if p.strip()])
    except ValidationFailed as exc:
        raise ValueError("; ".join(exc.errors.get("tags", ["bad tags"]))) from None


def _via(normalise: Callable[[str], str]) -> Callable[[str], str]:
    def clean(value: str) -> str:
        try:
            return normalise(value)
        except ValidationFailed as exc:
            messages = [m for ms in exc.errors.values() for m in ms]
            raise ValueError("; ".join(messages)) from None

    return clean


def _birthday(value: str) -> date:
    text = value.replace("/", "-").replace(".", "-")[:10]
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None
    if day > date.today():
        raise ValueError("a birthday cannot be in the future")
    return day


def _consent(value: str) -> bool:
    word = value.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise ValueError(f"{value!r} is not yes/no (是/否)")


def _phone(value: str) -> str:
    return _via(lambda raw: normalise_phone(raw, config.default_region()))(value)


CLEANERS: dict[str, dict[str, Callable[[str], Any]]] = {
    "customer": {
        "name": _text(200), "credit_code": _credit_code, "tier": _tier,
        "lifecycle_stage": _word(accounts.LIFECYCLE_STAGES, LIFECYCLE_WORDS), "tags": _tags,
        "owner_id": _text(36), "region": _text(64), "industry": _text(64), "source": _text(64),
        "campaign": _text(128), "phone": _phone, "website": _text(300), "address": _text(500),
    },
    "contact": {
        "name": _text(200), "customer_name": _text(200),
        "customer_credit_code": _credit_code, "customer_id": _text(36), "title": _text(200),
        "role": _word(accounts.CONTACT_ROLES, ROLE_WORDS), "phone": _phone,
        "email": _via(normalise_email), "wechat": _text(64),
        "preferred_channel": _word(accounts.CHANNELS, CHANNEL_WORDS), "birthday": _birthday,
        "consent": _consent, "owner_id": _text(36),
    },
}


def clean_row(
    entity: str,
    columns: ColumnMap,
    cells: list[str],
    definitions_by_key: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(record, problems by field). The record holds only the fields the row gives, with
    custom values under "custom"; a required custom field must be present when the row is
    a new record (checked by the caller, who knows whether it is)."""
    record: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    cleaners = CLEANERS[entity]
    for index, target in columns.columns:
        value = cells[index] if index < len(cells) else ""
        if value.startswith("'"):  # our own export's guard against formula injection
            value = value[1:]
        if len(value) > MAX_CELL:
            errors[target] = [f"at most {MAX_CELL} characters in a cell"]
            continue
        if target.startswith("custom."):
            definition = definitions_by_key[target[7:]]
            try:
                cleaned = clean_value(definition, value, from_text=True)
            except ValueError as exc:
                errors[target] = [str(exc)]
                continue
            if cleaned is None:
                if definition.get("required"):
                    errors[target] = ["is required"]
                continue
            custom[target[7:]] = cleaned
            continue
        if not value:
            if target == "name":
                errors["name"] = ["is required"]
            continue
        try:
            record[target] = cleaners[target](value)
        except ValueError as exc:
            errors[target] = [str(exc)]
    if custom:
        record["custom"] = custom
    return record, errors


def missing_required_custom(
    record: dict[str, Any], definitions: list[dict[str, Any]]
) -> dict[str, list[str]]:
    given = record.get("custom") or {}
    return {
        field_path(d["key"]): ["is required"]
        for d in definitions
        if d.get("required") and d.get("active", True) and d["key"] not in given
    }


# -- export --------------------------------------------------------------------------------

EXPORT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "customer": [
        ("id", "ID"), ("name", "名称"), ("credit_code", "统一社会信用代码"), ("tier", "客户等级"),
        ("lifecycle_stage", "生命周期"), ("tags", "标签"), ("owner_id", "负责人ID"),
        ("region", "地区"), ("industry", "行业"), ("source", "来源"), ("campaign", "市场活动"),
        ("phone", "电话"), ("website", "网站"), ("address", "地址"), ("created_at", "创建时间"),
    ],
    "contact": [
        ("id", "ID"), ("name", "姓名"), ("customer_id", "客户ID"), ("title", "职位"),
        ("role", "角色"), ("phone", "手机"), ("email", "邮箱"), ("wechat", "微信"),
        ("preferred_channel", "首选渠道"), ("birthday", "生日"), ("consent", "同意营销"),
        ("owner_id", "负责人ID"), ("created_at", "创建时间"),
    ],
    "opportunity": [
        ("id", "ID"), ("name", "名称"), ("customer_id", "客户ID"), ("pipeline_id", "销售流程ID"),
        ("stage_id", "阶段ID"), ("amount", "金额"), ("currency", "币种"),
        ("expected_close_date", "预计成交日期"), ("owner_id", "负责人ID"), ("source", "来源"),
        ("status", "状态"), ("closed_at", "关闭时间"), ("created_at", "创建时间"),
    ],
}


def export_header(entity: str, definitions: list[dict[str, Any]]) -> list[str]:
    """Bilingual header that the importer reads back: "名称 (name)"-style is avoided; the
    Chinese spellings above are all known to map_header."""
    return [title for _, title in EXPORT_COLUMNS[entity]] + [d["label"] for d in definitions]


def export_cells(
    entity: str, record: dict[str, Any], definitions: list[dict[str, Any]]
) -> list[Any]:
    cells: list[Any] = []
    for name, _ in EXPORT_COLUMNS[entity]:
        cells.append(_export_value(record.get(name)))
    custom = record.get("custom") or {}
    for definition in definitions:
        cells.append(_export_value(custom.get(definition["key"])))
    return cells


def _export_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value) if not isinstance(value, str) else value


def csv_safe(value: Any) -> Any:
    """Spreadsheet formula injection: a cell starting with = + - @ is read as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # phone numbers in E.164 start with +: they stay numbers-as-text for a human reader
        return "'" + value
    return value
