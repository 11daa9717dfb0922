"""The contracts service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. The gateway (and any other party) imports this module and
no other of the service.

Events go to the exchange `contracts.events` with the event type as routing key.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared import config
from shared.kernel.schemas import PageSchema, ScopeSchema, StrictSchema
from shared.payloads import PassesFormatted, Timestamp

__all__ = ["EVENT_SCHEMAS"]

EVENT_SCHEMAS: dict[str, type[Schema]] = {}


# -- approvals ----
# Approval flows and instances, generic over the record they approve (services/contracts/
# domain/approvals.py explains flows, modes, fallback and the terms hash).
APPROVAL_MODES = ("all", "any", "quorum")
APPROVER_KINDS = ("user", "role", "manager", "manager_chain", "team")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "recalled", "voided")
_record_type = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$",
                               error="lower-case letters, digits and _, at most 64")


class ApproverSpecSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(APPROVER_KINDS))
    id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=36))
    role = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    levels = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(min=1, max=10))


class EscalateToSchema(StrictSchema):
    """Who an undecided step is escalated to: `manager` (the waiting approvers' managers,
    the default) or `user` (`id`)."""

    kind = fields.String(required=True, validate=validate.OneOf(("manager", "user")))
    id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=36))


class ApprovalStepSchema(StrictSchema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    condition = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=2000))
    approvers = fields.List(fields.Nested(ApproverSpecSchema), required=True,
                            validate=validate.Length(min=1, max=50))
    mode = fields.String(load_default="all", validate=validate.OneOf(APPROVAL_MODES))
    quorum = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(min=1, max=50))
    on_reject = fields.String(load_default="submitter",
                              validate=validate.OneOf(("submitter", "previous")))
    # contract approval: escalation of a step not decided within N business hours
    escalate_after_hours = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=2000),
        strict=True, metadata={
            "description": "business hours (Mon-Fri 09:00-18:00 CRM_TIMEZONE, Chinese public "
                           "holidays off, make-up days on) before the step is escalated"})
    escalate_to = fields.Nested(EscalateToSchema, load_default=None, allow_none=True)


class ApprovalFlowWriteSchema(StrictSchema):
    record_type = fields.String(required=True, validate=_record_type)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    position = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10000))
    condition = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=2000))
    steps = fields.List(fields.Nested(ApprovalStepSchema), required=True,
                        validate=validate.Length(min=1, max=20))
    cc = fields.List(fields.Nested(ApproverSpecSchema), load_default=list,
                     validate=validate.Length(max=50))
    fallback_approver = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(max=36))
    allow_self_approval = fields.Boolean(load_default=False)
    active = fields.Boolean(load_default=True)


class ApprovalSubmitSchema(StrictSchema):
    record_type = fields.String(required=True, validate=_record_type)
    record_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    terms = fields.Dict(keys=fields.String(), required=True)
    terms_version = fields.Integer(load_default=1, validate=validate.Range(min=1))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class ApprovalDecisionSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))
    terms_hash = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(equal=64))


class ApprovalDelegateSchema(StrictSchema):
    to_user = fields.String(required=True, validate=validate.Length(min=1, max=36))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=2000))


class ApprovalAbsenceSchema(StrictSchema):
    delegate_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    until = fields.AwareDateTime(required=True)


APPROVAL_BOXES = ("inbox", "submitted")


class ApprovalPageSchema(PageSchema):
    """A page of my approvals: `inbox` (waiting for my answer) or `submitted` (mine, any
    status)."""

    box = fields.String(load_default="inbox", validate=validate.OneOf(APPROVAL_BOXES))


class ApprovalEvent(Schema):
    """About one approval instance of a record."""

    instance_id = fields.String(required=True)
    record_type = fields.String(required=True)
    record_id = fields.String(required=True)
    submitter = fields.String(required=True)
    terms_hash = fields.String(required=True)
    terms_version = fields.Integer(required=True)


class ApprovalRequested(ApprovalEvent):
    """A step waits for its approvers (`approver_ids`, to be notified); also sent to a delegate."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    mode = fields.String(required=True)
    approver_ids = fields.List(fields.String(), required=True)
    cc_ids = fields.List(fields.String(), required=True)
    delegated_by = fields.String()
    escalated = fields.Boolean(metadata={"description": "to an escalation approver"})
    approval = fields.Nested(lambda: ApprovalRecordSnapshot(), metadata={
        "description": "the approval as the rules service keeps it (record type `approval`): "
                       "its notification rule notifies `field:approver_ids`"})


class ApprovalStepCompleted(ApprovalEvent):
    """A step was decided (`outcome` approved or rejected) with every answer given."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    outcome = fields.String(required=True)
    answers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ApprovalApproved(ApprovalEvent):
    """Every step approved: the terms with this hash are approved."""

    cc_ids = fields.List(fields.String(), required=True)


class ApprovalRejected(ApprovalEvent):
    """An approver rejected: back to the submitter."""

    step = fields.Integer(required=True)
    by = fields.String(required=True)
    comment = fields.String(allow_none=True)


class ApprovalRecalled(ApprovalEvent):
    """The submitter took the submission back."""

    comment = fields.String(allow_none=True)


class ApprovalVoided(ApprovalEvent):
    """The record's terms no longer match the hash approved or submitted: void, with why."""

    current_hash = fields.String(required=True)
    reason = fields.String(required=True)


EVENT_SCHEMAS.update({
    "approval_requested": ApprovalRequested,
    "approval_step_completed": ApprovalStepCompleted,
    "approval_approved": ApprovalApproved,
    "approval_rejected": ApprovalRejected,
    "approval_recalled": ApprovalRecalled,
    "approval_voided": ApprovalVoided,
})


# -- pdf ----
PRINT_RECORD_TYPES = ("quote",)


class PrintTemplateWriteSchema(StrictSchema):
    """A print template (打印模板): HTML+CSS with Jinja2 placeholders ({{ quote.number }},
    {% for line in quote.lines %}, {{ company.name }}); refused at save when it does not render."""

    record_type = fields.String(load_default="quote", validate=validate.OneOf(PRINT_RECORD_TYPES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(required=True, validate=validate.Length(min=1, max=200_000))
    is_default = fields.Boolean(load_default=False)


# -- quotes (products, price books, quotes) ----


__all__ += ["PageSchema", "ScopeSchema", "StrictSchema"]

TAX_RATES = ("13", "9", "6", "0")  # China VAT, percent
QUOTE_STATUSES = ("draft", "in_approval", "approved", "sent", "accepted", "rejected",
                  "expired")
DISCOUNT_KINDS = ("percent", "amount")
MAX_LINES = 500
MAX_AMOUNT = Decimal("1e13")
currency_code = validate.Regexp(r"^[A-Z]{3}$", error="an ISO 4217 code such as CNY or USD")


def _places(most: int) -> validate.Validator:
    def check(value: Decimal) -> None:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -most:
            raise ValidationError(f"at most {most} decimal places")
    return check


class DecimalText(PassesFormatted, fields.Decimal):
    """A decimal: numbers or strings in, a string out."""

    def __init__(self, most_places: int = 2, minimum: str = "0", **kwargs: Any) -> None:
        checks = [_places(most_places), validate.Range(min=Decimal(minimum), max=MAX_AMOUNT)]
        super().__init__(as_string=True, allow_nan=False, validate=checks, **kwargs)


class QuoteDate(PassesFormatted, fields.Date):
    """An ISO date."""


def optional_text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=max_length), **kwargs)


def required_text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=max_length),
                         **kwargs)


class ProductWriteSchema(StrictSchema):
    code = required_text(64)
    name = required_text(200)
    unit = required_text(32)
    category = optional_text(100)
    tax_rate = fields.String(required=True, validate=validate.OneOf(TAX_RATES), metadata={
        "description": "China VAT in percent: 13, 9, 6 or 0"})
    active = fields.Boolean(load_default=True)


class _Partial:
    """A change: any subset of the fields (none required, no defaults filled in)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(**kwargs)  # type: ignore[call-arg]


class ProductChangeSchema(_Partial, ProductWriteSchema):
    """Any subset of a product's fields."""


class ProductSchema(Schema):
    id = fields.String()
    code = fields.String()
    name = fields.String()
    unit = fields.String()
    category = fields.String(allow_none=True)
    tax_rate = fields.String()
    active = fields.Boolean()
    created_at = Timestamp()
    updated_at = Timestamp()


class ProductFiltersSchema(StrictSchema):
    include_inactive = fields.Boolean(load_default=False, metadata={
        "description": "admins and managers only: inactive products too"})
    category = optional_text(100)


class TierSchema(StrictSchema):
    product_id = required_text(36)
    min_quantity = DecimalText(most_places=4, required=True)
    unit_price = DecimalText(most_places=4, required=True)


class PriceBookWriteSchema(StrictSchema):
    name = required_text(200)
    channel = optional_text(64, metadata={"description": "empty: any channel"})
    region = optional_text(64, metadata={"description": "empty: any region"})
    customer_tier = optional_text(16, metadata={"description": "empty: any customer tier"})
    currency = fields.String(load_default="CNY", validate=currency_code)
    valid_from = QuoteDate(allow_none=True, load_default=None)
    valid_to = QuoteDate(allow_none=True, load_default=None)
    active = fields.Boolean(load_default=True)
    tiers = fields.List(fields.Nested(TierSchema), load_default=list,
                        validate=validate.Length(max=5000))

    @validates_schema
    def _dates(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("valid_from"), data.get("valid_to")
        if start and end and end < start:
            raise ValidationError("must not be before valid_from", "valid_to")


class PriceBookChangeSchema(_Partial, PriceBookWriteSchema):
    """Any subset of a price book's fields; `tiers` replaces all tiers."""


class PriceBookSchema(Schema):
    id = fields.String()
    name = fields.String()
    channel = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    customer_tier = fields.String(allow_none=True)
    currency = fields.String()
    valid_from = QuoteDate(allow_none=True)
    valid_to = QuoteDate(allow_none=True)
    active = fields.Boolean()
    tiers = fields.List(fields.Nested(TierSchema))
    created_at = Timestamp()
    updated_at = Timestamp()


class PriceBookFiltersSchema(StrictSchema):
    include_inactive = fields.Boolean(load_default=False, metadata={
        "description": "admins and managers only: inactive books too"})


class DiscountSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(DISCOUNT_KINDS))
    value = DecimalText(most_places=2, required=True)


class LineInputSchema(StrictSchema):
    product_id = required_text(36)
    quantity = DecimalText(most_places=4, minimum="0.0001", required=True)
    unit_price = DecimalText(most_places=4, allow_none=True, load_default=None, metadata={
        "description": "empty: the price book's price (see price_source)"})
    discount = fields.Nested(DiscountSchema, allow_none=True, load_default=None)
    section = optional_text(100, load_default=None)
    note = optional_text(2000, load_default=None)
    optional = fields.Boolean(load_default=False, metadata={
        "description": "an optional line is priced but not in the totals"})


class QuoteTermsSchema(StrictSchema):
    """The terms of a quote version (what PATCH changes while the quote is a draft)."""

    title = optional_text(200, load_default=None)
    currency = fields.String(load_default="CNY", validate=currency_code)
    valid_until = QuoteDate(allow_none=True, load_default=None)
    channel = optional_text(64, load_default=None)
    region = optional_text(64, load_default=None)
    customer_tier = optional_text(16, load_default=None)
    discount = fields.Nested(DiscountSchema, allow_none=True, load_default=None, metadata={
        "description": "the quote-level discount, spread over the non-optional lines"})
    notes = optional_text(5000, load_default=None)
    lines = fields.List(fields.Nested(LineInputSchema), load_default=list,
                        validate=validate.Length(max=MAX_LINES))


class QuoteCreateSchema(QuoteTermsSchema):
    opportunity_id = required_text(36)


class QuoteChangeSchema(StrictSchema):
    """Any subset of the terms; `lines`, when given, replaces all lines."""

    title = optional_text(200)
    currency = fields.String(validate=currency_code)
    valid_until = QuoteDate(allow_none=True)
    channel = optional_text(64)
    region = optional_text(64)
    customer_tier = optional_text(16)
    discount = fields.Nested(DiscountSchema, allow_none=True)
    notes = optional_text(5000)
    lines = fields.List(fields.Nested(LineInputSchema), validate=validate.Length(max=MAX_LINES))


class PriceSourceSchema(Schema):
    kind = fields.String(metadata={"description": "price_book or given"})
    price_book_id = fields.String()
    price_book_name = fields.String()
    tier_min_quantity = fields.String()
    unit_price = fields.String()


class QuoteLineSchema(Schema):
    product_id = fields.String()
    product_code = fields.String()
    product_name = fields.String()
    unit = fields.String()
    quantity = fields.String()
    unit_price = fields.String()
    price_source = fields.Nested(PriceSourceSchema)
    discount = fields.Nested(DiscountSchema, allow_none=True)
    section = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    optional = fields.Boolean()
    tax_rate = fields.String()
    gross = fields.String()
    net = fields.String()
    quote_discount_share = fields.String()
    tax = fields.String()
    total = fields.String()


class QuoteTotalsSchema(Schema):
    subtotal = fields.String()
    discount_total = fields.String()
    net_total = fields.String()
    tax_total = fields.String()
    grand_total = fields.String()


class QuoteSchema(Schema):
    id = fields.String()
    opportunity_id = fields.String()
    customer_id = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "as it reads now: a quote past its "
                                     "valid_until reads expired"})
    status_reason = fields.String(allow_none=True)
    version = fields.Integer()
    current_version = fields.Integer()
    title = fields.String(allow_none=True)
    currency = fields.String()
    valid_until = QuoteDate(allow_none=True)
    channel = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    customer_tier = fields.String(allow_none=True)
    discount = fields.Nested(DiscountSchema, allow_none=True)
    notes = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(QuoteLineSchema))
    totals = fields.Nested(QuoteTotalsSchema)
    amount_in_words = fields.String(metadata={"description": "the grand total in 大写"})
    created_by = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class QuoteFiltersSchema(StrictSchema):
    opportunity_id = optional_text(36)
    customer_id = optional_text(36)
    owner_id = optional_text(36)
    status = fields.String(validate=validate.OneOf(QUOTE_STATUSES[:-1]), metadata={
        "description": "the stored status (expiry is read, not stored)"})


class QuoteDecisionSchema(StrictSchema):
    reason = optional_text(1000, load_default=None)


class QuoteAcceptSchema(QuoteDecisionSchema):
    stage_id = optional_text(36, load_default=None, metadata={
        "description": "the stage the opportunity moves to; empty: its pipeline's won stage"})


class QuoteEvent(Schema):
    quote = fields.Nested(QuoteSchema, required=True)


class QuoteRevised(QuoteEvent):
    previous_version = fields.Integer(required=True)


class QuoteStatusChanged(QuoteEvent):
    from_status = fields.String(required=True)
    to_status = fields.String(required=True)
    reason = fields.String(allow_none=True)


class QuoteAccepted(QuoteEvent):
    opportunity_id = fields.String(required=True)
    amount = fields.String(required=True)


EVENT_SCHEMAS.update({
    "quote_created": QuoteEvent,
    "quote_revised": QuoteRevised,
    "quote_status_changed": QuoteStatusChanged,
    "quote_accepted": QuoteAccepted,
})


# -- contracts ----
class Trimmed(fields.String):
    """A string stripped of surrounding whitespace before it is validated (so a length limit
    reads the text kept); `empty_none`: what is empty once stripped loads as None."""

    def __init__(self, *args: Any, empty_none: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.empty_none = empty_none

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return None if self.empty_none and not text else text

    def _validate(self, value: Any) -> None:
        if value is not None:  # empty once stripped: None, which the length does not read
            super()._validate(value)


def dotted(messages: Any, prefix: str = "") -> dict[str, Any]:
    """marshmallow's nested messages ({"clauses": {0: {"title": [...]}}}) keyed by the dotted
    path of the field ({"clauses.0.title": [...]})."""
    if not isinstance(messages, dict):
        return {prefix or "_schema": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(dotted(value, name))
        else:
            flat[name] = value
    return flat


class DottedErrors:
    """Schema mixin: errors of nested fields name their dotted path (`clauses.0.title`,
    `payer.name`), over RPC and over HTTP alike (the gateway loads with the same schema)."""

    def handle_error(self, error: ValidationError, data: Any, *, many: bool,
                     **kwargs: Any) -> None:
        raise ValidationError(dotted(error.messages), data=error.data,
                              valid_data=error.valid_data)


class ClauseSchema(StrictSchema):
    """One clause of a contract (and of the standard clauses): the one shape `create_contract`,
    `update_contract` and `set_standard_clauses` take, so the same body is valid for all;
    an error names the field (`clauses.0.title`)."""

    code = Trimmed(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "the clause's code, e.g. `warranty` (compared with the standard "
                       "clauses')"})
    title = Trimmed(load_default=None, allow_none=True, empty_none=True,
                    validate=validate.Length(max=200))
    text = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


def clauses_field(**kwargs: Any) -> fields.List:
    """The `clauses` of a contract payload: at most 200 clauses of ClauseSchema."""
    return fields.List(fields.Nested(ClauseSchema), validate=validate.Length(max=200),
                       **kwargs)


class ContractCreateSchema(DottedErrors, StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    customer_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    opportunity_id = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(max=36))
    amount = fields.Decimal(load_default=None, as_string=True, places=2, metadata={
        "description": "required, unless `quote_id` is given (then the quote's grand total)"},
                            validate=validate.Range(min=0, max=10**12))
    currency = fields.String(load_default=None, validate=validate.Length(equal=3), metadata={
        "description": "default CNY, or the quote's currency when `quote_id` is given"})
    # c-receipts: the accepted quote the contract is made from
    quote_id = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(min=1, max=36), metadata={
        "description": "an accepted quote of the opportunity (and customer) the caller "
                       "sees; its lines become the ERP order's; else a 422 on quote_id"})
    # overdue and renewals: the term and the parties / clauses a renewal copies
    start_date = fields.Date(load_default=None, allow_none=True)
    end_date = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "the last day of the term; the renewal reminder is 30 days before"})
    parties = fields.List(fields.Dict(), load_default=list, validate=validate.Length(max=20))
    clauses = clauses_field(load_default=list)

    @validates_schema
    def _term(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start_date") and data.get("end_date") and (
                data["end_date"] < data["start_date"]):
            raise ValidationError({"end_date": ["before the start date"]})

    @validates_schema
    def _amount(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("amount") is None and not data.get("quote_id"):
            raise ValidationError({"amount": ["Missing data for required field."]})


class ContractSnapshot(Schema):
    id = fields.String(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.String(required=True)
    # overdue and renewals: what rules need to time and address reminders
    title = fields.String()
    currency = fields.String()
    owner_id = fields.String()
    customer_id = fields.String()
    start_date = fields.String(allow_none=True)
    end_date = fields.String(allow_none=True)
    renews_id = fields.String(allow_none=True)
    renewed_by_id = fields.String(allow_none=True)
    updated_at = fields.String()
    quote_id = fields.String(allow_none=True)  # c-receipts: the quote it was made from


class ContractCreated(Schema):
    contract = fields.Nested(ContractSnapshot, required=True)


EVENT_SCHEMAS.update({"contract_created": ContractCreated})


# -- contracts (RPC: visibility, sign, terminate, payment collection) ----
CONTRACT_STATUSES = ("draft", "in_approval", "approved", "active", "expired", "terminated",
                     "renewed")


class ContractSchema(Schema):
    id = fields.String(required=True)
    number = fields.String(required=True, metadata={"description": "HT-<year>-<6 digits>"})
    status = fields.String(required=True, validate=validate.OneOf(CONTRACT_STATUSES))
    title = fields.String(required=True)
    customer_id = fields.String(required=True)
    opportunity_id = fields.String(allow_none=True)
    owner_id = fields.String(required=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    start_date = fields.String(allow_none=True)
    end_date = fields.String(allow_none=True)
    # overdue and renewals
    parties = fields.List(fields.Dict())
    clauses = fields.List(fields.Nested(ClauseSchema))
    quote_id = fields.String(allow_none=True, metadata={
        "description": "the accepted quote it was made from; null for a direct contract"})
    renews_id = fields.String(allow_none=True, metadata={
        "description": "the contract this one renews"})
    renewed_by_id = fields.String(allow_none=True, metadata={
        "description": "the renewal of this contract"})
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class ContractFiltersSchema(StrictSchema):
    customer_id = fields.String(validate=validate.Length(min=1, max=36))
    opportunity_id = fields.String(validate=validate.Length(min=1, max=36))
    owner_id = fields.String(validate=validate.Length(min=1, max=36))
    status = fields.String(validate=validate.OneOf(CONTRACT_STATUSES))


class ContractTerminateSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class InstalmentInputSchema(StrictSchema):
    due_date = fields.Date(required=True)
    amount = fields.Decimal(as_string=True, places=2, allow_none=True, load_default=None,
                            validate=validate.Range(min=0, max=10**12))
    percentage = fields.Decimal(as_string=True, places=4, allow_none=True, load_default=None,
                                validate=validate.Range(min=0, max=100))
    label = fields.String(allow_none=True, load_default=None,
                          validate=validate.Length(max=200))


class PaymentPlanSchema(StrictSchema):
    instalments = fields.List(fields.Nested(InstalmentInputSchema), required=True,
                              validate=validate.Length(max=120), metadata={
        "description": "each with exactly one of amount or percentage; the sum never "
                       "exceeds the contract amount (422 naming `instalments`)"})


class InstalmentSchema(Schema):
    id = fields.String(required=True)
    seq = fields.Integer(required=True)
    due_date = fields.String(required=True)
    amount = fields.String(required=True)
    paid = fields.String(required=True)
    status = fields.String(required=True)


class PaymentPlanViewSchema(Schema):
    items = fields.List(fields.Nested(InstalmentSchema), required=True)


class PayerInputSchema(StrictSchema):
    """Who paid a receipt: the name (trimmed, 1-200), and optionally the bank account
    (trimmed, up to 64) and the payer's own reference (up to 100)."""

    name = Trimmed(required=True, validate=validate.Length(min=1, max=200))
    account = Trimmed(load_default=None, allow_none=True, empty_none=True,
                      validate=validate.Length(max=64))
    reference = Trimmed(load_default=None, allow_none=True, empty_none=True,
                        validate=validate.Length(max=100))


class PayerSchema(Schema):
    name = fields.String(allow_none=True, metadata={
        "description": "always given by a user; the ERP may send an account only"})
    account = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)


RECEIPT_SOURCES = ("user", "erp")


class ReceiptCreateSchema(DottedErrors, StrictSchema):
    amount = fields.Decimal(required=True, as_string=True, places=2,
                            validate=validate.Range(min=0.01, max=10**12))
    received_on = fields.Date(required=True)
    method = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=40))
    reference = fields.String(allow_none=True, load_default=None,
                              validate=validate.Length(max=100))
    instalment_id = fields.String(allow_none=True, load_default=None,
                                  validate=validate.Length(min=1, max=36))
    payer = fields.Nested(PayerInputSchema, allow_none=True, load_default=None,
                          metadata={"description": "who paid (optional)"})


class AllocationSchema(Schema):
    instalment_id = fields.String(required=True)
    amount = fields.String(required=True)


class ReceiptSchema(Schema):
    id = fields.String(required=True)
    contract_id = fields.String()
    amount = fields.String(required=True)
    received_on = fields.String()
    method = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    allocations = fields.List(fields.Nested(AllocationSchema), required=True)
    created_at = fields.String()
    # c-receipts: who paid, and who recorded it
    payer = fields.Nested(PayerSchema, allow_none=True, metadata={
        "description": "who paid; null when nobody said"})
    source = fields.String(validate=validate.OneOf(RECEIPT_SOURCES), metadata={
        "description": "user (recorded by a user) or erp (the ERP's payment_received, also "
                       "while the contract is in approval)"})


class ReceiptListSchema(Schema):
    items = fields.List(fields.Nested(ReceiptSchema), required=True)


class ReceivablesSchema(Schema):
    contract_amount = fields.String(required=True)
    received = fields.String(required=True)
    outstanding = fields.String(required=True)
    overdue = fields.String(required=True)
    # erp part: invoices (开票)
    invoiced = fields.String(required=True, metadata={
        "description": "the sum of the contract's issued (not void) invoices"})
    uninvoiced = fields.String(required=True, metadata={
        "description": "the contract amount not invoiced yet"})


class OrderSnapshot(Schema):
    number = fields.String(required=True)
    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    customer_id = fields.String(required=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    # erp: the order's lines and where they came from (defined in the erp section below)
    lines = fields.List(fields.Nested("OrderLineSchema"), required=True)
    source = fields.Nested("OrderSourceSchema", required=True)
    status = fields.String(metadata={"description": "created or shipped"})


class ContractSigned(Schema):
    contract = fields.Nested(ContractSnapshot, required=True)


class OrderCreated(Schema):
    order = fields.Nested(OrderSnapshot, required=True)


class ContractTerminated(Schema):
    contract = fields.Nested(ContractSnapshot, required=True)
    reason = fields.String(required=True)


EVENT_SCHEMAS.update({"contract_signed": ContractSigned, "order_created": OrderCreated,
                      "contract_terminated": ContractTerminated})


# -- erp: order lines, invoices (开票), the ERP's inbound events ----
# Orders to the ERP carry their lines; invoices per receipt or instalment; the ERP sends
# payments, invoices and shipments to the inbound exchange `erp.events` (INBOUND_EVENT_SCHEMAS).
INVOICE_TYPES = ("special", "normal", "electronic")
INVOICE_STATUSES = ("issued", "void")
ORDER_STATUSES = ("created", "shipped")
INBOUND_EXCHANGE = "erp.events"


class OrderLineSchema(Schema):
    """One line of an order: the accepted quote's (non-optional) line, or the contract's
    amount as one line. `net` is after every discount (line and quote-level), `tax` on the
    net, `total` = net + tax; the lines' totals sum to the order's amount."""

    seq = fields.Integer(required=True)
    product_id = fields.String(allow_none=True)
    product_code = fields.String(allow_none=True)
    product_name = fields.String(required=True)
    unit = fields.String(allow_none=True)
    quantity = fields.String(required=True)
    unit_price = fields.String(required=True)
    discount = fields.String(required=True, metadata={
        "description": "the discount amount of the line (its gross minus its net)"})
    tax_rate = fields.String(allow_none=True, metadata={
        "description": "VAT percent (13, 9, 6, 0); null when the contract does not say"})
    net = fields.String(required=True)
    tax = fields.String(required=True)
    total = fields.String(required=True)


class OrderSourceSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "quote or contract"})
    quote_id = fields.String(allow_none=True)
    quote_version = fields.Integer(allow_none=True)


_MONEY_TEXT = re.compile(r"^[0-9]{1,13}(\.[0-9]{1,2})?$")


class MoneyText(fields.String):
    """A decimal amount sent as a string ("1234.50"): numbers (floats) are refused, so no
    binary rounding reaches the books."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not _MONEY_TEXT.match(value):
            raise ValidationError("a decimal amount as a string with at most 2 decimal "
                                  "places, e.g. \"1234.50\"")
        amount = Decimal(value)
        if amount <= 0:
            raise ValidationError("must be positive")
        return amount

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class InvoiceCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "the buyer's name on the invoice (抬头)"})
    tax_number = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=18), metadata={
        "description": "the buyer's unified social credit code (统一社会信用代码, 18 "
                       "characters, check character of GB 32100-2015); required for special"})
    type = fields.String(required=True, validate=validate.OneOf(INVOICE_TYPES), metadata={
        "description": "special 增值税专用发票, normal 增值税普通发票, electronic 电子发票"})
    number = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={
        "description": "unique per type (409)"})
    issued_on = fields.Date(required=True)
    amount = MoneyText(required=True, metadata={
        "description": "at most the receipt's or instalment's amount left to invoice; the "
                       "contract's invoices never exceed the contract amount"})
    receipt_id = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(min=1, max=36))
    instalment_id = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=36))

    @validates_schema
    def _one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("receipt_id") and data.get("instalment_id"):
            raise ValidationError("an invoice is for a receipt or an instalment, not both",
                                  "instalment_id")


class InvoiceVoidSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class InvoiceSchema(Schema):
    id = fields.String(required=True)
    contract_id = fields.String(required=True)
    receipt_id = fields.String(allow_none=True)
    instalment_id = fields.String(allow_none=True)
    title = fields.String(required=True)
    tax_number = fields.String(allow_none=True)
    type = fields.String(required=True, validate=validate.OneOf(INVOICE_TYPES))
    number = fields.String(required=True)
    issued_on = fields.String(required=True)
    amount = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(INVOICE_STATUSES))
    source = fields.String(required=True, metadata={"description": "user or erp"})
    void_reason = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class InvoiceListSchema(Schema):
    items = fields.List(fields.Nested(InvoiceSchema), required=True)


class InvoiceEvent(Schema):
    invoice = fields.Nested(InvoiceSchema, required=True)
    contract = fields.Nested(ContractSnapshot, required=True)


class ReceiptRecorded(Schema):
    receipt = fields.Nested(ReceiptSchema, required=True)
    contract = fields.Nested(ContractSnapshot, required=True)
    source = fields.String(required=True, metadata={"description": "user or erp"})
    payer = fields.String(allow_none=True)


class OrderShipped(Schema):
    order = fields.Nested(OrderSnapshot, required=True)
    shipped_at = fields.String(required=True)


EVENT_SCHEMAS.update({"invoice_recorded": InvoiceEvent, "invoice_voided": InvoiceEvent,
                      "receipt_recorded": ReceiptRecorded, "order_shipped": OrderShipped})


class ErpTarget(StrictSchema):
    contract_number = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=20))
    order_number = fields.String(load_default=None, allow_none=True,
                                 validate=validate.Length(min=1, max=20))

    class Meta:
        unknown = "exclude"  # an ERP adds fields: only ours are read

    @validates_schema
    def _target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("contract_number") and not data.get("order_number"):
            raise ValidationError("give the contract_number or the order_number",
                                  "contract_number")


class ErpPaymentReceived(ErpTarget):
    """erp.payment_received: money the ERP booked for a contract (or its order): recorded as
    a receipt matched to the instalments as users' receipts are; once per `reference`."""

    amount = MoneyText(required=True)
    paid_at = fields.DateTime(required=True, metadata={
        "description": "ISO 8601 with offset; the receipt's day is read in CRM_TIMEZONE"})
    reference = fields.String(required=True, validate=validate.Length(min=1, max=100),
                              metadata={"description": "the ERP's payment id: one receipt "
                                                       "per reference"})
    payer = Trimmed(load_default=None, allow_none=True, empty_none=True,
                    validate=validate.Length(max=200), metadata={
        "description": "the payer's name (stored on the receipt as payer.name)"})
    payer_account = Trimmed(load_default=None, allow_none=True, empty_none=True,
                            validate=validate.Length(max=64), metadata={
        "description": "the payer's bank account (payer.account)"})
    payer_reference = Trimmed(load_default=None, allow_none=True, empty_none=True,
                              validate=validate.Length(max=100), metadata={
        "description": "the payer's own reference, e.g. the transfer's remark "
                       "(payer.reference)"})
    method = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=40))
    instalment_id = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=36))


class ErpInvoiceIssued(ErpTarget):
    """erp.invoice_issued: an invoice the ERP (its tax system) issued: recorded as an invoice
    of the contract (source erp), for the receipt of `payment_reference` when given; once per
    `reference`."""

    reference = fields.String(required=True, validate=validate.Length(min=1, max=100))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    tax_number = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=18))
    type = fields.String(required=True, validate=validate.OneOf(INVOICE_TYPES))
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))
    issued_on = fields.Date(required=True)
    amount = MoneyText(required=True)
    payment_reference = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(min=1, max=100))
    instalment_id = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=36))


class ErpOrderShipped(StrictSchema):
    """erp.order_shipped: the ERP shipped an order: its status becomes shipped with
    `shipped_at` (a second shipment message changes nothing)."""

    order_number = fields.String(required=True, validate=validate.Length(min=1, max=20))
    shipped_at = fields.DateTime(required=True)
    reference = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=100))

    class Meta:
        unknown = "exclude"


# (exchange, routing key = event type) -> the schema of the envelope's `data`
INBOUND_EVENT_SCHEMAS: dict[tuple[str, str], type[Schema]] = {
    (INBOUND_EXCHANGE, "payment_received"): ErpPaymentReceived,
    (INBOUND_EXCHANGE, "invoice_issued"): ErpInvoiceIssued,
    (INBOUND_EXCHANGE, "order_shipped"): ErpOrderShipped,
}


class OrderViewSchema(OrderSnapshot):
    shipped_at = fields.String(allow_none=True)
# -- overdue and renewals ----
# Overdue instalments (the sweep `mark_overdue`), `instalment_paid`, renewals.
class InstalmentSnapshot(Schema):
    id = fields.String(required=True)
    seq = fields.Integer(required=True)
    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    contract_title = fields.String()
    due_date = fields.String(required=True)
    amount = fields.String(required=True)
    paid = fields.String(required=True)
    outstanding = fields.String(required=True)
    currency = fields.String()
    status = fields.String(required=True)
    days_overdue = fields.Integer(required=True)
    owner_id = fields.String(required=True)
    team_id = fields.String(allow_none=True)
    customer_id = fields.String(required=True)
    updated_at = fields.String()


class InstalmentOverdue(Schema):
    """An instalment fell overdue (once per instalment): its due date passed, not fully
    paid."""

    instalment = fields.Nested(InstalmentSnapshot, required=True)
    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    days_overdue = fields.Integer(required=True)


class InstalmentPaid(Schema):
    """A receipt paid an instalment in full (`was_overdue`: it had been marked overdue)."""

    instalment = fields.Nested(InstalmentSnapshot, required=True)
    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    was_overdue = fields.Boolean(required=True)


class ContractRenewed(Schema):
    """The renewal was signed: `contract` (the old one, now renewed) and `renewal`."""

    contract = fields.Nested(ContractSnapshot, required=True)
    renewal = fields.Nested(ContractSnapshot, required=True)


EVENT_SCHEMAS.update({"instalment_overdue": InstalmentOverdue,
                      "instalment_paid": InstalmentPaid,
                      "contract_renewed": ContractRenewed})


class OverdueSweepSchema(StrictSchema):
    as_of = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "the day to sweep for (default: today in CRM_TIMEZONE): instalments "
                       "due before it and not fully paid become overdue"})


class OverdueMarkedSchema(Schema):
    id = fields.String(required=True)
    seq = fields.Integer(required=True)
    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    outstanding = fields.String(required=True)
    days_overdue = fields.Integer(required=True)


class OverdueSweepResultSchema(Schema):
    as_of = fields.String(required=True)
    marked = fields.List(fields.Nested(OverdueMarkedSchema), required=True)


class RenewalCreateSchema(StrictSchema):
    title = fields.String(load_default=None, allow_none=True,
                          validate=validate.Length(min=1, max=200))
    amount = fields.Decimal(load_default=None, allow_none=True, as_string=True, places=2,
                            validate=validate.Range(min=0, max=10**12),
                            metadata={"description": "default: the old contract's"})
    start_date = fields.Date(load_default=None, allow_none=True,
                             metadata={"description": "default: the old end date + 1 day"})
    end_date = fields.Date(load_default=None, allow_none=True,
                           metadata={"description": "default: the old term's length"})


# -- attachments: a contract's files ----

# A contract's files: at most this many bytes each (CONTRACTS_ATTACHMENT_MAX_BYTES) and this
# many per contract.
MAX_ATTACHMENT_BYTES = int(config.env("CONTRACTS_ATTACHMENT_MAX_BYTES", str(20 * 1024 * 1024)))
MAX_ATTACHMENTS = 50


class AttachmentCreateSchema(StrictSchema):
    """A file for a contract (over RPC its content is base64)."""

    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_type = fields.String(load_default="application/octet-stream", validate=[
        validate.Length(max=255),
        validate.Regexp(r"^[\w.+-]+/[\w.+-]+$", error="must be a media type like "
                                                      "application/pdf")])
    content = fields.String(required=True, metadata={"description": "base64"})


class AttachmentSchema(Schema):
    id = fields.String(required=True)
    contract_id = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True, metadata={
        "description": "as declared at upload; downloads are application/octet-stream"})
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    uploaded_by = fields.String(allow_none=True)
    created_at = fields.String(required=True)


class AttachmentListSchema(Schema):
    items = fields.List(fields.Nested(AttachmentSchema), required=True)


class ContractAttachmentEvent(Schema):
    """A file was attached to a contract, or removed from a draft."""

    contract_id = fields.String(required=True)
    contract_number = fields.String(required=True)
    attachment = fields.Nested(AttachmentSchema, required=True)


EVENT_SCHEMAS.update({"contract_attachment_added": ContractAttachmentEvent,
                      "contract_attachment_removed": ContractAttachmentEvent})


# -- numbers ----
# Collection, aging, DSO, win rate, approval cycle times, drill-down and the customer 360's
# part (services/contracts/usecases/numbers.py; definitions in domain/numbers.py).

AGING_BUCKETS = ("0-30", "31-60", "61-90", ">90")
NUMBERS_FIGURES = ("collection", "aging", "dso", "win_rate", "approval_cycle")


class NumbersFiltersSchema(StrictSchema):
    """A report's filters: the period (local days, inclusive), the aging day, the owners
    (a team's members, resolved by the gateway; they narrow the caller's scope), a customer,
    and for approval cycle times the record type."""

    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    as_of = fields.Date(load_default=None, allow_none=True)
    owner_ids = fields.List(fields.String(), load_default=None, allow_none=True)
    customer_id = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=36))
    record_type = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=64))


class NumbersDrillParamsSchema(StrictSchema):
    """Which part of a figure: collection `month` (YYYY-MM) and `kind`; aging `bucket`;
    win_rate `outcome`, `owner_id`, `team_id`; approval_cycle `flow_id` and `step`."""

    month = fields.String(validate=validate.Regexp(r"^\d{4}-\d{2}$"))
    kind = fields.String(load_default="planned",
                         validate=validate.OneOf(("planned", "received")))
    bucket = fields.String(validate=validate.OneOf(AGING_BUCKETS))
    outcome = fields.String(validate=validate.OneOf(("accepted", "rejected", "expired")))
    owner_id = fields.String(validate=validate.Length(max=36))
    team_id = fields.String(validate=validate.Length(max=36))
    flow_id = fields.String(validate=validate.Length(max=36))
    step = fields.Integer(validate=validate.Range(min=0, max=1000))


class CollectionMonthSchema(Schema):
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})
    planned = fields.String(required=True, metadata={"description": "instalments due"})
    planned_count = fields.Integer(required=True)
    received = fields.String(required=True, metadata={"description": "receipts received"})
    received_count = fields.Integer(required=True)
    gap = fields.String(required=True, metadata={"description": "planned - received"})


class CollectionTotalSchema(Schema):
    planned = fields.String(required=True)
    received = fields.String(required=True)
    gap = fields.String(required=True)


class CollectionReportSchema(Schema):
    date_from = fields.String(required=True)
    date_to = fields.String(required=True)
    months = fields.List(fields.Nested(CollectionMonthSchema), required=True)
    total = fields.Nested(CollectionTotalSchema, required=True)


class AgingBucketSchema(Schema):
    bucket = fields.String(required=True, metadata={"enum": list(AGING_BUCKETS)})
    count = fields.Integer(required=True)
    outstanding = fields.String(required=True)


class AgingTotalSchema(Schema):
    count = fields.Integer(required=True)
    outstanding = fields.String(required=True)


class AgingReportSchema(Schema):
    as_of = fields.String(required=True)
    buckets = fields.List(fields.Nested(AgingBucketSchema), required=True)
    total = fields.Nested(AgingTotalSchema, required=True)


class DsoReportSchema(Schema):
    date_from = fields.String(required=True)
    date_to = fields.String(required=True)
    days = fields.Integer(required=True)
    billed = fields.String(required=True)
    receivables = fields.String(required=True)
    dso_days = fields.String(required=True, allow_none=True)
    formula = fields.String(required=True)


class WinRateRowSchema(Schema):
    owner_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    quotes = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    expired = fields.Integer(required=True)
    open = fields.Integer(required=True)
    win_rate_percent = fields.String(required=True, allow_none=True)
    average_discount_percent = fields.String(required=True, allow_none=True)


class WinRateReportSchema(Schema):
    date_from = fields.String(required=True)
    date_to = fields.String(required=True)
    by_owner = fields.List(fields.Nested(WinRateRowSchema), required=True)
    by_team = fields.List(fields.Nested(WinRateRowSchema), required=True)
    total = fields.Nested(WinRateRowSchema, required=True)
    formula = fields.String(required=True)


class CycleStepSchema(Schema):
    flow_id = fields.String(allow_none=True)
    flow_name = fields.String(allow_none=True)
    step = fields.Integer(required=True)
    step_name = fields.String(allow_none=True)
    decisions = fields.Integer(required=True)
    median_hours = fields.Float(required=True)
    p90_hours = fields.Float(required=True)


class CycleTimesReportSchema(Schema):
    date_from = fields.String(required=True)
    date_to = fields.String(required=True)
    steps = fields.List(fields.Nested(CycleStepSchema), required=True)


class DrillPageSchema(Schema):
    items = fields.List(fields.Dict(), required=True, metadata={
        "description": "the records behind the figure: instalments (instalment_id, "
        "contract_id, contract_number, customer_id, owner_id, due_date, amount, paid, "
        "outstanding, status, days_overdue for aging), receipts (receipt_id, ...), quotes "
        "(quote_id, status, grand_total, discount_percent, ...) or approvals (approval_id, "
        "passes)"})
    next_cursor = fields.String(required=True, allow_none=True)


class SummaryReceivablesSchema(Schema):
    received = fields.String(required=True)
    outstanding = fields.String(required=True)
    overdue = fields.String(required=True)


class SummaryQuoteSchema(Schema):
    id = fields.String(required=True)
    opportunity_id = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    status = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(allow_none=True)
    grand_total = fields.String(required=True)
    currency = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    created_at = fields.String(required=True)


class SummaryContractSchema(Schema):
    id = fields.String(required=True)
    number = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    owner_id = fields.String(allow_none=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    start_date = fields.String(allow_none=True)
    end_date = fields.String(allow_none=True)
    receivables = fields.Nested(SummaryReceivablesSchema, required=True)


class CustomerSummarySchema(Schema):
    customer_id = fields.String(required=True)
    as_of = fields.String(required=True)
    quotes = fields.List(fields.Nested(SummaryQuoteSchema), required=True)
    contracts = fields.List(fields.Nested(SummaryContractSchema), required=True)
    receivables = fields.Nested(SummaryReceivablesSchema, required=True)


# -- contract approval ----
# Contracts through approvals (services/contracts/usecases/contract_approval.py) and the
# escalation of undecided steps (usecases/approval_escalation.py).


class ContractChangeSchema(DottedErrors, StrictSchema):
    """A draft contract's terms (only those given change)."""

    title = fields.String(validate=validate.Length(min=1, max=200))
    amount = fields.Decimal(as_string=True, places=2, validate=validate.Range(min=0, max=10**12))
    currency = fields.String(validate=validate.Length(equal=3))
    start_date = fields.Date(allow_none=True)
    end_date = fields.Date(allow_none=True)
    clauses = clauses_field()

    @validates_schema
    def _dates(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start_date") and data.get("end_date") \
                and data["end_date"] < data["start_date"]:
            raise ValidationError("the end is before the start", "end_date")


class StandardClausesSchema(DottedErrors, StrictSchema):
    """The standard contract clauses (标准条款): a contract whose clauses differ from them has
    `clauses_changed` true in its approval terms."""

    clauses = clauses_field(required=True)


class ContractStatusChanged(Schema):
    """submit (draft -> in_approval or approved), and the approval's decision (in_approval ->
    approved, in_approval / approved -> draft)."""

    contract = fields.Nested(ContractSnapshot, required=True)
    from_status = fields.String(required=True)
    to_status = fields.String(required=True)
    reason = fields.String(allow_none=True)
    approval_id = fields.String(allow_none=True)


class ContractUpdated(Schema):
    """A draft contract's terms changed (`fields`: the names given)."""

    contract = fields.Nested(ContractSnapshot, required=True)
    fields_changed = fields.List(fields.String(), required=True)


class ApprovalRecordSnapshot(Schema):
    """The approval as the rules service keeps it (record type `approval`): who was asked
    last, at which step, until when (`escalate_at`, when the step escalates). One record per
    request: `id` is `<approval_id>:<step>:<n>` (a rule acts once per record in its dedupe
    window, and the next approvers are asked seconds later)."""

    id = fields.String(required=True)
    approval_id = fields.String(required=True)
    record_type = fields.String(required=True)
    record_id = fields.String(required=True)
    submitter = fields.String(required=True)
    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    approver_ids = fields.List(fields.String(), required=True)
    escalated = fields.Boolean(required=True)
    delegated = fields.Boolean(required=True)
    escalate_at = fields.String(allow_none=True, metadata={"description": "ISO instant (UTC)"})


class ApprovalStepStarted(ApprovalEvent):
    """A step with an escalation opened: `escalate_at` is when it is escalated if still
    undecided (the shipped rule `approval-step-escalation` times it)."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    approver_ids = fields.List(fields.String(), required=True)
    escalate_at = fields.String(required=True)
    escalate_after_hours = fields.String(required=True)
    approval = fields.Nested(ApprovalRecordSnapshot, required=True)


class ApprovalStepEscalated(ApprovalEvent):
    """A step not decided in time was escalated to `escalated_to` (their answer decides it)."""

    step = fields.Integer(required=True)
    step_name = fields.String(required=True)
    escalated_to = fields.List(fields.String(), required=True)
    waiting = fields.List(fields.String(), required=True)
    escalate_at = fields.String(allow_none=True)


class EscalationAnswerSchema(Schema):
    approval_id = fields.String(required=True)
    step = fields.Integer(required=True)
    escalated = fields.Boolean(required=True)
    escalated_to = fields.List(fields.String(), required=True)
    owner_id = fields.String(allow_none=True, metadata={
        "description": "who the step now waits on (the first escalation approver): the rule's "
                       "`notify owner` reaches them"})
    reason = fields.String(allow_none=True)


EVENT_SCHEMAS.update({
    "contract_status_changed": ContractStatusChanged,
    "contract_updated": ContractUpdated,
    "approval_step_started": ApprovalStepStarted,
    "approval_step_escalated": ApprovalStepEscalated,
})
