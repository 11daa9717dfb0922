"""The contract of the sales numbers: the payload schemas of their RPCs and the constants a
caller needs to build a payload or to describe the rules (the gateway states them in the
OpenAPI document and its errors). Defined here; the domain imports them, never the reverse.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from shared import config
from shared.kernel.schemas import ScopeSchema, StrictSchema

# -- custom fields -----------------------------------------------------------------------

ENTITIES = ("customer", "contact", "opportunity")  # the records custom fields are added to
FIELD_TYPES = ("text", "number", "decimal", "date", "choice", "multi_choice", "boolean")
FILTER_OPERATORS = ("eq", "ne", "gte", "lte", "in", "contains", "exists")
REGEX_MAX = 500

# What the OpenAPI document and /custom-fields say about each rule.
RULES_DOC = {
    "type": "one of " + ", ".join(FIELD_TYPES),
    "required": "a value must be given when the record is created and cannot be cleared",
    "options": "choice / multi_choice: the allowed values (strings)",
    "regex": "text: the whole value must match this regular expression (RE2 syntax, at most "
             f"{REGEX_MAX} characters: no back-references or look-around; matching takes time "
             "linear in the value)",
    "min": "number / decimal: smallest value; date: earliest date; text: shortest length",
    "max": "number / decimal: largest value; date: latest date; text: longest length",
    "unique": "no two records of the entity may hold the same value",
}


def rules_of(definition: dict[str, Any]) -> list[str]:
    """The definition's rules in words, for the OpenAPI document and error hints."""
    rules = [f"type {definition['type']}"]
    if definition.get("required"):
        rules.append("required")
    if definition.get("options"):
        rules.append("one of: " + ", ".join(definition["options"]))
    if definition.get("regex"):
        rules.append(f"matches {definition['regex']}")
    lo, hi = definition.get("min"), definition.get("max")
    word = "length" if definition["type"] == "text" else "value"
    if lo is not None:
        rules.append(f"{word} >= {lo}")
    if hi is not None:
        rules.append(f"{word} <= {hi}")
    if definition.get("unique"):
        rules.append("unique")
    return rules


# -- import and export ---------------------------------------------------------------------

IMPORT_ENTITIES = ("customer", "contact")
ON_DUPLICATE = ("skip", "update", "create")
EXPORT_ENTITIES = ("customer", "contact", "opportunity")
EXPORT_FORMATS = ("csv", "xlsx")
# What one user may import (the service enforces them, the gateway states them in the OpenAPI
# document and its 413): bytes and rows of one file, imports queued or running at once, rows
# in 24 hours.
MAX_FILE_BYTES = int(config.env("SALES_IMPORT_MAX_BYTES", str(20 * 1024 * 1024)))
MAX_ROWS = int(config.env("SALES_IMPORT_MAX_ROWS", "100000"))
MAX_ACTIVE_JOBS = int(config.env("SALES_IMPORT_MAX_ACTIVE_JOBS", "2"))
MAX_ROWS_PER_DAY = int(config.env("SALES_IMPORT_MAX_ROWS_PER_DAY", "300000"))


def limits() -> dict[str, int]:
    return {"max_file_bytes": MAX_FILE_BYTES, "max_rows": MAX_ROWS,
            "max_active_jobs": MAX_ACTIVE_JOBS, "max_rows_per_day": MAX_ROWS_PER_DAY}


def limits_text() -> str:
    """The limits in words, for the OpenAPI document and error messages."""
    return (f"at most {MAX_FILE_BYTES / (1024 * 1024):g} MiB ({MAX_FILE_BYTES:,} bytes) and "
            f"{MAX_ROWS:,} rows a file; at most {MAX_ACTIVE_JOBS} imports queued or running "
            f"per user; at most {MAX_ROWS_PER_DAY:,} rows per user in 24 hours (dry runs "
            "count)")


# -- report ranges -------------------------------------------------------------------------

PERIOD_KINDS = ("month", "quarter")
# The figures drill_down can list the records of.
FIGURES = ("funnel", "won", "lost", "forecast", "channel", "slippage", "dormant", "quota",
           "cycle")
# Every report's range is bounded, so one request cannot run for minutes (a range of 1,922
# years by month once froze the service): dates within these years, a range of at most
# MAX_RANGE_DAYS, and at most a report's own number of periods (each period costs queries).
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)
MAX_RANGE_DAYS = 5 * 365 + 2  # five years, leap days included
MAX_PERIODS = {"forecast": 61, "quota_performance": 61, "forecast_accuracy": 12}


class RangeError(ValueError):
    """A report range out of bounds; `field` is the filter to name in the 422."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_dates(first: date | None, last: date | None) -> None:
    """Each given date within [EARLIEST_DAY, LATEST_DAY]; a closed range of at most
    MAX_RANGE_DAYS days."""
    for name, day in (("date_from", first), ("date_to", last)):
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise RangeError(name, f"must be between {EARLIEST_DAY.isoformat()} and "
                                   f"{LATEST_DAY.isoformat()}")
    if first is not None and last is not None:
        if last < first:
            raise RangeError("date_to", "must not be before date_from")
        days = (last - first).days + 1
        if days > MAX_RANGE_DAYS:
            raise RangeError("date_to", f"a report covers at most {MAX_RANGE_DAYS:,} days "
                                        f"(5 years); this range has {days:,}: narrow it")


def check_period_start(kind: str, start: date) -> None:
    """ValueError unless `start` is the first day of a period of `kind`."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"must be one of {', '.join(PERIOD_KINDS)}")
    if start.day != 1 or (kind == "quarter" and start.month not in (1, 4, 7, 10)):
        raise ValueError(
            "a month starts on day 1" if kind == "month"
            else "a quarter starts on 1 January, April, July or October"
        )


# -- RPC payloads --------------------------------------------------------------------------


class NumbersFiltersSchema(StrictSchema):
    owner_ids = fields.List(fields.String(), load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    pipeline_id = fields.String(load_default=None, allow_none=True)
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    period_kind = fields.String(load_default=None, allow_none=True,
                                validate=validate.OneOf(PERIOD_KINDS))
    custom = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        try:
            check_dates(data.get("date_from"), data.get("date_to"))
        except RangeError as exc:
            raise ValidationError(str(exc), exc.field) from None


class QuotaSchema(StrictSchema):
    user_id = fields.String(load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    period_kind = fields.String(required=True, validate=validate.OneOf(PERIOD_KINDS))
    period_start = fields.Date(required=True)
    amount = fields.Decimal(required=True, places=2, validate=validate.Range(min=0),
                            allow_nan=False)
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"))

    @validates_schema
    def _subject(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("user_id")) == bool(data.get("team_id")):
            raise ValidationError("give exactly one of user_id or team_id", "user_id")
        if "period_start" in data and "period_kind" in data:
            try:
                check_period_start(data["period_kind"], data["period_start"])
            except ValueError as exc:
                raise ValidationError(str(exc), "period_start") from None


class QuotaFiltersSchema(StrictSchema):
    user_ids = fields.List(fields.String(), load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)
    period_kind = fields.String(load_default=None, allow_none=True,
                                validate=validate.OneOf(PERIOD_KINDS))
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)


class ImportOptionsSchema(StrictSchema):
    dry_run = fields.Boolean(load_default=False)
    on_duplicate = fields.String(load_default="skip", validate=validate.OneOf(ON_DUPLICATE))
    owner_id = fields.String(load_default=None, allow_none=True)
    team_id = fields.String(load_default=None, allow_none=True)


filters_schema = NumbersFiltersSchema()
quota_schema = QuotaSchema()
quota_filters_schema = QuotaFiltersSchema()
import_options_schema = ImportOptionsSchema()
scope_schema = ScopeSchema()  # the kernel's, as the core of sales loads it
