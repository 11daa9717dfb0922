"""Pipelines and their stages (probabilities, exit criteria)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.sales.domain import pipeline as stages_domain
from services.sales.models import Opportunity, Pipeline, Stage
from services.sales.numbers.usecases.custom_fields import load_field_definitions
from services.sales.usecases.common import Ports, missing, new_id
from services.sales.usecases.views import pipeline_to_dict
from shared.envelope import utcnow
from shared.errors import Conflict, PreconditionFailed, ValidationFailed

RETIRED_POSITIONS = 1000  # a retired stage sorts after every active one


def list_all(ports: Ports) -> list[dict[str, Any]]:
    with ports.db.read() as session:
        pipelines = session.scalars(
            select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.name)).all()
        return [pipeline_to_dict(session, p) for p in pipelines]


def read(ports: Ports, pipeline_id: str | None) -> dict[str, Any]:
    """A pipeline with its ordered stages; no id: the default pipeline."""
    with ports.db.read() as session:
        pipeline = (find(session, pipeline_id) if pipeline_id else default_pipeline(session))
        return pipeline_to_dict(session, pipeline)


def create(ports: Ports, values: dict[str, Any]) -> dict[str, Any]:
    stages = stages_domain.validate_stages(values["stages"])
    if any(s["id"] for s in stages):
        raise ValidationFailed.for_fields({"stages": ["a new pipeline's stages have no id"]})
    with ports.db.begin() as session:
        check_criteria_fields(session, values["stages"])
        unique_name(session, values["name"], None)
        now = utcnow()
        pipeline = Pipeline(id=new_id(), name=values["name"].strip(), is_default=False,
                            created_at=now, updated_at=now)
        session.add(pipeline)
        session.flush()
        for stage in stages:
            session.add(stage_row(pipeline.id, stage))
        if values["is_default"]:
            make_default(session, pipeline)
        session.flush()
        result = pipeline_to_dict(session, pipeline)
        ports.events.record(session, "pipeline_changed", {"pipeline": result, "created": True})
        return result


def change(ports: Ports, pipeline_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Replace name and stages. A stage keeps its identity by `id`; a stage left out is
    retired, which needs it to hold no opportunity."""
    stages = stages_domain.validate_stages(values["stages"])
    with ports.db.begin() as session:
        pipeline = find(session, pipeline_id)
        check_criteria_fields(session, values["stages"])
        unique_name(session, values["name"], pipeline.id)
        existing = {s.id: s for s in session.scalars(
            select(Stage).where(Stage.pipeline_id == pipeline.id))}
        errors = {f"stages.{index}.id": ["not a stage of this pipeline"]
                  for index, stage in enumerate(stages)
                  if stage["id"] and stage["id"] not in existing}
        if errors:
            raise ValidationFailed.for_fields(errors)
        kept = {s["id"] for s in stages if s["id"]}
        for stage_id, row in existing.items():
            if stage_id in kept or not row.active:
                continue
            count = opportunities_in(session, stage_id)
            if count:
                raise Conflict(f"stage {row.name} holds {count} opportunities; move them first",
                               {"field": "stages", "stage_id": stage_id, "count": count})
            row.active = False
            row.position = RETIRED_POSITIONS + row.position
        for stage in stages:
            row = existing.get(stage["id"]) if stage["id"] else None
            if row is None:
                session.add(stage_row(pipeline.id, stage))
                continue
            if row.kind != stage["kind"]:
                count = opportunities_in(session, row.id)
                if count:
                    raise Conflict(
                        f"stage {row.name} holds {count} opportunities; its kind cannot "
                        "change", {"field": "stages", "stage_id": row.id})
            row.name, row.probability, row.kind = (stage["name"], stage["probability"],
                                                   stage["kind"])
            row.position, row.exit_criteria, row.active = (stage["position"],
                                                           stage["exit_criteria"], True)
        pipeline.name = values["name"].strip()
        if values["is_default"]:
            make_default(session, pipeline)
        elif pipeline.is_default:
            raise ValidationFailed.for_fields({"is_default": [
                "make another pipeline the default instead of unsetting this one"]})
        pipeline.updated_at = utcnow()
        session.flush()
        result = pipeline_to_dict(session, pipeline)
        ports.events.record(session, "pipeline_changed", {"pipeline": result,
                                                          "created": False})
        return result


# -- shared with the other use cases ----------------------------------------------------------


def find(session: Session, pipeline_id: Any, field: str = "pipeline_id",
         reference: bool = False) -> Pipeline:
    pipeline = session.get(Pipeline, pipeline_id) if isinstance(pipeline_id, str) else None
    if pipeline is None:
        raise missing("pipeline", pipeline_id, field, reference)
    return pipeline


def default_pipeline(session: Session) -> Pipeline:
    pipeline = session.scalar(select(Pipeline).where(Pipeline.is_default.is_(True)))
    if pipeline is None:
        raise PreconditionFailed("no default pipeline: create one or run the migrations",
                                 {"field": "pipeline_id"})
    return pipeline


def opportunities_in(session: Session, stage_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Opportunity).where(
        Opportunity.stage_id == stage_id)) or 0


def stage_row(pipeline_id: str, stage: dict[str, Any]) -> Stage:
    return Stage(id=new_id(), pipeline_id=pipeline_id, position=stage["position"],
                 name=stage["name"], probability=stage["probability"],
                 exit_criteria=stage["exit_criteria"], kind=stage["kind"], active=True)


def check_criteria_fields(session: Session, stages: list[dict[str, Any]]) -> None:
    """A criterion on a custom field nobody defined could never be met: refused at save."""
    defined = {d["key"] for d in load_field_definitions(session, "opportunity")}
    errors = stages_domain.undefined_custom_criteria(stages, defined)
    if errors:
        raise ValidationFailed.for_fields(errors)


def make_default(session: Session, pipeline: Pipeline) -> None:
    session.execute(update(Pipeline).where(Pipeline.id != pipeline.id).values(is_default=False))
    pipeline.is_default = True


def unique_name(session: Session, name: str, pipeline_id: str | None) -> None:
    other = session.scalar(select(Pipeline.id).where(Pipeline.name == name.strip()))
    if other and other != pipeline_id:
        raise Conflict(f"a pipeline named {name.strip()!r} exists",
                       {"field": "name", "existing_id": other})
