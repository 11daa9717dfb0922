"""HTTP schemas of the sales routes (resources/sales.py): the sales service's own payload
schemas, with paging and what the gateway adds (the 360, the board, duplicates)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.contracts import contract as contracts_contract
from services.gateway.http_schemas import StrictSchema, page_of, paged
from services.sales import contract as sales
from services.service_desk import contract as desk_contract

CustomerListQuery = paged(sales.CustomerFiltersSchema, "CustomerListQuery")
ContactListQuery = paged(sales.ContactFiltersSchema, "ContactListQuery")
FollowupListQuery = paged(sales.FollowupFiltersSchema, "FollowupListQuery")
OpportunityListQuery = paged(sales.OpportunityFiltersSchema, "OpportunityListQuery")


CustomerPage = page_of(sales.CustomerSchema, "CustomerPage")
ContactPage = page_of(sales.ContactSchema, "ContactPage")
FollowupPage = page_of(sales.FollowupSchema, "FollowupPage")
OpportunityPage = page_of(sales.OpportunitySchema, "OpportunityPage")


class CustomerCreateBody(sales.CustomerCreateSchema):
    on_duplicate = fields.String(
        validate=validate.OneOf(sales.ON_DUPLICATE),
        metadata={"description": "reject (default): a similar name answers 409; create"},
    )


class CustomerDetailSchema(sales.CustomerSchema):
    contacts = fields.List(fields.Nested(sales.ContactSchema))
    converted_lead_ids = fields.List(fields.String(), metadata={
        "description": "the leads converted into this customer, newest first (at most 50)"})
    insights = fields.Raw(metadata={
        "description": "health score and RFM segment (recency, frequency, monetary value of "
        "won deals) with the explanation of each"})


class MergeBody(StrictSchema):
    source_id = fields.String(required=True, metadata={
        "description": "the duplicate, merged into this customer"})


class AssignBody(StrictSchema):
    owner_id = fields.String(required=True)
    include_open_opportunities = fields.Boolean(load_default=False)


class OwnerSchema(Schema):
    id = fields.String()
    username = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)


class Customer360Schema(Schema):
    customer = fields.Nested(CustomerDetailSchema)
    owner = fields.Nested(OwnerSchema, allow_none=True)
    recent_followups = fields.List(fields.Nested(sales.FollowupSchema))
    open_opportunities = fields.List(fields.Nested(sales.OpportunitySchema))
    closed_opportunities = fields.List(fields.Nested(sales.OpportunitySchema))
    tasks = fields.Raw(allow_none=True, metadata={
        "description": "open tasks from the rules service that the caller sees: the "
        "customer's, those of the leads converted into it and of its open opportunities "
        "(`record_type`, `record_id` say which), by due time; null when it did not answer"})
    # -- contracts numbers: from the contracts service's customer_summary ----
    quotes = fields.List(fields.Nested(contracts_contract.SummaryQuoteSchema), allow_none=True,
                         metadata={"description": "the customer's 10 most recent quotes the "
                                   "caller sees; null when contracts did not answer"})
    contracts = fields.List(fields.Nested(contracts_contract.SummaryContractSchema),
                            allow_none=True, metadata={
                                "description": "its contracts the caller sees (newest 50), "
                                "each with received / outstanding / overdue"})
    receivables = fields.Nested(contracts_contract.SummaryReceivablesSchema, allow_none=True,
                                metadata={"description": "those contracts' totals: received, "
                                          "outstanding (signed amount - received), overdue "
                                          "(as of today)"})
    # from the service desk's customer_tickets
    tickets = fields.Nested(desk_contract.CustomerTicketsSchema, allow_none=True, metadata={
        "description": "the customer's tickets the caller sees (as GET /tickets): open_count, "
        "total and the 10 most recent with status, priority and SLA state; null when the "
        "service desk did not answer"})
    partial = fields.List(fields.String(), metadata={
        "description": "parts missing because their service did not answer: tasks, "
                       "contracts, tickets"})


class BoardSchema(Schema):
    pipeline = fields.Dict()
    columns = fields.Raw(metadata={
        "description": "per stage: stage, count, amounts and weighted_amounts per currency "
        "(decimal strings), items (the newest cards)"})
    open_totals = fields.Dict()


class PipelineListSchema(Schema):
    items = fields.List(fields.Nested(sales.PipelineSchema))


class DuplicateSchema(Schema):
    customer_id = fields.String()
    name = fields.String()
    reason = fields.String(metadata={"enum": ["credit_code", "name"]})
    score = fields.Float(metadata={"description": "name similarity 0..100"})


class DuplicateListSchema(Schema):
    items = fields.List(fields.Nested(DuplicateSchema))
