"""HTTP schemas of the numbers routes (resources/sales_numbers.py): custom fields, quotas,
reports, forecast snapshots, import and export, with the limits they document."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from services.gateway.http_schemas import StrictSchema, page_of, paged
from services.sales.numbers import contract as cf
from services.sales.numbers import contract as import_rules
from services.sales.numbers import contract as report_rules

REPORT_LIMITS_DOC = (
    f"Dates from {report_rules.EARLIEST_DAY.isoformat()} to "
    f"{report_rules.LATEST_DAY.isoformat()}, a range of at most "
    f"{report_rules.MAX_RANGE_DAYS:,} days; at most "
    f"{report_rules.MAX_PERIODS['forecast']} periods (forecast, quota performance) or "
    f"{report_rules.MAX_PERIODS['forecast_accuracy']} (forecast accuracy). Beyond them, a 422 "
    "names the filter and the limit; a report whose query runs too long is a 422 on "
    "`filters` (narrow them)."
)
CUSTOM_FIELDS_DOC = (
    "Custom fields an admin defines for customers, contacts and opportunities. Their values "
    "are the free-form `custom` object of each record, keyed by the field's `key`, checked on "
    "every write (errors name `custom.<key>`) and filterable with `custom.<key>[__op]=value` "
    "(op: " + ", ".join(cf.FILTER_OPERATORS) + "). Rules: "
    + "; ".join(f"{name}: {text}" for name, text in cf.RULES_DOC.items())
    + ". The fields defined now are listed in `components.schemas.CustomFields` and by "
    "GET /custom-fields."
)


class CustomFieldCreateSchema(Schema):
    class Meta:
        unknown = RAISE
        description = CUSTOM_FIELDS_DOC

    entity = fields.String(required=True, validate=validate.OneOf(cf.ENTITIES))
    key = fields.String(required=True, metadata={"description": "a-z, 0-9, _ (max 40)"})
    label = fields.String(required=True, validate=validate.Length(min=1, max=100))
    type = fields.String(required=True, validate=validate.OneOf(cf.FIELD_TYPES))
    required = fields.Boolean(metadata={"description": cf.RULES_DOC["required"]})
    options = fields.List(fields.String(), metadata={"description": cf.RULES_DOC["options"]})
    regex = fields.String(allow_none=True, metadata={"description": cf.RULES_DOC["regex"]})
    min = fields.Raw(allow_none=True, metadata={"description": cf.RULES_DOC["min"]})
    max = fields.Raw(allow_none=True, metadata={"description": cf.RULES_DOC["max"]})
    unique = fields.Boolean(metadata={"description": cf.RULES_DOC["unique"]})
    position = fields.Integer()
    active = fields.Boolean()
    description = fields.String(allow_none=True, validate=validate.Length(max=500))


class CustomFieldUpdateSchema(CustomFieldCreateSchema):
    class Meta:
        unknown = RAISE

    entity = fields.String(validate=validate.OneOf(cf.ENTITIES))
    key = fields.String()
    label = fields.String(validate=validate.Length(min=1, max=100))
    type = fields.String(validate=validate.OneOf(cf.FIELD_TYPES))


class CustomFieldSchema(CustomFieldCreateSchema):
    id = fields.String()
    created_at = fields.String()
    updated_at = fields.String()


class CustomFieldQuerySchema(Schema):
    entity = fields.String(validate=validate.OneOf(cf.ENTITIES))
    include_inactive = fields.Boolean(load_default=False)


class QuotaWriteSchema(StrictSchema):
    user_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    period_kind = fields.String(required=True, validate=validate.OneOf(("month", "quarter")))
    period_start = fields.Date(required=True, metadata={"description": "first day of it"})
    amount = fields.Decimal(required=True, as_string=True, places=2,
                            validate=validate.Range(min=0))
    currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$"))


class QuotaQuerySchema(Schema):
    user_id = fields.List(fields.String())
    team_id = fields.String()
    period_kind = fields.String(validate=validate.OneOf(("month", "quarter")))
    date_from = fields.Date()
    date_to = fields.Date()


class ReportQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # custom.<key> params are read from the query string by hand

    owner_id = fields.List(fields.String(), metadata={"description": "repeat for several"})
    team_id = fields.String(metadata={"description": "the team's members"})
    pipeline_id = fields.String()
    date_from = fields.Date(metadata={"description": "local date, inclusive. "
                                      + REPORT_LIMITS_DOC})
    date_to = fields.Date(metadata={"description": "local date, inclusive. "
                                    + REPORT_LIMITS_DOC})
    period_kind = fields.String(validate=validate.OneOf(("month", "quarter")))


DormantQuerySchema = paged(ReportQuerySchema, "DormantQuerySchema", extra={
    "days": fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))},
    cursor_max_length=None)


class DrillQuerySchema(DormantQuerySchema):
    stage_id = fields.String()
    reason = fields.String()
    source = fields.String()
    run_id = fields.Integer()
    period_start = fields.Date()


class ImportFormSchema(Schema):
    entity = fields.String(required=True, validate=validate.OneOf(("customer", "contact")))
    dry_run = fields.Boolean(load_default=False)
    on_duplicate = fields.String(load_default="skip",
                                 validate=validate.OneOf(("skip", "update", "create")))


class ImportFileSchema(Schema):
    file = Upload(required=True, metadata={
        "description": "CSV (UTF-8 or GBK) or xlsx, at most "
                       f"{import_rules.MAX_FILE_BYTES:,} bytes and "
                       f"{import_rules.MAX_ROWS:,} rows"})


SnapshotQuerySchema = paged(Schema, "SnapshotQuerySchema", cursor_max_length=None,
                            default_limit=20)


class SnapshotSchema(Schema):
    id = fields.Integer()
    taken_at = fields.String()
    week = fields.String(metadata={"description": "ISO week, e.g. 2026-W48"})
    trigger = fields.String(metadata={"enum": ["schedule", "manual"]})
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()


SnapshotPageSchema = page_of(SnapshotSchema, "SnapshotPageSchema")


class ExportQuerySchema(Schema):
    """The filters of GET /customers, /contacts and /opportunities (each applies to the
    entities named), plus custom-field filters `custom.<key>[__op]=value`."""

    class Meta:
        unknown = EXCLUDE  # custom.<key> params are read from the query string by hand

    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))
    q = fields.String(metadata={"description": "customers, contacts, opportunities: text"})
    owner_id = fields.String(metadata={"description": "customers, contacts, opportunities"})
    team_id = fields.String(metadata={"description": "customers, opportunities"})
    customer_id = fields.String(metadata={"description": "contacts, opportunities"})
    tier = fields.String(metadata={"description": "customers: A, B or C"})
    lifecycle_stage = fields.String(metadata={"description": "customers"})
    tag = fields.String(metadata={"description": "customers"})
    region = fields.String(metadata={"description": "customers"})
    industry = fields.String(metadata={"description": "customers"})
    source = fields.String(metadata={"description": "customers, opportunities"})
    credit_code = fields.String(metadata={"description": "customers"})
    created_from = fields.String(metadata={"description": "customers: ISO date-time with zone"})
    created_to = fields.String(metadata={"description": "customers: ISO date-time with zone"})
    include_merged = fields.Boolean(metadata={"description": "customers"})
    role = fields.String(metadata={"description": "contacts: decision role"})
    consent = fields.Boolean(metadata={"description": "contacts"})
    pipeline_id = fields.String(metadata={"description": "opportunities"})
    stage_id = fields.String(metadata={"description": "opportunities"})
    status = fields.String(metadata={"description": "opportunities: open, won, lost"})
    lead_id = fields.String(metadata={"description": "opportunities"})
    close_from = fields.Date(metadata={"description": "opportunities: expected close from"})
    close_to = fields.Date(metadata={"description": "opportunities: expected close to"})


EXPORT_FILTERS = {
    "customer": ("q", "owner_id", "team_id", "tier", "lifecycle_stage", "tag", "region",
                 "industry", "source", "credit_code", "created_from", "created_to",
                 "include_merged"),
    "contact": ("q", "owner_id", "customer_id", "role", "consent"),
    "opportunity": ("q", "owner_id", "team_id", "customer_id", "pipeline_id", "stage_id",
                    "status", "source", "lead_id", "close_from", "close_to"),
}


class ImportQuerySchema(Schema):
    errors_offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
    errors_limit = fields.Integer(load_default=500, validate=validate.Range(min=0, max=5000))
