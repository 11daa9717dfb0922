"""Import and export of customers and contacts: jobs, batches, duplicates, progress, files.

An import is a job row holding the file until it is processed. `start_job` reads the header
at once (a file or header problem is answered right away); the rows are processed later by
`run_job` (the service's timer picks queued jobs) in batches of BATCH_ROWS, each in its own
transaction that also records progress, so a large file never holds the database for long
and shows how far it got. A dry run checks every row and reports what it would do.

Duplicates (customers): the same unified social credit code, or a name whose key (legal form,
punctuation, leading region removed) is at least 90 % similar, among stored customers and the
file's earlier rows. Contacts: the same customer and the same phone, email or name.
`on_duplicate`: skip (default), update (fill the stored record with the row's values) or
create (store it anyway; never for the same credit code, which is unique).
"""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from services.sales.domain import accounts
from services.sales.domain import imports as parsing
from services.sales.domain.custom_fields import merge_custom
from services.sales.models import Contact, Customer
from services.sales.models_numbers import (
    ImportError_,
    ImportJob,
    custom_value_expr,
    load_field_definitions,
)
from shared.db import DatabaseAccess
from shared.errors import Conflict, NotFound, ValidationFailed

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
MAX_FILE_BYTES = parsing.MAX_FILE_BYTES
MAX_ROWS = parsing.MAX_ROWS
MAX_ACTIVE_JOBS = parsing.MAX_ACTIVE_JOBS
MAX_ROWS_PER_DAY = parsing.MAX_ROWS_PER_DAY
# CPU-bound work (parsing, checking, fuzzy matching) yields to the service's other workers at
# least this often (eventlet runs one greenlet at a time); it never holds a transaction then.
SLICE_SECONDS = 0.02
ERRORS_PAGE = 500
# a running job whose batches stopped for this long lost its process: another resumes it
STALE_AFTER = timedelta(minutes=5)
# stored customers read as fuzzy-match candidates per (name block, key length); a block is
# read once per job
CANDIDATES_PER_BUCKET = 100
# a ratio of at least 90 needs the shorter key to be at least 9/11 of the longer one
LENGTH_SPREAD = 2 * 100 / accounts.NAME_MATCH_THRESHOLD - 1

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
    if entity not in parsing.ENTITIES:
        errors["entity"] = [f"must be one of {', '.join(parsing.ENTITIES)}"]
    if options.get("on_duplicate", "skip") not in parsing.ON_DUPLICATE:
        errors["on_duplicate"] = [f"must be one of {', '.join(parsing.ON_DUPLICATE)}"]
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
    percent = (round(100 * job.processed_rows / job.total_rows, 1) if job.total_rows
               else (100.0 if job.status == "done" else 0.0))
    return {
        "id": job.id, "entity": job.entity, "filename": job.filename, "format": job.format,
        "status": job.status, "dry_run": job.dry_run, "on_duplicate": job.on_duplicate,
        "total_rows": job.total_rows, "processed_rows": job.processed_rows,
        "progress_percent": min(percent, 100.0),
        **_outcome(job),
        "failed": job.failed, "file_errors": job.errors or {},
        "bad_rows": [{"row": r.row, "errors": r.errors} for r in rows],
        "bad_rows_offset": errors_offset,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _outcome(job: ImportJob) -> dict[str, Any]:
    """A dry run wrote nothing: it says what the import would do (`would_create`, ...), and
    created / updated / skipped are 0."""
    if job.dry_run:
        return {"created": 0, "updated": 0, "skipped": 0, "would_create": job.created,
                "would_update": job.updated, "would_skip": job.skipped}
    return {"created": job.created, "updated": job.updated, "skipped": job.skipped}


def get_job(session: Session, job_id: str, scope: dict[str, Any], actor: str | None) -> ImportJob:
    job = session.get(ImportJob, job_id) if isinstance(job_id, str) else None
    if job is None or not (scope.get("all") or job.actor == actor):
        raise NotFound(f"import {job_id} not found", {"field": "job_id"})
    return job


# -- running -------------------------------------------------------------------------------


class Importer:
    """Processes one job's rows. Each batch is checked in three steps so that no transaction
    is held while the CPU works: a short read of the stored records it is compared with, the
    checks and fuzzy matching (yielding through `pause` every SLICE_SECONDS), then one short
    write transaction with its rows, bad rows and progress."""

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
            job.status = "failed"
            job.errors = {**(job.errors or {}), **errors}
            job.finished_at = utcnow()
            job.content = None

    def _load_unique_values(self, session: Session) -> None:
        model = Customer if self.entity == "customer" else Contact
        dialect = session.get_bind().dialect.name
        for definition in self.definitions:
            if definition.get("unique"):
                expr = custom_value_expr(model, definition["key"], definition["type"], dialect)
                values = session.scalars(select(expr).where(expr.is_not(None))).all()
                self.unique_seen[definition["key"]] = {_unique_key(v) for v in values}

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
            job.processed_rows += len(batch)
            job.heartbeat_at = utcnow()
            for name, value in counts.items():
                setattr(job, name, getattr(job, name) + value)
            if final:
                job.total_rows = job.processed_rows
                job.status = "done"
                job.finished_at = utcnow()
                job.content = None
                self.summary = {
                    "job_id": job.id, "entity": job.entity, "filename": job.filename,
                    "created": job.created, "updated": job.updated, "skipped": job.skipped,
                    "failed": job.failed, "created_ids": self.created_ids[:1000],
                }
                if not self.dry_run and self.record_summary is not None:
                    self.record_summary(session, self.summary)

    # -- customers -----------------------------------------------------------------------

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
                marker = _unique_key(value)
                if marker in self.unique_seen[key]:
                    errors[f"custom.{key}"] = ["must be unique: another record already has "
                                               "this value"]

    def _remember_unique(self, record: dict[str, Any]) -> None:
        for key, value in (record.get("custom") or {}).items():
            if key in self.unique_seen:
                self.unique_seen[key].add(_unique_key(value))

    def _customers(self, rows: list, counts: dict, bad: list, writes: list[Write]) -> None:
        for _, record, _ in rows:
            if "name" in record:
                record["_key"] = accounts.name_key(record["name"])
        codes = {r["credit_code"] for _, r, _ in rows if r.get("credit_code")}
        stored_by_code: dict[str, Candidate] = {}
        with self.db.read() as session:
            if codes:
                for row in session.execute(
                    select(Customer.id, Customer.name, Customer.credit_code, Customer.owner_id)
                    .where(Customer.credit_code.in_(codes), Customer.merged_into_id.is_(None))
                ):
                    stored_by_code[row.credit_code] = (row.id, row.name, row.credit_code)
                    self.owner_of[row.id] = row.owner_id
            self._load_blocks(session, {accounts.name_block(r["_key"]) for _, r, _ in rows
                                        if r.get("_key")})
        inserts: list[dict[str, Any]] = []
        pending: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for number, record, errors in rows:
            self.pace()
            key = record.pop("_key", None)
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            code = record.get("credit_code")
            block = accounts.name_block(key) if key else None
            candidates: list[tuple[str, str, str | None]] = []
            for source in (stored_by_code, self.new_by_code):
                if code and code in source:
                    candidates.append(source[code])
            if block:
                candidates += self._similar_length(self.stored_by_block.get(block), key)
                candidates += self._similar_length(self.new_by_block.get(block), key)
            matches = self._matches(key, code, candidates)
            owner, team, owner_problems = self._owner(record)
            if owner_problems:
                errors["owner_id"] = owner_problems
            exact = next((m for m in matches if m.reason == "credit_code"), None)
            if matches and self.on_duplicate == "skip":
                counts["skipped"] += 1
                continue
            if matches and self.on_duplicate == "update":
                # only a record the importer may see is updated (a hidden one is not touched
                # and not named)
                visible = [m for m in matches if self._visible(self.owner_of.get(m.customer_id))]
                target = next((m for m in visible if m.reason == "credit_code"), None) or (
                    None if exact is not None else (visible[0] if visible else None))
                if target is None:
                    errors["credit_code" if exact else "name"] = [
                        "a matching customer exists that you cannot see; ask its owner or an "
                        "admin"]
                self._check_custom(record, errors, new=False)
                if errors:
                    bad.append({"row": number, "errors": errors})
                    counts["failed"] += 1
                    continue
                if not self.dry_run:
                    self._update_customer(writes, pending, target.customer_id, record, now)
                self._remember_unique(record)
                counts["updated"] += 1
                continue
            if exact is not None:  # create: a credit code is unique all the same
                errors["credit_code"] = [
                    f"customer {exact.customer_id} ({exact.name}) has this credit code; "
                    "use on_duplicate=update or skip"
                    if self._visible(self.owner_of.get(exact.customer_id)) else
                    "a customer you cannot see has this credit code"
                ]
            self._check_custom(record, errors, new=True)
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            new_id = str(uuid.uuid4())
            values = {
                "id": new_id, "name": record["name"], "name_key": key,
                "name_block": block, "credit_code": code, "tier": record.get("tier"),
                "lifecycle_stage": record.get("lifecycle_stage") or "prospect",
                "tags": record.get("tags") or [], "owner_id": owner, "team_id": team,
                "region": record.get("region"), "industry": record.get("industry"),
                "source": record.get("source"), "campaign": record.get("campaign"),
                "phone": record.get("phone"), "website": record.get("website"),
                "address": record.get("address"), "custom": record.get("custom") or {},
                "merged_into_id": None, "last_activity_at": None,
                "created_at": now, "updated_at": now,
            }
            inserts.append(values)
            pending[new_id] = values
            candidate = (new_id, record["name"], code)
            self.owner_of[new_id] = owner
            self.name_keys[record["name"]] = key
            if code:
                self.new_by_code[code] = candidate
            if block:
                self.new_by_block[block][len(key)].append(candidate)
            self._remember_unique(record)
            self.created_ids.append(new_id)
            counts["created"] += 1
        if inserts and not self.dry_run:
            writes.insert(0, lambda session: insert_rows(session, Customer.__table__, inserts))

    def _load_blocks(self, session: Session, blocks: set[str | None]) -> None:
        """Reads the stored customers of blocks not read yet in this job: at most
        CANDIDATES_PER_BUCKET of each key length, the newest first."""
        wanted = sorted(b for b in blocks if b and b not in self.stored_by_block)
        if not wanted:
            return
        length = func.length(Customer.name_key)
        ranked = (
            select(Customer.id, Customer.name, Customer.credit_code, Customer.name_block,
                   Customer.owner_id, length.label("length"),
                   func.row_number().over(partition_by=(Customer.name_block, length),
                                          order_by=Customer.created_at.desc()).label("rank"))
            .where(Customer.name_block.in_(wanted), Customer.merged_into_id.is_(None))
            .subquery()
        )
        for block in wanted:
            self.stored_by_block[block] = defaultdict(list)
        for row in session.execute(select(ranked).where(ranked.c.rank <= CANDIDATES_PER_BUCKET)):
            self.stored_by_block[row.name_block][row.length].append(
                (row.id, row.name, row.credit_code))
            self.owner_of[row.id] = row.owner_id

    @staticmethod
    def _similar_length(
        by_length: dict[int, list[Candidate]] | None, key: str
    ) -> list[Candidate]:
        """Candidates whose key is long enough and short enough to reach the threshold."""
        if not by_length:
            return []
        size = len(key)
        low, high = int(size / LENGTH_SPREAD), int(size * LENGTH_SPREAD) + 1
        return [c for n in range(max(low, 1), high + 1) for c in by_length.get(n, ())]

    def _matches(
        self, key: str | None, code: str | None, candidates: list[tuple[str, str, str | None]]
    ) -> list[accounts.CustomerMatch]:
        """accounts.find_matches with each candidate's name key computed once per import,
        the ratios computed by rapidfuzz in one call (not a Python loop per candidate)."""
        exact, keyed = [], []
        for customer_id, name, other_code in candidates:
            if code and other_code == code:
                exact.append(accounts.CustomerMatch(customer_id, name, "credit_code", 100.0))
                continue
            other_key = self.name_keys.get(name)
            if other_key is None:
                other_key = self.name_keys[name] = accounts.name_key(name)
            if other_key:
                keyed.append((customer_id, name, other_key))
        fuzzy = []
        if key and keyed:
            for _, score, index in process.extract(
                key, [k for *_, k in keyed], scorer=fuzz.ratio, limit=None,
                score_cutoff=accounts.NAME_MATCH_THRESHOLD,
            ):
                customer_id, name, _ = keyed[index]
                fuzzy.append(accounts.CustomerMatch(customer_id, name, "name",
                                                    round(float(score), 2)))
        fuzzy.sort(key=lambda m: -m.score)
        return exact + fuzzy

    @staticmethod
    def _update_customer(
        writes: list[Write], pending: dict[str, dict[str, Any]], customer_id: str,
        record: dict[str, Any], now: datetime,
    ) -> None:
        if customer_id in pending:  # created earlier in this batch, not inserted yet
            values = pending[customer_id]
            for name, value in record.items():
                values[name] = merge_custom(values["custom"], value) if name == "custom" \
                    else value
            return

        def write(session: Session) -> None:
            customer = session.get(Customer, customer_id)
            if customer is None:  # merged or removed since the batch read it
                return
            for name, value in record.items():
                if name == "custom":
                    customer.custom = merge_custom(customer.custom, value)
                elif name == "tags":
                    customer.tags = accounts.normalise_tags([*(customer.tags or []), *value])
                elif name == "name":
                    continue  # the stored name stays: the row matched it
                else:
                    setattr(customer, name, value)
            customer.updated_at = now

        writes.append(write)

    # -- contacts ------------------------------------------------------------------------

    def _contacts(self, rows: list, counts: dict, bad: list, writes: list[Write]) -> None:
        ids = {r["customer_id"] for _, r, _ in rows if r.get("customer_id")}
        codes = {r["customer_credit_code"] for _, r, _ in rows if r.get("customer_credit_code")}
        keys = {accounts.name_key(r["customer_name"]) for _, r, _ in rows
                if r.get("customer_name")}
        by_id: dict[str, Any] = {}
        by_code: dict[str, Any] = {}
        by_key: dict[str, list[Any]] = defaultdict(list)
        conditions = []
        if ids:
            conditions.append(Customer.id.in_(ids))
        if codes:
            conditions.append(Customer.credit_code.in_(codes))
        if keys:
            conditions.append(Customer.name_key.in_(keys))
        with self.db.read() as session:
            if conditions:
                for row in session.execute(
                    select(Customer.id, Customer.credit_code, Customer.name_key,
                           Customer.owner_id)
                    .where(or_(*conditions), Customer.merged_into_id.is_(None))
                ):
                    by_id[row.id] = row
                    if row.credit_code:
                        by_code[row.credit_code] = row
                    if row.name_key:
                        by_key[row.name_key].append(row)
            resolved = self._resolve_customers(rows, by_id, by_code, by_key)
            customer_ids = {c for *_, c in resolved if c}
            existing: dict[tuple[str, str, str], str] = {}
            if customer_ids:
                for row in session.execute(
                    select(Contact.id, Contact.customer_id, Contact.name, Contact.phone,
                           Contact.email).where(Contact.customer_id.in_(customer_ids))
                ):
                    for kind in ("phone", "email", "name"):
                        value = getattr(row, kind)
                        if value:
                            existing[(row.customer_id, kind, value.casefold())] = row.id
        inserts: list[dict[str, Any]] = []
        pending: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for number, record, errors, customer_id in resolved:
            self.pace()
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            match = None
            for kind in ("phone", "email", "name"):
                value = record.get(kind)
                if value:
                    key = (customer_id, kind, value.casefold())
                    match = existing.get(key) or self.new_contacts.get(key)
                    if match:
                        break
            owner, _team, owner_problems = self._owner(record)
            if owner_problems:
                errors["owner_id"] = owner_problems
            if match and self.on_duplicate == "skip":
                counts["skipped"] += 1
                continue
            self._check_custom(record, errors, new=not (match and self.on_duplicate == "update"))
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            if match and self.on_duplicate == "update":
                if not self.dry_run:
                    if match in pending:
                        pending[match].update(
                            {k: v for k, v in record.items() if k != "custom"})
                        pending[match]["custom"] = merge_custom(pending[match]["custom"],
                                                                record.get("custom") or {})
                    else:
                        writes.append(_contact_update(match, record, now))
                self._remember_unique(record)
                counts["updated"] += 1
                continue
            new_id = str(uuid.uuid4())
            values = {
                "id": new_id, "customer_id": customer_id, "name": record["name"],
                "title": record.get("title"), "role": record.get("role"),
                "phone": record.get("phone"), "email": record.get("email"),
                "wechat": record.get("wechat"),
                "preferred_channel": record.get("preferred_channel"),
                "birthday": record.get("birthday"), "consent": bool(record.get("consent")),
                "custom": record.get("custom") or {}, "owner_id": owner, "lead_id": None,
                "created_at": now, "updated_at": now,
            }
            inserts.append(values)
            pending[new_id] = values
            for kind in ("phone", "email", "name"):
                if record.get(kind):
                    self.new_contacts[(customer_id, kind, record[kind].casefold())] = new_id
            self._remember_unique(record)
            self.created_ids.append(new_id)
            counts["created"] += 1
        if inserts and not self.dry_run:
            writes.insert(0, lambda session: insert_rows(session, Contact.__table__, inserts))

    def _resolve_customers(
        self, rows: list, by_id: dict, by_code: dict, by_key: dict
    ) -> list[tuple[int, dict, dict, str | None]]:
        """Each row's customer (by id, credit code or name), visible to the importer."""
        resolved: list[tuple[int, dict, dict, str | None]] = []
        for number, record, errors in rows:
            customer_id = None
            given_id = record.pop("customer_id", None)
            code = record.pop("customer_credit_code", None)
            name = record.pop("customer_name", None)
            customer, problem = None, None
            if given_id:
                customer = by_id.get(given_id)
                problem = None if customer else f"no customer {given_id}"
            elif code:
                customer = by_code.get(code)
                problem = None if customer else f"no customer with credit code {code}"
            elif name:
                found = [c for c in by_key.get(accounts.name_key(name), [])
                         if self._visible(c.owner_id)]
                customer = found[0] if len(found) == 1 else None
                problem = (None if customer else f"no customer named {name}" if not found
                           else f"{len(found)} customers are named like {name}: "
                                "give the credit code or customer_id")
            else:
                problem = "a customer is required (name, credit code or id)"
            if customer is not None and not self._visible(customer.owner_id):
                customer, problem = None, f"no customer {given_id or code or name}"
            if problem:
                errors["customer"] = [problem]
            else:
                customer_id = customer.id
            resolved.append((number, record, errors, customer_id))
        return resolved


def _contact_update(contact_id: str, record: dict[str, Any], now: datetime) -> Write:
    def write(session: Session) -> None:
        contact = session.get(Contact, contact_id)
        if contact is None:
            return
        for name, value in record.items():
            if name == "custom":
                contact.custom = merge_custom(contact.custom, value)
            elif name != "name":
                setattr(contact, name, value)
        contact.updated_at = now

    return write


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany on the table (the ORM's bulk path costs more than the database)."""
    session.execute(insert(table), rows)


def _paced(records: Iterable[dict[str, Any]], pause: Callable[[], None]):
    for record in records:
        pause()
        yield record


def _unique_key(value: Any) -> str:
    return str(value).casefold()


# -- export --------------------------------------------------------------------------------

EXPORT_FORMATS = ("csv", "xlsx")


def export_file(
    entity: str, records: Iterable[dict[str, Any]], definitions: list[dict[str, Any]],
    fmt: str, pause: Callable[[], None] = lambda: None,
) -> bytes:
    """Records as a CSV (UTF-8 with BOM, so Excel shows Chinese) or xlsx file whose header the
    importer reads back; `pause` is called for every record (a Pacer yields now and then)."""
    header = parsing.export_header(entity, definitions)
    records = _paced(records, pause)
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet(entity)
        sheet.append(header)
        for record in records:
            sheet.append([parsing.csv_safe(v)
                          for v in parsing.export_cells(entity, record, definitions)])
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for record in records:
        writer.writerow([parsing.csv_safe(v)
                         for v in parsing.export_cells(entity, record, definitions)])
    return ("\ufeff" + text.getvalue()).encode("utf-8")

