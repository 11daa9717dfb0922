"""Import of customers and contacts: jobs, batches, duplicates, progress.

An import is a job row holding the file until it is processed. `start_job` reads the header
at once (a file or header problem is answered right away); the rows are processed later by
`Importer.run` (the service's timer picks queued jobs) in batches of BATCH_ROWS, each in its own
transaction that also records progress, so a large file never holds the database for long
and shows how far it got. A dry run checks every row and reports what it would do.

Duplicates (customers): the same unified social credit code, or a name whose key (legal form,
punctuation, leading region removed) is at least 90 % similar, among stored customers and the
file's earlier rows. Contacts: the same customer and the same phone, email or name.
`on_duplicate`: skip (default), update (fill the stored record with the row's values) or
create (store it anyway; never for the same credit code, which is unique).
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from services.sales.models import Contact, Customer
from services.sales.numbers import contract
from services.sales.numbers.contract import IMPORT_ENTITIES, ON_DUPLICATE
from services.sales.numbers.domain import import_jobs
from services.sales.numbers.domain import import_rows as parsing
from services.sales.numbers.models import ImportError_, ImportJob
from services.sales.numbers.queries.custom_filters import custom_value_expr
from services.sales.numbers.usecases.custom_fields import load_field_definitions
from services.sales.numbers.usecases.import_contacts import ContactRows
from services.sales.numbers.usecases.import_customers import CustomerRows
from services.sales.numbers.usecases.import_support import (
    Candidate,
    Pacer,
    Write,
    megabytes,
    unique_key,
    utcnow,
)
from shared.db import DatabaseAccess
from shared.errors import Conflict, NotFound, ValidationFailed

log = logging.getLogger(__name__)

IMPORT_EVENTS = {"customer": "customers_imported", "contact": "contacts_imported"}
RecordEvent = Callable[[Session, str, dict[str, Any]], None]

BATCH_ROWS = 1000
# the limits (the contract's) are read from here at each use, so a test may lower them
MAX_FILE_BYTES = contract.MAX_FILE_BYTES
MAX_ROWS = contract.MAX_ROWS
MAX_ACTIVE_JOBS = contract.MAX_ACTIVE_JOBS
MAX_ROWS_PER_DAY = contract.MAX_ROWS_PER_DAY
ERRORS_PAGE = 500
# a running job whose batches stopped for this long lost its process: another resumes it
STALE_AFTER = timedelta(minutes=5)


# -- jobs ----------------------------------------------------------------------------------


def check_user_limits(session: Session, actor: str | None) -> None:
    """Conflict when the user already has MAX_ACTIVE_JOBS imports queued or running."""
    active = session.scalar(select(func.count()).select_from(ImportJob).where(
        ImportJob.actor == actor, ImportJob.status.in_(("queued", "running"))))
    if active >= MAX_ACTIVE_JOBS:
        raise Conflict(
            f"you have {active} imports queued or running; one user may have at most "
            f"{MAX_ACTIVE_JOBS} at once: wait for one to finish",
            {"field": "file", "limit": "max_active_jobs", "max_active_jobs": MAX_ACTIVE_JOBS})


def rows_today(session: Session, actor: str | None, now: datetime | None = None) -> int:
    """Rows of the user's imports started in the last 24 hours (dry runs count: they cost as
    much)."""
    since = (now or utcnow()) - timedelta(days=1)
    return int(session.scalar(select(func.coalesce(func.sum(ImportJob.total_rows), 0)).where(
        ImportJob.actor == actor, ImportJob.created_at >= since)) or 0)


def start_job(
    session: Session, entity: str, filename: str, content: bytes, options: dict[str, Any],
    actor: str | None, pause: Callable[[], None] | None = None,
) -> ImportJob:
    """Check the user's limits, the file's size, format, header and rows now; queue its rows
    for `run_job`."""
    errors: dict[str, list[str]] = {}
    if entity not in IMPORT_ENTITIES:
        errors["entity"] = [f"must be one of {', '.join(IMPORT_ENTITIES)}"]
    if options.get("on_duplicate", "skip") not in ON_DUPLICATE:
        errors["on_duplicate"] = [f"must be one of {', '.join(ON_DUPLICATE)}"]
    if len(content) > MAX_FILE_BYTES:
        errors["file"] = [f"the file has {len(content):,} bytes; an import takes at most "
                          f"{megabytes(MAX_FILE_BYTES)} ({MAX_FILE_BYTES:,} bytes)"]
    if errors:
        raise ValidationFailed.for_fields(errors)
    check_user_limits(session, actor)
    sheet = parsing.read_sheet(filename, content, max_rows=MAX_ROWS, pause=pause)
    definitions = load_field_definitions(session, entity)
    columns = parsing.map_header(entity, sheet.header, definitions)
    if sheet.total_rows > MAX_ROWS:
        raise ValidationFailed.for_fields({"file": [
            f"an import takes at most {MAX_ROWS:,} rows; split the file"]})
    used = rows_today(session, actor)
    if used + sheet.total_rows > MAX_ROWS_PER_DAY:
        raise Conflict(
            f"imports of one user take at most {MAX_ROWS_PER_DAY:,} rows a day: {used:,} "
            f"were imported in the last 24 hours and this file has {sheet.total_rows:,}",
            {"field": "file", "limit": "max_rows_per_day", "max_rows_per_day": MAX_ROWS_PER_DAY,
             "rows_today": used})
    job = ImportJob(
        id=str(uuid.uuid4()), entity=entity, filename=filename[:255], format=sheet.format,
        status="queued", dry_run=bool(options.get("dry_run")),
        on_duplicate=options.get("on_duplicate") or "skip", total_rows=sheet.total_rows,
        processed_rows=0, created=0, updated=0, skipped=0, failed=0,
        errors={"ignored_columns": columns.ignored} if columns.ignored else {},
        options={k: options.get(k) for k in ("owner_id", "team_id", "scope")},
        content=content, actor=actor, created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def claim_next_job(session: Session, now: datetime | None = None) -> str | None:
    """Take the oldest queued job, or resume a running one whose process stopped beating
    (it restarts after the rows it committed); one process wins the update."""
    now = now or utcnow()
    stale = now - STALE_AFTER
    waiting = or_(ImportJob.status == "queued",
                  and_(ImportJob.status == "running", ImportJob.heartbeat_at < stale))
    job_id = session.scalar(
        select(ImportJob.id).where(waiting).order_by(ImportJob.created_at).limit(1)
    )
    if job_id is None:
        return None
    claimed = session.execute(
        update(ImportJob).where(ImportJob.id == job_id, waiting)
        .values(status="running", heartbeat_at=now,
                started_at=func.coalesce(ImportJob.started_at, now))
    ).rowcount
    return job_id if claimed == 1 else None


def job_to_dict(
    session: Session, job: ImportJob, errors_offset: int = 0, errors_limit: int = ERRORS_PAGE
) -> dict[str, Any]:
    rows = session.scalars(
        select(ImportError_).where(ImportError_.job_id == job.id)
        .order_by(ImportError_.row).offset(errors_offset).limit(errors_limit)
    ).all()
    return {
        "id": job.id, "entity": job.entity, "filename": job.filename, "format": job.format,
        "status": job.status, "dry_run": job.dry_run, "on_duplicate": job.on_duplicate,
        "total_rows": job.total_rows, "processed_rows": job.processed_rows,
        "progress_percent": import_jobs.progress_percent(job),
        **import_jobs.outcome(job),
        "failed": job.failed, "file_errors": job.errors or {},
        "bad_rows": [{"row": r.row, "errors": r.errors} for r in rows],
        "bad_rows_offset": errors_offset,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def get_job(session: Session, job_id: str, scope: dict[str, Any], actor: str | None) -> ImportJob:
    job = session.get(ImportJob, job_id) if isinstance(job_id, str) else None
    if job is None or not (scope.get("all") or job.actor == actor):
        raise NotFound(f"import {job_id} not found", {"field": "job_id"})
    return job


# -- running -------------------------------------------------------------------------------


class Importer(CustomerRows, ContactRows):
    """Processes one job's rows. Each batch is checked in three steps so that no transaction
    is held while the CPU works: a short read of the stored records it is compared with, the
    checks and fuzzy matching (yielding through `pause` every SLICE_SECONDS), then one short
    write transaction with its rows, bad rows and progress. The checks of customer and
    contact rows are its halves CustomerRows (import_customers.py) and ContactRows
    (import_contacts.py)."""

    def __init__(
        self, db: DatabaseAccess, job_id: str,
        between_batches: Callable[[], None] = lambda: None,
    ):
        self.db = db
        self.job_id = job_id
        self.between_batches = between_batches
        self.pace = Pacer(between_batches)
        # keys of records this file created (or would create), for duplicates within it
        self.new_by_code: dict[str, Candidate] = {}
        # name block -> key length -> candidates: this file's new records, stored customers
        self.new_by_block: dict[str, dict[int, list[Candidate]]] = defaultdict(
            lambda: defaultdict(list))
        self.stored_by_block: dict[str, dict[int, list[Candidate]]] = {}
        self.owner_of: dict[str, str | None] = {}  # customer id -> owner (visibility)
        self.new_contacts: dict[tuple[str, str, str], str] = {}
        self.unique_seen: dict[str, set[Any]] = {}
        self.created_ids: list[str] = []
        self.name_keys: dict[str, str] = {}
        # called in the last batch's transaction with the job's summary (not on a dry run)
        self.record_summary: Callable[[Session, dict[str, Any]], None] | None = None
        self.summary: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        with self.db.begin() as session:
            job = session.get(ImportJob, self.job_id)
            if job is None or job.content is None:
                raise NotFound(f"import {self.job_id} not found")
            self.entity, self.dry_run = job.entity, job.dry_run
            self.on_duplicate, self.options = job.on_duplicate, job.options or {}
            self.actor = job.actor
            content, filename, skip = job.content, job.filename, job.processed_rows
            self.definitions = load_field_definitions(session, job.entity)
        with self.db.read() as session:
            self._load_unique_values(session)
        self.scope = self.options.get("scope") or {"all": True}
        self.by_key = {d["key"]: d for d in self.definitions}
        try:
            sheet = parsing.read_sheet(filename, content)
            self.columns = parsing.map_header(self.entity, sheet.header, self.definitions)
            batch: list[tuple[int, list[str]]] = []
            done = 0
            for number, cells in sheet.rows:
                self.pace()
                done += 1
                if done > MAX_ROWS:  # an xlsx whose dimension said fewer rows
                    raise ValidationFailed.for_fields({"file": [
                        f"an import takes at most {MAX_ROWS:,} rows; split the file"]})
                if done <= skip:  # resumed after a crash: these rows were committed
                    continue
                batch.append((number, cells))
                if len(batch) >= BATCH_ROWS:
                    self._flush(batch)
                    batch = []
                    self.between_batches()
            self._flush(batch, final=True)
        except ValidationFailed as exc:
            self._fail(exc.errors or {"file": [str(exc)]})
        except Exception as exc:  # noqa: BLE001 - the job records it; the timer goes on
            log.exception("import %s failed", self.job_id)
            self._fail({"file": [f"the import stopped: {exc.__class__.__name__}"]})
        with self.db.read() as session:
            job = session.get(ImportJob, self.job_id)
            return job_to_dict(session, job, 0, 0)

    def _fail(self, errors: dict[str, Any]) -> None:
        with self.db.begin() as session:
            job = session.get(ImportJob, self.job_id)
            import_jobs.fail(job, errors, utcnow())

    def _load_unique_values(self, session: Session) -> None:
        model = Customer if self.entity == "customer" else Contact
        dialect = session.get_bind().dialect.name
        for definition in self.definitions:
            if definition.get("unique"):
                expr = custom_value_expr(model, definition["key"], definition["type"], dialect)
                values = session.scalars(select(expr).where(expr.is_not(None))).all()
                self.unique_seen[definition["key"]] = {unique_key(v) for v in values}

    def _visible(self, owner_id: str | None) -> bool:
        return bool(self.scope.get("all")) or owner_id in (self.scope.get("owner_ids") or [])

    def _flush(self, batch: list[tuple[int, list[str]]], final: bool = False) -> None:
        counts = {"created": 0, "updated": 0, "skipped": 0, "failed": 0}
        bad: list[dict[str, Any]] = []
        writes: list[Write] = []
        if batch:
            cleaned = []
            for number, cells in batch:
                self.pace()
                record, errors = parsing.clean_row(self.entity, self.columns, cells, self.by_key)
                cleaned.append((number, record, errors))
            handler = self._customers if self.entity == "customer" else self._contacts
            handler(cleaned, counts, bad, writes)
        # one batch in one short transaction, progress included
        with self.db.begin() as session:
            job = session.get(ImportJob, self.job_id)
            for write in writes:
                write(session)
            if bad:
                session.execute(insert(ImportError_), [
                    {"job_id": self.job_id, "row": b["row"], "errors": b["errors"]} for b in bad
                ])
            import_jobs.record_batch(job, len(batch), counts, utcnow())
            if final:
                import_jobs.finish(job, utcnow())
                self.summary = {
                    "job_id": job.id, "entity": job.entity, "filename": job.filename,
                    "created": job.created, "updated": job.updated, "skipped": job.skipped,
                    "failed": job.failed, "created_ids": self.created_ids[:1000],
                }
                if not self.dry_run and self.record_summary is not None:
                    self.record_summary(session, self.summary)

    # -- what every row needs: its owner, its custom values ----------------------------

    def _owner(self, record: dict[str, Any]) -> tuple[str | None, str | None, list[str]]:
        """(owner_id, team_id, problems): a row may name an owner within the scope only."""
        default_owner, team = self.options.get("owner_id"), self.options.get("team_id")
        owner = record.pop("owner_id", None)
        if owner is None or owner == default_owner:
            return default_owner, team, []
        if self._visible(owner):
            return owner, None, []
        return None, None, [f"{owner} is not someone whose records you may assign"]

    def _check_custom(
        self, record: dict[str, Any], errors: dict[str, list[str]], new: bool
    ) -> None:
        if new:
            errors.update(parsing.missing_required_custom(record, self.definitions))
        for key, value in (record.get("custom") or {}).items():
            if key in self.unique_seen:
                marker = unique_key(value)
                if marker in self.unique_seen[key]:
                    errors[f"custom.{key}"] = ["must be unique: another record already has "
                                               "this value"]

    def _remember_unique(self, record: dict[str, Any]) -> None:
        for key, value in (record.get("custom") or {}).items():
            if key in self.unique_seen:
                self.unique_seen[key].add(unique_key(value))


# -- use cases -----------------------------------------------------------------------------


def start_import(
    db: DatabaseAccess, entity: str, filename: str, content_b64: str, options: dict[str, Any],
    scope: dict[str, Any], actor: str | None, pause: Callable[[], None],
) -> dict[str, Any]:
    """Queue an import (`options` as the contract's ImportOptionsSchema loads them); a file or
    header problem, or a file over the limits, is answered now."""
    try:
        content = base64.b64decode(content_b64 or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationFailed.for_fields({"file": ["content_b64 is not base64"]}) from None
    values = {**options, "owner_id": options.get("owner_id") or actor, "scope": scope}
    with db.begin() as session:
        job = start_job(session, entity, filename or "import.csv", content, values, actor,
                        pause=pause)
        return job_to_dict(session, job)


def get_import(
    db: DatabaseAccess, job_id: str, scope: dict[str, Any], actor: str | None,
    errors_offset: int, errors_limit: int,
) -> dict[str, Any]:
    with db.read() as session:
        job = get_job(session, job_id, scope, actor)
        return job_to_dict(session, job, max(0, int(errors_offset)),
                           max(0, min(int(errors_limit), 5000)))


def run_queued(db: DatabaseAccess, record_event: RecordEvent, pause: Callable[[], None]) -> int:
    """Process queued imports one after another; returns how many ran."""
    ran = 0
    while True:
        with db.begin() as session:
            job_id = claim_next_job(session)
        if job_id is None:
            return ran
        run_import(db, job_id, record_event, pause)
        ran += 1


def run_import(
    db: DatabaseAccess, job_id: str, record_event: RecordEvent, pause: Callable[[], None]
) -> dict[str, Any]:
    """Process one job; its summary event (customers_imported / contacts_imported) is
    recorded in the last batch's transaction."""
    importer = Importer(db, job_id, between_batches=pause)

    def record(session: Session, summary: dict[str, Any]) -> None:
        record_event(session, IMPORT_EVENTS[summary["entity"]], summary)

    importer.record_summary = record
    return importer.run()
