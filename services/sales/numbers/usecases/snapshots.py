"""Forecast snapshots: one on request, one a week by timer, and their list."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.sales.numbers.domain import figures
from services.sales.numbers.queries import rollups, snapshots
from services.sales.numbers.usecases.reports import report_session
from shared import config
from shared.db import DatabaseAccess
from shared.errors import ValidationFailed

log = logging.getLogger(__name__)


def take(db: DatabaseAccess, actor: str | None) -> dict[str, Any]:
    with db.begin() as session:
        return snapshots.take_snapshot(session, datetime.now(UTC), "manual", actor)


def list_page(db: DatabaseAccess, limit: int, cursor: str | None) -> dict[str, Any]:
    """A page of snapshots, newest first: {items, next_cursor}."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise ValidationFailed.for_fields({"limit": ["must be an integer 1..200"]})
    if cursor is not None and not isinstance(cursor, str):
        raise ValidationFailed.for_fields({"cursor": ["must be a string"]})
    with report_session(db) as session:
        return snapshots.list_snapshots(session, limit, cursor)


def take_when_due(db: DatabaseAccess) -> None:
    """Weekly snapshots: take one if none was taken this ISO week. Also rebuilds the roll-ups
    when CRM_TIMEZONE's offset is not the one they were built with."""
    now = datetime.now(UTC)
    with db.begin() as session:
        if rollups.check_offset(session.connection()):
            log.info("opportunity roll-ups rebuilt for the offset of %s", config.timezone_name())
    with db.begin() as session:
        if figures.snapshot_due(snapshots.last_snapshot_at(session), now):
            result = snapshots.take_snapshot(session, now, "schedule")
            log.info("forecast snapshot %s taken (%s opportunities)", result["id"],
                     result["opportunities"])
