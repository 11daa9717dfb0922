"""Pure rules of the sales numbers: the credit code check digit, custom field definitions and
values, forecast weighting, conversion, accuracy, RFM, health, and reading import files."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import Workbook

from services.sales.domain import credit_code
from services.sales.numbers.domain import custom_fields as cf
from services.sales.numbers.domain import figures as numbers
from services.sales.numbers.domain import import_rows as parsing
from shared.errors import ValidationFailed

# Published codes of well-known companies (business licences), and the standard's example.
VALID_CODES = [
    "9144030071526726XG",  # 深圳市腾讯计算机系统有限公司
    "91330100716105852F",  # 阿里巴巴（中国）有限公司
    "914403001922038216",  # 华为技术有限公司
    "91110108551385082Q",  # 北京小米科技有限责任公司
    "91350100M000100Y43",  # GB 32100-2015 example
]


# -- credit code -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", VALID_CODES)
def test_real_credit_codes_pass_the_check_digit(code):
    assert credit_code.validate(code) == code
    assert credit_code.check_character(code[:17]) == code[17]


def test_credit_codes_are_normalised_before_checking():
    assert credit_code.validate(" 9144 0300-7152 6726xg ") == "9144030071526726XG"
    assert credit_code.validate("９１４４０３００７１５２６７２６ＸＧ") == "9144030071526726XG"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("9144030071526726X", "must be 18 characters, got 17"),
        ("9144030071526726XGG", "must be 18 characters, got 19"),
        ("9144030071526726IG", "character 17 'I' is not allowed"),
        ("91440300715267S6XG", "character 15 'S' is not allowed"),
        ("9144030071526726XA", "last character should be 'G', not 'A'"),
        ("914403001922038217", "last character should be '6', not '7'"),
    ],
)
def test_bad_credit_codes_say_what_is_wrong(code, message):
    with pytest.raises(credit_code.CreditCodeError) as err:
        credit_code.validate(code)
    assert message in str(err.value)
    assert not credit_code.is_valid(code)


def test_a_check_value_of_31_maps_to_zero():
    # find a prefix whose weighted sum is a multiple of 31: its check character is "0"
    prefix = next(
        f"9111000010000{n:04d}" for n in range(10000)
        if sum(credit_code.VALUES[c] * w for c, w in
               zip(f"9111000010000{n:04d}", credit_code.WEIGHTS, strict=True)) % 31 == 0
    )
    assert credit_code.check_character(prefix) == "0"
    assert credit_code.is_valid(prefix + "0")


# -- custom fields ---------------------------------------------------------------------------


def define(**values):
    return cf.validate_definition({"entity": "customer", "label": "字段", **values})


def test_definitions_are_checked_and_name_each_bad_attribute():
    with pytest.raises(ValidationFailed) as err:
        cf.validate_definition({"entity": "lead", "key": "Bad Key", "label": "", "type": "x",
                                "colour": "red"})
    assert set(err.value.errors) == {"entity", "key", "label", "type", "colour"}
    with pytest.raises(ValidationFailed) as err:
        define(key="c", type="choice", options=[])
    assert "options" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        define(key="n", type="number", min=10, max=1, regex="(")
    assert set(err.value.errors) == {"max", "regex"}
    with pytest.raises(ValidationFailed) as err:
        define(key="b", type="boolean", unique=True)
    assert "unique" in err.value.errors
    good = define(key="budget", type="decimal", min="0", max="1e6", unique=True)
    assert good["min"] == "0" and good["max"] == "1E+6" and good["active"] is True
    with pytest.raises(ValidationFailed) as err:
        cf.validate_definition({"type": "text"}, existing=good)
    assert err.value.errors == {"type": ["cannot be changed (it is 'decimal'); add a new field"]}


def test_values_are_typed_checked_and_stored_json_native():
    definitions = [
        define(key="code", type="text", regex=r"[A-Z]{2}\d{2}", required=True),
        define(key="staff", type="number", min=1, max=1000),
        define(key="budget", type="decimal", min="0"),
        define(key="since", type="date", min="2000-01-01"),
        define(key="level", type="choice", options=["金", "银"]),
        define(key="lines", type="multi_choice", options=["MES", "ERP", "WMS"]),
        define(key="listed", type="boolean"),
    ]
    clean = cf.validate_custom(definitions, {
        "code": "AB12", "staff": 12, "budget": 0.1, "since": "2001-02-03", "level": "金",
        "lines": ["WMS", "MES", "WMS"], "listed": False,
    })
    assert clean == {"code": "AB12", "staff": 12, "budget": "0.1", "since": "2001-02-03",
                     "level": "金", "lines": ["MES", "WMS"], "listed": False}
    with pytest.raises(ValidationFailed) as err:
        cf.validate_custom(definitions, {"staff": True, "budget": "abc", "since": "1999-12-31",
                                         "level": "铜", "lines": ["CRM"], "listed": "yes",
                                         "extra": 1})
    assert err.value.errors == {
        "custom.code": ["is required"],
        "custom.staff": ["must be an integer"],
        "custom.budget": ["must be a decimal number"],
        "custom.since": ["must be at least 2000-01-01"],
        "custom.level": ["must be one of: 金, 银"],
        "custom.lines": ["not an option: CRM (options: MES, ERP, WMS)"],
        "custom.listed": ["must be true or false"],
        "custom.extra": ["Unknown custom field."],
    }
    # an update checks only what it gives, but cannot clear a required field
    assert cf.validate_custom(definitions, {"staff": 5}, partial=True) == {"staff": 5}
    with pytest.raises(ValidationFailed) as err:
        cf.validate_custom(definitions, {"code": None}, partial=True)
    assert err.value.errors == {"custom.code": ["is required"]}
    assert cf.merge_custom({"a": 1, "b": 2}, {"a": None, "c": 3}) == {"b": 2, "c": 3}


def test_cell_text_is_read_for_every_type():
    assert cf.clean_value(define(key="n", type="number"), "1,200", from_text=True) == 1200
    assert cf.clean_value(define(key="b", type="boolean"), "是", from_text=True) is True
    assert cf.clean_value(define(key="d", type="date"), "2026/03/05",
                          from_text=True) == "2026-03-05"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        cf.clean_value(define(key="d", type="date"), "05.03.2026", from_text=True)
    assert cf.clean_value(define(key="m", type="multi_choice", options=["甲", "乙"]), "乙；甲",
                          from_text=True) == ["甲", "乙"]


def test_filters_parse_operators_and_types():
    definitions = [define(key="staff", type="number"), define(key="level", type="choice",
                                                            options=["金", "银"])]
    parsed = cf.parse_filters(definitions, {"staff__gte": "10", "level__in": "金,银"})
    assert [(d["key"], op, value) for d, op, value in parsed] == [
        ("staff", "gte", 10), ("level", "in", ["金", "银"])]
    with pytest.raises(ValidationFailed) as err:
        cf.parse_filters(definitions, {"level__gte": "金", "nope": 1, "staff__like": 1})
    assert set(err.value.errors) == {"custom.level__gte", "custom.nope", "custom.staff__like"}
    assert "matches" in " ".join(cf.rules_of(define(key="t", type="text", regex="a+")))


# -- forecast, funnel, accuracy --------------------------------------------------------------


def test_forecast_weights_open_deals_and_adds_won():
    lines = [
        numbers.ForecastLine(Decimal("100000"), 80, "open"),
        numbers.ForecastLine(Decimal("50000"), 50, "open"),
        numbers.ForecastLine(Decimal("33333.33"), 10, "open"),
        numbers.ForecastLine(Decimal("20000"), 100, "won"),
        numbers.ForecastLine(Decimal("99999"), 0, "lost"),
    ]
    result = numbers.forecast(lines)
    assert result["weighted_open"] == Decimal("108333.33")
    assert result["weighted"] == Decimal("128333.33")
    assert result["commit"] == Decimal("120000.00")
    assert result["best_case"] == Decimal("203333.33")
    assert (result["open_count"], result["won_count"]) == (3, 1)


def test_periods_and_snapshot_weeks():
    assert numbers.period_start("quarter", date(2026, 11, 23)) == date(2026, 10, 1)
    assert numbers.period_end("quarter", date(2026, 10, 1)) == date(2026, 12, 31)
    assert numbers.period_end("month", date(2028, 2, 1)) == date(2028, 2, 29)
    assert numbers.period_label("quarter", date(2026, 10, 1)) == "2026-Q4"
    assert numbers.periods_between("month", date(2026, 11, 15), date(2027, 1, 2)) == [
        date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)]
    with pytest.raises(ValueError):
        numbers.check_period_start("quarter", date(2026, 2, 1))
    monday = datetime(2026, 11, 23, 9)
    assert numbers.snapshot_due(None, monday)
    assert not numbers.snapshot_due(datetime(2026, 11, 29, 23), monday.replace(day=24))
    assert numbers.snapshot_due(datetime(2026, 11, 22, 23), monday)  # Sunday: last week


def test_conversion_accuracy_and_attainment():
    stages = numbers.stage_conversion([
        {"name": "a", "kind": "open", "reached": 200}, {"name": "b", "kind": "open",
                                                        "reached": 100},
        {"name": "c", "kind": "open", "reached": 40}, {"name": "won", "kind": "won",
                                                       "reached": 10},
        {"name": "lost", "kind": "lost", "reached": 90},
    ])
    assert [s["conversion_to_next"] for s in stages] == ["0.5000", "0.4000", "0.2500", None,
                                                         None]
    assert stages[3]["conversion_from_first"] == "0.0500"
    assert numbers.win_rate(1, 3) == "0.2500" and numbers.win_rate(0, 0) is None
    result = numbers.accuracy(Decimal("125000"), Decimal("100000"))
    assert result["ratio"] == "0.8000" and result["error_percent"] == "25.00"
    assert numbers.accuracy(Decimal(0), Decimal(0))["ratio"] is None
    assert numbers.attainment(Decimal("20000"), Decimal("40000")) == "50.00"
    assert numbers.attainment(Decimal("1"), None) is None


# -- RFM and health --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_ago", "count", "amount", "segment"),
    [
        (10, 6, "2000000", "champion"),
        (10, 1, "5000", "new"),
        (100, 3, "50000", "loyal"),
        (100, 1, "500000", "big_spender"),
        (100, 1, "5000", "promising"),
        (300, 4, "50000", "at_risk"),
        (300, 1, "5000", "hibernating"),
        (500, 1, "5000", "lost"),
    ],
)
def test_rfm_segments(days_ago, count, amount, segment):
    today = date(2026, 11, 23)
    last = date.fromordinal(today.toordinal() - days_ago)
    result = numbers.rfm(last, count, Decimal(amount), today)
    assert result["segment"] == segment
    assert result["recency_days"] == days_ago and len(result["explanation"]) == 4


def test_rfm_scores_and_no_purchase():
    result = numbers.rfm(date(2026, 11, 1), 3, Decimal("300000"), date(2026, 11, 23))
    assert (result["r"], result["f"], result["m"]) == (5, 4, 4)
    assert "22 days ago" in result["explanation"][0]
    assert numbers.rfm(None, 0, Decimal(0), date(2026, 11, 23))["segment"] == "no_purchase"


def test_health_adds_explained_factors():
    strong = numbers.health(numbers.HealthInputs(3, 12, 2, Decimal("500000"), 3, 1, 0))
    assert strong["score"] == 30 + 20 + 20 + 15 + 10 and strong["band"] == "healthy"
    weak = numbers.health(numbers.HealthInputs(None, 0, 0, Decimal(0), 0, 2, 3))
    assert weak["score"] == 0 and weak["band"] == "at_risk"
    assert weak["explanation"][0] == "recency: 0/30 (never followed up)"
    assert {f["factor"] for f in weak["factors"]} == {"recency", "engagement", "pipeline",
                                                      "wins", "discipline"}


# -- import files ----------------------------------------------------------------------------


def rows_of(sheet):
    return list(sheet.rows)


def test_csv_with_bom_chinese_headers_and_bad_rows():
    content = ("\ufeff名称,统一社会信用代码,客户等级,标签,无关列\n"
               "腾讯,9144030071526726XG,a,重点；华南,x\n"
               "坏公司,9144030071526726XA,Z,,\n"
               ",,,,\n").encode()
    sheet = parsing.read_sheet("客户.csv", content)
    assert sheet.header[0] == "名称" and sheet.total_rows == 2 and sheet.format == "csv"
    columns = parsing.map_header("customer", sheet.header, [])
    assert columns.ignored == ["无关列"]
    rows = rows_of(sheet)
    assert [number for number, _ in rows] == [2, 3]
    good, errors = parsing.clean_row("customer", columns, rows[0][1], {})
    assert errors == {} and good == {"name": "腾讯", "credit_code": "9144030071526726XG",
                                     "tier": "A", "tags": ["重点", "华南"]}
    _, errors = parsing.clean_row("customer", columns, rows[1][1], {})
    assert set(errors) == {"credit_code", "tier"}
    assert "check digit" in errors["credit_code"][0]


def test_gbk_semicolons_and_english_headers():
    content = "Name;Phone;Website\n华为技术有限公司;0755-28780808;huawei.com\n".encode("gbk")
    sheet = parsing.read_sheet("c.csv", content)
    columns = parsing.map_header("customer", sheet.header, [])
    record, errors = parsing.clean_row("customer", columns, rows_of(sheet)[0][1], {})
    assert errors == {} and record["phone"] == "+8675528780808"
    assert record["name"] == "华为技术有限公司"


def test_xlsx_cells_keep_their_meaning():
    book = Workbook()
    book.active.append(["姓名", "客户名称", "手机", "生日", "同意营销", "等级"])
    book.active.append(["王芳", "小米", 13800138000, datetime(1990, 5, 1), "是", "金"])
    buffer = io.BytesIO()
    book.save(buffer)
    definitions = [cf.validate_definition({"entity": "contact", "key": "grade",
                                           "label": "等级", "type": "choice",
                                           "options": ["金", "银"]})]
    sheet = parsing.read_sheet("c.xlsx", buffer.getvalue())
    assert sheet.format == "xlsx" and sheet.total_rows == 1
    columns = parsing.map_header("contact", sheet.header, definitions)
    record, errors = parsing.clean_row("contact", columns, rows_of(sheet)[0][1],
                                       {"grade": definitions[0]})
    assert errors == {}
    assert record == {"name": "王芳", "customer_name": "小米", "phone": "+8613800138000",
                      "birthday": date(1990, 5, 1), "consent": True,
                      "custom": {"grade": "金"}}


def test_file_and_header_problems():
    with pytest.raises(ValidationFailed) as err:
        parsing.read_sheet("x.xlsx", b"plain text")
    assert "file" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        parsing.read_sheet("x.csv", b"")
    assert err.value.errors == {"file": ["the file is empty"]}
    with pytest.raises(ValidationFailed) as err:
        parsing.map_header("contact", ["姓名", "电话"], [])
    assert "no customer column" in err.value.errors["header"][0]
    with pytest.raises(ValidationFailed) as err:
        parsing.map_header("customer", ["名称", "客户名称"], [])
    assert "both give name" in err.value.errors["header"][0]


def test_export_cells_read_back_and_guard_formulas():
    header = parsing.export_header("customer", [{"key": "staff", "label": "员工数"}])
    columns = parsing.map_header("customer", header, [
        cf.validate_definition({"entity": "customer", "key": "staff", "label": "员工数",
                                "type": "number"})])
    assert {target for _, target in columns.columns} >= {"name", "credit_code", "tags",
                                                         "custom.staff"}
    assert parsing.csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert parsing.csv_safe("+8613800138000") == "'+8613800138000"


# -- limits ----------------------------------------------------------------------------------


def test_report_dates_ranges_and_periods_are_bounded():
    numbers.check_dates(date(2024, 1, 1), date(2028, 12, 31))
    numbers.check_dates(None, date(2199, 12, 31))
    with pytest.raises(numbers.RangeError) as err:
        numbers.check_dates(date(78, 11, 2), date(2000, 1, 1))
    assert err.value.field == "date_from"
    with pytest.raises(numbers.RangeError) as err:
        numbers.check_dates(date(2020, 1, 1), date(2026, 1, 1))
    assert err.value.field == "date_to" and "1,827 days" in str(err.value)
    with pytest.raises(numbers.RangeError) as err:
        numbers.check_dates(date(2026, 2, 1), date(2026, 1, 1))
    assert err.value.field == "date_to"
    assert len(numbers.check_periods("forecast_accuracy", "month", date(2026, 1, 15),
                                     date(2026, 12, 1))) == 12
    with pytest.raises(numbers.RangeError) as err:
        numbers.check_periods("forecast_accuracy", "month", date(2026, 1, 15), date(2027, 1, 1))
    assert "at most 12 periods" in str(err.value) and "13" in str(err.value)
    assert len(numbers.check_periods("forecast_accuracy", "quarter", date(2024, 2, 1),
                                     date(2026, 12, 31))) == 12
    assert len(numbers.check_periods("forecast", "month", date(2024, 1, 1),
                                     date(2028, 12, 31))) == 60


def test_custom_field_patterns_are_re2_and_linear_time():
    base = {"entity": "customer", "key": "code", "label": "代码", "type": "text"}
    definition = cf.validate_definition({**base, "regex": "(a+)+$"})
    with pytest.raises(ValueError, match="does not match"):
        cf.clean_value(definition, "a" * 1999 + "!")  # backtracking engines take for ever
    assert cf.clean_value(definition, "aaaa") == "aaaa"
    chinese = cf.validate_definition({**base, "regex": r"[\p{Han}]{2,4}\d{2}"})
    assert cf.clean_value(chinese, "华东区01") == "华东区01"
    for pattern in (r"(a)\1", r"(?<=a)b", r"(?!a)b", "a{1001}", "[z-a]"):
        with pytest.raises(ValidationFailed) as err:
            cf.validate_definition({**base, "regex": pattern})
        assert set(err.value.errors) == {"regex"} and "RE2" in err.value.errors["regex"][0]
    # a pattern stored before RE2 was used is reported, not skipped
    stored = {**definition, "regex": r"(a)\1"}
    with pytest.raises(ValueError, match="cannot be checked"):
        cf.clean_value(stored, "aa")


def test_counting_a_csv_stops_past_the_row_limit_and_pauses():
    paused = []
    text = "名称\n" + "".join(f"公司{i}\n" for i in range(12000))
    sheet = parsing.read_sheet("c.csv", text.encode(), max_rows=100,
                               pause=lambda: paused.append(1))
    assert sheet.total_rows == 101  # one past the limit: refused without reading it all
    sheet = parsing.read_sheet("c.csv", text.encode(), pause=lambda: paused.append(1))
    assert sheet.total_rows == 12000 and len(paused) == 2
    limits = parsing.limits()
    assert limits["max_file_bytes"] == 20 * 1024 * 1024 and limits["max_rows"] == 100_000
    assert "20 MiB" in parsing.limits_text()


def test_an_import_job_moves_from_batches_to_done_or_failed():
    from types import SimpleNamespace

    from services.sales.numbers.domain import import_jobs

    now = datetime(2026, 12, 2, 8, 0)
    job = SimpleNamespace(status="running", dry_run=False, total_rows=3, processed_rows=0,
                          created=0, updated=0, skipped=0, failed=0, errors=None,
                          content=b"name\n", heartbeat_at=None, finished_at=None)
    import_jobs.record_batch(job, 2, {"created": 1, "failed": 1}, now)
    assert (job.processed_rows, job.created, job.failed, job.heartbeat_at) == (2, 1, 1, now)
    assert import_jobs.progress_percent(job) == 66.7
    import_jobs.finish(job, now)
    assert (job.status, job.total_rows, job.content, job.finished_at) == ("done", 2, None, now)
    assert import_jobs.progress_percent(job) == 100.0
    assert import_jobs.outcome(job) == {"created": 1, "updated": 0, "skipped": 0}
    job.dry_run = True
    dry = import_jobs.outcome(job)
    assert dry["would_create"] == 1 and dry["created"] == 0
    broken = SimpleNamespace(**{**vars(job), "status": "running", "content": b"x",
                                "errors": {"ignored_columns": ["x"]}})
    import_jobs.fail(broken, {"file": ["stopped"]}, now)
    assert broken.status == "failed" and broken.content is None
    assert broken.errors == {"ignored_columns": ["x"], "file": ["stopped"]}
