"""What the import's steps share: the cooperative pacing of CPU-bound work, the clock, the
deferred writes of a batch and the bulk insert."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

# CPU-bound work (parsing, checking, fuzzy matching) yields to the service's other workers at
# least this often (eventlet runs one greenlet at a time); it never holds a transaction then.
SLICE_SECONDS = 0.02

Candidate = tuple[str, str, str | None]  # id, name, credit code
Write = Callable[[Session], None]


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


class Pacer:
    """Calls `pause` (a cooperative yield) when SLICE_SECONDS have passed since the last one:
    cheap enough to call for every row."""

    def __init__(self, pause: Callable[[], None], slice_seconds: float = SLICE_SECONDS):
        self.pause = pause
        self.slice = slice_seconds
        self.last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.slice:
            self.pause()
            self.last = time.monotonic()


def utcnow() -> datetime:
    return datetime.now(UTC)


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany on the table (the ORM's bulk path costs more than the database)."""
    session.execute(insert(table), rows)


def unique_key(value: Any) -> str:
    return str(value).casefold()
