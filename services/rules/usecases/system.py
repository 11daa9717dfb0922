"""The service's clock (controllable in tests and demos) and its timers' counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.rules import clock as clock_module
from services.rules.models import Timer
from services.rules.usecases.support import Worker
from shared.errors import Forbidden, ValidationFailed

MAX_ADVANCE_SECONDS = 10 * 366 * 86400


def get_clock(worker: Worker) -> dict[str, Any]:
    clock = clock_module.CLOCK
    with worker.db.read() as session:
        clock.refresh(session)
    return {"now": clock.now().isoformat(), "offset_seconds": clock.offset,
            "controllable": clock.controllable}


def advance_clock(worker: Worker, seconds: float) -> dict[str, Any]:
    clock = clock_module.CLOCK
    if not clock.controllable:
        raise Forbidden("the clock is controllable only with CRM_CLOCK=controllable")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
        0 < seconds <= MAX_ADVANCE_SECONDS
    ):
        raise ValidationFailed.for_fields({"advance_seconds": [
            "a positive number of seconds (at most ten years)"]})
    with worker.db.begin() as session:
        clock.advance(session, float(seconds))
    return get_clock(worker)


def timer_stats(worker: Worker) -> dict[str, Any]:
    with worker.db.read() as session:
        counts = dict(session.execute(
            select(Timer.status, func.count()).group_by(Timer.status)).all())
    return {"timers": counts}
