"""The rules service's notion of now.

In production it is the wall clock. With `CRM_CLOCK=controllable` (tests, demos) an offset
stored in the database moves it forward: `rules.advance_clock(seconds)` proves the 72-hour and
30-day rules without waiting. Every process reads the offset from the database on each tick,
so several processes and a restarted one agree.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from services.rules.models import ClockOffset


def controllable_from_env() -> bool:
    return os.environ.get("CRM_CLOCK", "").strip().lower() == "controllable"


class Clock:
    def __init__(self, controllable: bool | None = None) -> None:
        self.controllable = controllable_from_env() if controllable is None else controllable
        self.offset = 0.0

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        return moment + timedelta(seconds=self.offset) if self.offset else moment

    def refresh(self, session: Session) -> None:
        if not self.controllable:
            return
        row = session.get(ClockOffset, 1)
        self.offset = row.offset_seconds if row else 0.0

    def advance(self, session: Session, seconds: float) -> None:
        """Move the clock forward (inside the caller's transaction)."""
        row = session.get(ClockOffset, 1, with_for_update=True)
        if row is None:
            row = ClockOffset(id=1, offset_seconds=0.0, updated_at=datetime.now(UTC))
            session.add(row)
        row.offset_seconds = (row.offset_seconds or 0.0) + seconds
        row.updated_at = datetime.now(UTC)
        self.offset = row.offset_seconds


CLOCK = Clock()
"""The process's clock (re-read from the environment by `reset_clock` in tests)."""


def reset_clock() -> Clock:
    global CLOCK
    CLOCK = Clock()
    return CLOCK
