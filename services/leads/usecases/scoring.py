"""The scoring model in force, rescoring a lead with it, and reading and saving models."""

from __future__ import annotations

import copy
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.leads.domain.lifecycle import CLOSED_STATUSES
from services.leads.domain.scoring import rescore as score_and_qualify
from services.leads.domain.scoring_model import DEFAULT_SCORING_MODEL, validate_scoring_model
from services.leads.models import Behaviour, Lead, ScoringModelVersion
from services.leads.usecases.common import Worker, lead_to_dict, record_history
from shared.envelope import utcnow

log = logging.getLogger(__name__)

DEFAULT_MODEL = validate_scoring_model(DEFAULT_SCORING_MODEL)
# The values a scoring rule may read: every column of the lead.
_LEAD_FIELDS = tuple(column.key for column in Lead.__table__.columns)


class ScoringModels:
    """The model in force. Saved versions never change, so a process keeps the one it loaded
    and asks only for the newest version number (another process may have saved a newer one)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = DEFAULT_MODEL

    def current(self, session: Session) -> dict[str, Any]:
        # Plain SQL: this runs for every capture, and the ORM's statement path costs more
        # than the query itself.
        version = session.connection().exec_driver_sql(
            "SELECT max(version) FROM scoring_models"
        ).scalar()
        if version is None:
            return DEFAULT_MODEL
        if self._loaded["version"] != version:
            self._loaded = session.get(ScoringModelVersion, version).model
        return self._loaded


scoring_models = ScoringModels()


def rescore(
    worker: Worker, session: Session, lead: Lead, reason: str | None, model: dict | None = None
) -> bool:
    """Recompute the score; record history and `lead_scored` when it moved (True).

    `reason` None is the first scoring of a new lead: no behaviours yet, no event of its
    own (lead_created carries the score)."""
    model = model or scoring_models.current(session)
    behaviours = [] if reason is None else session.scalars(
        select(Behaviour.type).where(Behaviour.lead_id == lead.id)
    ).all()
    values = {name: getattr(lead, name) for name in _LEAD_FIELDS}
    previous = score_and_qualify(lead, values, behaviours, model,
                                 None if reason is None else utcnow())
    if reason is None or previous == lead.score:
        return False
    record_history(worker, session, lead, "scored",
                   {"from": previous, "to": lead.score, "reason": reason})
    worker.events.record(
        session,
        "lead_scored",
        {"lead": lead_to_dict(lead), "score": lead.score, "previous_score": previous,
         "reason": reason},
    )
    return True


def record_qualification(worker: Worker, session: Session, lead: Lead,
                         previous: str | None) -> None:
    """History and `lead_qualified` when a rescore raised the lead's qualification."""
    if lead.qualification == previous:
        return
    record_history(worker, session, lead, "qualified",
                   {"from": previous, "to": lead.qualification, "score": lead.score})
    worker.events.record(
        session,
        "lead_qualified",
        {"lead": lead_to_dict(lead), "qualification": lead.qualification,
         "previous_qualification": previous},
    )


def get_scoring_model(worker: Worker) -> dict[str, Any]:
    with worker.db.read() as session:
        return copy.deepcopy(scoring_models.current(session))


def set_scoring_model(worker: Worker, model: dict[str, Any]) -> dict[str, Any]:
    """Save `model` as the next version and rescore every open lead with it."""
    model = validate_scoring_model(model)
    with worker.db.begin() as session:
        current = session.scalar(select(func.max(ScoringModelVersion.version)))
        model["version"] = (current or DEFAULT_MODEL["version"]) + 1
        session.add(ScoringModelVersion(version=model["version"], model=model,
                                        created_at=utcnow(), actor=worker.context.actor))
        leads = session.scalars(
            select(Lead).where(Lead.merged_into_id.is_(None),
                               Lead.status.not_in(CLOSED_STATUSES))
        )
        rescored = 0
        for index, lead in enumerate(leads, 1):
            if index % 5000 == 0:  # a large base takes a while: show progress
                log.info("scoring model %s: %s leads rescored so far", model["version"], index)
            previous = lead.qualification
            if rescore(worker, session, lead, "model_changed", model):
                rescored += 1
            record_qualification(worker, session, lead, previous)
        worker.events.record(session, "scoring_model_changed",
                             {"version": model["version"], "rescored": rescored})
        return model
