"""The events the sales service publishes (`EVENT_SCHEMAS`, exchange `sales.events`, routing
key = event type). Each carries a snapshot of its record, so subscribers (rules, integrators)
need no call back."""

from __future__ import annotations

from marshmallow import Schema, fields

from services.sales.contract.payloads import (
    ContactSchema,
    CustomerSchema,
    FollowupSchema,
    OpportunitySchema,
    PipelineSchema,
)

# -- events ------------------------------------------------------------------------------------


class CustomerEvent(Schema):
    customer = fields.Nested(CustomerSchema, required=True)


class CustomerCreated(CustomerEvent):
    """A customer (account) was created: by hand, by a lead conversion or an import."""

    lead_id = fields.String(allow_none=True, metadata={"description": "set by a conversion"})


class CustomerUpdated(CustomerEvent):
    """Fields of a customer changed (tags, tier, lifecycle stage, owner included)."""

    changed = fields.List(fields.String(), required=True)
    previous_owner_id = fields.String(allow_none=True)


class CustomerMerged(CustomerEvent):
    """A duplicate was merged into the customer of the snapshot, which survives."""

    source_id = fields.String(required=True)
    moved = fields.Dict(
        keys=fields.String(), values=fields.Integer(),
        metadata={"description": "contacts, opportunities, followups moved"},
    )


class ContactEvent(Schema):
    contact = fields.Nested(ContactSchema, required=True)


class ContactCreated(ContactEvent):
    """A contact was added to a customer."""


class ContactUpdated(ContactEvent):
    """Fields of a contact changed."""

    changed = fields.List(fields.String(), required=True)


class FollowupRecorded(Schema):
    """A call, email, meeting, visit or note was recorded (rules: "no follow-up in N days")."""

    followup = fields.Nested(FollowupSchema, required=True)


class OpportunityEvent(Schema):
    opportunity = fields.Nested(OpportunitySchema, required=True)


class OpportunityCreated(OpportunityEvent):
    """An opportunity was opened (by hand or by a lead conversion)."""


class OpportunityUpdated(OpportunityEvent):
    """Fields of an opportunity changed (not its stage: see opportunity_stage_changed)."""

    changed = fields.List(fields.String(), required=True)


class OpportunityStageChanged(OpportunityEvent):
    """The opportunity moved to another stage (its exit criteria were met)."""

    from_stage_id = fields.String(required=True)
    to_stage_id = fields.String(required=True)
    from_stage = fields.String(required=True)
    to_stage = fields.String(required=True)
    reason = fields.String(allow_none=True)


class OpportunityClosed(OpportunityEvent):
    reason = fields.String(required=True)


class OpportunityWon(OpportunityClosed):
    """The opportunity was won (with the reason)."""


class OpportunityLost(OpportunityClosed):
    """The opportunity was lost (with the reason)."""


class LeadConverted(Schema):
    """A qualified lead became a customer (created or linked), a contact and an opportunity.

    The leads service marks the lead converted when it receives this."""

    lead_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    contact_id = fields.String(allow_none=True)
    opportunity_id = fields.String(allow_none=True)
    converted_by = fields.String(allow_none=True)
    customer_created = fields.Boolean()
    source = fields.String(allow_none=True, metadata={"description": "the lead's channel"})
    campaign = fields.String(allow_none=True)


class PipelineChanged(Schema):
    """A pipeline was created or its stages, probabilities or exit criteria changed."""

    pipeline = fields.Nested(PipelineSchema, required=True)
    created = fields.Boolean(required=True)


class RecordsImported(Schema):
    """An import job finished (not a dry run): one summary event instead of an event per row.

    Subscribers that need the records read them by `created_ids` (the first 1,000)."""

    job_id = fields.String(required=True)
    entity = fields.String(required=True, metadata={"enum": ["customer", "contact"]})
    filename = fields.String(required=True)
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    skipped = fields.Integer(required=True, metadata={"description": "duplicates left alone"})
    failed = fields.Integer(required=True, metadata={"description": "bad rows"})
    created_ids = fields.List(fields.String(), required=True,
                              metadata={"description": "ids of created records, at most 1,000"})


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "customer_created": CustomerCreated,
    "customer_updated": CustomerUpdated,
    "customer_merged": CustomerMerged,
    "contact_created": ContactCreated,
    "contact_updated": ContactUpdated,
    "followup_recorded": FollowupRecorded,
    "opportunity_created": OpportunityCreated,
    "opportunity_updated": OpportunityUpdated,
    "opportunity_stage_changed": OpportunityStageChanged,
    "opportunity_won": OpportunityWon,
    "opportunity_lost": OpportunityLost,
    "lead_converted": LeadConverted,
    "pipeline_changed": PipelineChanged,
    "customers_imported": RecordsImported,
    "contacts_imported": RecordsImported,
}
