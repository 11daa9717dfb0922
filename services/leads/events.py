"""Events the leads service publishes (exchange `leads.events`, routing key = event type).

Every lead event carries a snapshot of the lead, so subscribers (rules, integrators) need no
call back to evaluate conditions on it.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from services.leads.schemas import LeadSchema


class LeadEvent(Schema):
    lead = fields.Nested(LeadSchema, required=True)


class LeadCreated(LeadEvent):
    """A lead was captured (after normalisation, dedupe and the first scoring)."""

    duplicate_of = fields.List(fields.String(), metadata={"description": "possible duplicates"})


class LeadScored(LeadEvent):
    """The score of a lead changed."""

    score = fields.Integer(required=True)
    previous_score = fields.Integer(required=True)
    reason = fields.String(required=True, metadata={"description": "behaviour, model_changed..."})


class LeadQualified(LeadEvent):
    """The score crossed a threshold upwards: the lead became MQL or SQL."""

    qualification = fields.String(required=True)
    previous_qualification = fields.String(allow_none=True)


class LeadBehaviourRecorded(LeadEvent):
    """A behaviour (page visit, download, webinar...) was recorded for a lead."""

    behaviour_type = fields.String(required=True)
    occurred_at = fields.String(required=True)


class LeadStatusChanged(LeadEvent):
    """A user or a rule moved the lead to another status (contacted, disqualified...)."""

    status = fields.String(required=True)
    previous_status = fields.String(required=True)
    reason = fields.String(allow_none=True)


class LeadAssigned(LeadEvent):
    """The lead was given to an owner by a manager, an admin or a rule."""

    owner_id = fields.String(required=True)
    previous_owner_id = fields.String(allow_none=True)


class LeadClaimed(LeadEvent):
    """A user took the lead from the public pool (公海)."""

    owner_id = fields.String(required=True)


class LeadReleased(LeadEvent):
    """The lead went back to the public pool (公海)."""

    previous_owner_id = fields.String(required=True)
    reason = fields.String(allow_none=True)


class LeadMerged(LeadEvent):
    """A duplicate was merged into the lead of the snapshot, which survives."""

    source_id = fields.String(
        required=True, allow_none=True,
        metadata={"description": "the merged lead; null when a new capture was merged in"},
    )


class ScoringModelChanged(Schema):
    """A new version of the scoring model was saved and open leads were rescored."""

    version = fields.Integer(required=True)
    rescored = fields.Integer(required=True, metadata={"description": "leads whose score moved"})


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "lead_created": LeadCreated,
    "lead_scored": LeadScored,
    "lead_qualified": LeadQualified,
    "lead_behaviour_recorded": LeadBehaviourRecorded,
    "lead_status_changed": LeadStatusChanged,
    "lead_assigned": LeadAssigned,
    "lead_claimed": LeadClaimed,
    "lead_released": LeadReleased,
    "lead_merged": LeadMerged,
    "scoring_model_changed": ScoringModelChanged,
}
