"""Records as the contract shows them (RPC answers and event snapshots)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.sales.contract import (
    ContactSchema,
    CustomerSchema,
    FollowupSchema,
    OpportunitySchema,
    PipelineSchema,
)
from services.sales.domain import pipeline as stages_domain
from services.sales.models import Contact, Customer, Followup, Opportunity, Pipeline, Stage

# Schemas are built once: constructing one costs more than dumping a record with it.
customer_schema = CustomerSchema()
contact_schema = ContactSchema()
followup_schema = FollowupSchema()
opportunity_schema = OpportunitySchema()
pipeline_schema = PipelineSchema()


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    return customer_schema.dump(customer)


def contact_to_dict(contact: Contact) -> dict[str, Any]:
    return contact_schema.dump(contact)


def followup_to_dict(followup: Followup) -> dict[str, Any]:
    return followup_schema.dump(followup)


def opportunity_to_dict(opportunity: Opportunity, stage: Stage | None) -> dict[str, Any]:
    data = opportunity_schema.dump(opportunity)
    if stage is not None:
        data["stage"] = {"id": stage.id, "name": stage.name, "probability": stage.probability,
                         "kind": stage.kind}
        data["probability"] = stage.probability
        weighted = stages_domain.weighted_amount(opportunity.amount, stage.probability)
        data["weighted_amount"] = (
            None if weighted is None else str(Decimal(weighted).quantize(Decimal("0.01")))
        )
    data.pop("history", None)
    return data


def stage_info(stage: Stage) -> stages_domain.StageInfo:
    return stages_domain.StageInfo(
        id=stage.id, name=stage.name, position=stage.position, probability=stage.probability,
        kind=stage.kind, exit_criteria=stage.exit_criteria or {}, active=stage.active,
    )


def stage_to_dict(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id, "name": stage.name, "position": stage.position,
        "probability": stage.probability, "kind": stage.kind,
        "exit_criteria": stage.exit_criteria or {"fields": [], "activities": []},
    }


def active_stages(session: Session, pipeline_id: str) -> list[Stage]:
    return list(session.scalars(select(Stage).where(
        Stage.pipeline_id == pipeline_id, Stage.active.is_(True)
    ).order_by(Stage.position)))


def pipeline_to_dict(session: Session, pipeline: Pipeline) -> dict[str, Any]:
    data = pipeline_schema.dump(pipeline)
    data["stages"] = [stage_to_dict(s) for s in active_stages(session, pipeline.id)]
    return data


def stage_map(session: Session) -> dict[str, Stage]:
    # Stages are few (pipelines x stages): one read beats a join per row.
    return {s.id: s for s in session.scalars(select(Stage))}


def money_map(values: dict[str, Any]) -> dict[str, str]:
    return {currency: str(Decimal(v).quantize(Decimal("0.01"))) for currency, v in
            sorted(values.items())}
