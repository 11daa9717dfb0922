"""The backfill of the numbers' rows (`ticket_sla_outcomes`) of the tickets that have none:
the tickets last changed before migration 0011n, which the recheck has never written.

Each ticket's rows are computed by `sla_schedule.keep_outcomes`, the first half of the recheck
every change runs (its log, the policies and calendars, the moment), and nothing is
published: an old ticket's warnings and breaches are history, not news.

The job is a row of `sla_sweeps` (`BACKFILL`; migration 0013b requests it, `request` again):
`cursor` is the last ticket id looked at ("" = from the start, null = done). A batch is one
transaction: the next tickets by id without rows, locked (a change of one of them waits, or
the batch waits for it), looked at again once locked (a ticket a change has just given rows
keeps them), their rows written and the cursor moved. So a batch killed half way leaves
nothing, a re-run goes on from the last batch committed, and a ticket never gets its rows
twice (the primary key is ticket and target, and a ticket with rows is never taken again).
Several processes take turns (the job's row is locked, skipped by the others on PostgreSQL).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow
from services.service_desk.metrics import OUTCOMES_BACKFILL_PENDING, OUTCOMES_BACKFILLED
from services.service_desk.models import SlaScheduleRow, SlaSweepRow, TicketRow, TicketSlaOutcomeRow
from services.service_desk.usecases import sla_schedule
from shared.errors import PreconditionFailed, ValidationFailed

log = logging.getLogger(__name__)

BACKFILL = "ticket_sla_outcomes"
BATCH = 200


@dataclass
class Progress:
    looked_at: int = 0
    written: int = 0
    no_policy: int = 0
    failed: int = 0
    cursor: str | None = None
    done: bool = False
    failed_ids: list[str] = field(default_factory=list)

    def add(self, other: Progress) -> None:
        self.looked_at += other.looked_at
        self.written += other.written
        self.no_policy += other.no_policy
        self.failed += other.failed
        self.failed_ids += other.failed_ids
        self.cursor, self.done = other.cursor, other.done


def request(session: Session) -> None:
    """Look at every ticket without rows (again), from the start."""
    now = utcnow()
    job = session.get(SlaSweepRow, BACKFILL, with_for_update=True)
    if job is None:
        session.add(SlaSweepRow(name=BACKFILL, cursor="", requested_at=now, updated_at=now))
    else:
        job.cursor, job.requested_at, job.updated_at = "", now, now
    session.flush()


def pending(session: Session) -> bool:
    return session.scalar(select(SlaSweepRow.cursor).where(SlaSweepRow.name == BACKFILL)
                          ) is not None


def without_rows(session: Session, after: str = "") -> int:
    """How many tickets (after the id `after`) have no rows: the work left, about."""
    return session.scalar(select(func.count()).select_from(TicketRow).where(
        TicketRow.id > after, ~_has_rows())) or 0


def _has_rows() -> Any:
    return exists().where(TicketSlaOutcomeRow.ticket_id == TicketRow.id)


def step(db: Any, batch: int = BATCH) -> Progress:
    """One batch in one transaction (`db.begin()`); `done` once no ticket is left."""
    progress = Progress()
    with db.begin() as session:
        job = session.scalars(select(SlaSweepRow).where(
            SlaSweepRow.name == BACKFILL, SlaSweepRow.cursor.is_not(None))
            .with_for_update(skip_locked=True)).first()
        if job is None:
            progress.done = not pending(session)  # else another process has the batch
            OUTCOMES_BACKFILL_PENDING.set(0 if progress.done else 1)
            return progress
        ids = session.scalars(select(TicketRow.id).where(TicketRow.id > job.cursor,
                                                         ~_has_rows())
                              .order_by(TicketRow.id).limit(batch)).all()
        rows = session.scalars(select(TicketRow).where(TicketRow.id.in_(ids))
                               .order_by(TicketRow.id).with_for_update()).all() if ids else []
        # once locked, looked at again: a change committed meanwhile wrote its own rows
        taken = set(session.scalars(select(TicketSlaOutcomeRow.ticket_id).where(
            TicketSlaOutcomeRow.ticket_id.in_(ids)))) if ids else set()
        rows = [row for row in rows if row.id not in taken]
        if rows:
            # the schedules into the session's identity map: keep_outcomes' get finds them
            session.scalars(select(SlaScheduleRow).where(
                SlaScheduleRow.ticket_id.in_([row.id for row in rows]))).all()
            logs = sla_schedule.ticket_logs(session, rows)
            rules = sla_schedule.load_rules(session)
            for row in rows:
                try:
                    _, computed, _ = sla_schedule.keep_outcomes(
                        session, row, rules=rules, events=logs[row.id], outcomes=[])
                except (PreconditionFailed, ValidationFailed) as exc:
                    log.warning("ticket_sla_outcomes of ticket %s not backfilled: %s",
                                row.id, exc)
                    progress.failed += 1
                    progress.failed_ids.append(row.id)
                    continue
                if computed["clocks"]:
                    progress.written += 1
                else:
                    progress.no_policy += 1
        progress.looked_at = len(ids)
        job.cursor = ids[-1] if len(ids) == batch else None
        job.updated_at = utcnow()
        progress.cursor, progress.done = job.cursor, job.cursor is None
    for result in ("written", "no_policy", "failed"):
        if getattr(progress, result):
            OUTCOMES_BACKFILLED.labels(result).inc(getattr(progress, result))
    OUTCOMES_BACKFILL_PENDING.set(0 if progress.done else 1)
    return progress


def run_for(db: Any, budget_seconds: float = 0.5, batch: int = BATCH) -> Progress:
    """Batches for about `budget_seconds` (the service's timer); a batch that meets a
    concurrent change's conflict is rolled back whole and taken again at the next tick."""
    total = Progress()
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        try:
            progress = step(db, batch)
        except (IntegrityError, DBAPIError) as exc:  # a deadlock, a row inserted meanwhile
            log.warning("ticket_sla_outcomes backfill batch rolled back, taken again: %s", exc)
            return total
        total.add(progress)
        if progress.looked_at:
            log.info("ticket_sla_outcomes backfill: %d tickets looked at up to %s (%d with "
                     "rows written, %d without a policy, %d failed)%s", progress.looked_at,
                     progress.cursor or "the last", progress.written, progress.no_policy,
                     progress.failed, "; done" if progress.done else "")
        if progress.done or not progress.looked_at:
            return total
    return total
