"""An import job's life: queued, running (batch by batch), then done or failed. The use case
loads the job row and calls these; they check nothing the database does not already hold and
change the job as its state moves on. (Claiming a queued job is one conditional UPDATE in the
use case, so that two processes cannot both win it.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

COUNTS = ("created", "updated", "skipped", "failed")


class Job(Protocol):
    status: str
    dry_run: bool
    total_rows: int
    processed_rows: int
    created: int
    updated: int
    skipped: int
    failed: int
    errors: dict[str, Any] | None
    content: bytes | None
    heartbeat_at: datetime | None
    finished_at: datetime | None


def record_batch(job: Job, rows: int, counts: dict[str, int], now: datetime) -> None:
    """A batch of `rows` rows was committed with these counts; the job is alive."""
    job.processed_rows += rows
    job.heartbeat_at = now
    for name in COUNTS:
        setattr(job, name, getattr(job, name) + counts.get(name, 0))


def finish(job: Job, now: datetime) -> None:
    """Every row was processed: the job is done and the file is let go."""
    job.total_rows = job.processed_rows
    job.status = "done"
    job.finished_at = now
    job.content = None


def fail(job: Job, errors: dict[str, Any], now: datetime) -> None:
    """The file could not be processed further: the job failed with `errors` (by field)."""
    job.status = "failed"
    job.errors = {**(job.errors or {}), **errors}
    job.finished_at = now
    job.content = None


def progress_percent(job: Job) -> float:
    percent = (round(100 * job.processed_rows / job.total_rows, 1) if job.total_rows
               else (100.0 if job.status == "done" else 0.0))
    return min(percent, 100.0)


def outcome(job: Job) -> dict[str, Any]:
    """A dry run wrote nothing: it says what the import would do (`would_create`, ...), and
    created / updated / skipped are 0."""
    if job.dry_run:
        return {"created": 0, "updated": 0, "skipped": 0, "would_create": job.created,
                "would_update": job.updated, "would_skip": job.skipped}
    return {"created": job.created, "updated": job.updated, "skipped": job.skipped}
