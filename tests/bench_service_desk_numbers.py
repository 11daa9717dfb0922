"""Bench: the service desk's /reports/tickets figures (volume, backlog, first-reply and
resolution times, SLA attainment, reopen rate, and a drill-down page) over 100,000 tickets, their
entries and SLA outcome rows on PostgreSQL (target: a few hundred milliseconds). Prints JSON
(p50, p99, max); timings are reported, never asserted.

    BENCH_ONLY=service_desk_numbers make bench      # or: python -m tests.bench_service_desk_numbers
    BENCH_DESK_TICKETS=10000 python -m tests.bench_service_desk_numbers

A fresh database is created on CRM_TEST_PG_URL's server (dropped at the end unless
BENCH_DESK_KEEP=1), migrated, bulk-loaded with COPY (a year of tickets up to now, about 6
entries each: created, the first agent reply, status changes with pauses, solves, reopens and
closes; their first_reply and resolution outcome rows) and analysed; then each report runs
BENCH_DESK_RUNS (20) times through the service's use cases (the RPC's SQL) for everybody, for a
manager's 10 agents and for one agent. BENCH_DESK_DATABASE=<kept database> reuses one.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import psycopg  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from services.service_desk.usecases import numbers  # noqa: E402
from shared.db import DatabaseAccess, make_engine  # noqa: E402
from shared.migrations import upgrade  # noqa: E402
from tests.bench_pg import (  # noqa: E402
    copy_rows,
    create_database,
    database_url,
    drop_database,
)
from tests.bench_pg import timed as _timed

TICKETS = int(os.environ.get("BENCH_DESK_TICKETS", "100000"))
RUNS = int(os.environ.get("BENCH_DESK_RUNS", "20"))
AGENTS = 40
GROUPS = 8
DAYS = 365
POLICY_ID = "00000000-0000-4000-8000-00000000b001"
OPEN = ("new", "open", "pending", "on_hold")


def progress(message: str) -> None:
    print(f"[bench-desk-numbers] {message}", file=sys.stderr, flush=True)


def _history(rng: random.Random, created: datetime, now: datetime
             ) -> tuple[list[tuple[str, str | None, str | None, datetime]], str, dict]:
    """A ticket's entries after `created` up to `now` (kind, from, to, at), its status now and
    its outcome figures."""
    entries: list[tuple[str, str | None, str | None, datetime]] = []
    status, at = "new", created
    outcome: dict[str, Any] = {"reply_at": None, "solved_at": None, "paused": 0}

    def change(to: str, after: timedelta) -> bool:
        nonlocal status, at
        if at + after >= now:
            return False
        at += after
        entries.append(("status_changed", status, to, at))
        status = to
        return True

    reply = timedelta(minutes=rng.choice((5, 20, 45, 90, 180, 300, 600, 1500)))
    if created + reply < now and rng.random() < 0.95:
        at = created + reply
        entries.append(("reply", None, None, at))
        outcome["reply_at"] = at
        change("open", timedelta(seconds=1))
    if status == "open" and rng.random() < 0.3:
        wait = timedelta(hours=rng.choice((2, 8, 30)))
        if change(rng.choice(("pending", "on_hold")), timedelta(hours=1)):
            if change("open", wait):
                outcome["paused"] += int(wait.total_seconds())
    if status == "open" and change("solved", timedelta(hours=rng.choice((1, 3, 6, 20, 50)))):
        outcome["solved_at"] = at
        if rng.random() < 0.06 and change("open", timedelta(hours=5)):
            outcome["solved_at"] = None
            if change("solved", timedelta(hours=4)):
                outcome["solved_at"] = at
        if status == "solved":
            change("closed", timedelta(days=3))
    return entries, status, outcome


def seed(url: str) -> dict[str, Any]:
    rng = random.Random(20261203)
    now = datetime.now(UTC)
    agents = [f"agent-{i:02d}" for i in range(AGENTS)]
    groups = [str(uuid.UUID(int=i + 1)) for i in range(GROUPS)]
    started = time.perf_counter()
    counts = {"tickets": 0, "entries": 0, "outcomes": 0, "open_now": 0}
    tickets, entries, outcomes = [], [], []
    for i in range(TICKETS):
        tid = str(uuid.uuid4())
        created = now - timedelta(seconds=rng.randrange(DAYS * 86400))
        log, status, figure = _history(rng, created, now)
        priority = rng.choice(("low", "normal", "normal", "normal", "high", "urgent"))
        assignee = None if rng.random() < 0.08 else agents[rng.randrange(AGENTS)]
        group = None if rng.random() < 0.2 else groups[rng.randrange(GROUPS)]
        updated = log[-1][3] if log else created
        tickets.append((tid, i + 1, f"工单 {i}", f"c{i % 30000}@bench.example.cn", status,
                        priority, "[]", assignee, group,
                        rng.choice(("web", "web", "email", "email", "api", "form")),
                        f"cust-{i % 20000}", "standard", created, updated))
        counts["open_now"] += status in OPEN
        entries.append((str(uuid.uuid4()), tid, 1, "created", True, "customer", None, None,
                        created))
        for seq, (kind, old, new, at) in enumerate(log, start=2):
            public = True if kind == "reply" else None
            author = "agent" if kind == "reply" else None
            entries.append((str(uuid.uuid4()), tid, seq, kind, public, author, old, new, at))
        reply_at = figure["reply_at"]
        first = int((reply_at - created).total_seconds()) if reply_at else \
            int((now - created).total_seconds())
        outcomes.append((tid, "first_reply", POLICY_ID, True,
                         "achieved" if reply_at else ("running" if status in OPEN
                                                      else "stopped"),
                         first > 3600, first, created + timedelta(hours=1), reply_at, now))
        solved_at = figure["solved_at"]
        end = solved_at or now
        took = max(0, int((end - created).total_seconds()) - figure["paused"])
        outcomes.append((tid, "resolution", POLICY_ID, True,
                         "achieved" if solved_at else (
                             "paused" if status in ("pending", "on_hold") else "running"),
                         took > 8 * 3600, took, created + timedelta(hours=8), solved_at, now))
    with psycopg.connect(url, autocommit=False) as conn:
        counts["tickets"] = copy_rows(conn, "tickets", [
            "id", "number", "subject", "requester_email", "status", "priority", "tags",
            "assignee_id", "group_id", "channel", "customer_id", "customer_tier",
            "created_at", "updated_at"], tickets)
        progress(f"{counts['tickets']} tickets ({time.perf_counter() - started:.0f}s)")
        counts["entries"] = copy_rows(conn, "ticket_entries", [
            "id", "ticket_id", "seq", "kind", "public", "author_kind", "from_value",
            "to_value", "at"], entries)
        progress(f"{counts['entries']} entries ({time.perf_counter() - started:.0f}s)")
        counts["outcomes"] = copy_rows(conn, "ticket_sla_outcomes", [
            "ticket_id", "target", "policy_id", "business", "state", "breached",
            "elapsed_seconds", "due_at", "achieved_at", "updated_at"], outcomes)
        conn.execute("UPDATE sla_sweeps SET cursor = NULL WHERE name = 'ticket_sla_outcomes'")
        conn.commit()
        conn.autocommit = True
        progress("VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    return {**counts, "seed_seconds": round(time.perf_counter() - started, 1),
            "agents": agents}


def timed(label: str, call: Any) -> dict[str, Any]:
    return _timed(label, call, RUNS, progress)


def run() -> dict[str, Any]:
    reuse = os.environ.get("BENCH_DESK_DATABASE")  # a kept database: no new seed
    database = reuse or f"crm_bench_desk_{secrets.token_hex(4)}"
    if not reuse:
        create_database(database)
    url = database_url(database)
    engine = None
    try:
        upgrade("service_desk", url)
        if reuse:
            seeded = {"reused": database, "agents": [f"agent-{i:02d}" for i in range(AGENTS)]}
        else:
            seeded = seed(url)
        agents = seeded.pop("agents")
        engine = make_engine(url)
        svc = SimpleNamespace(db=DatabaseAccess(sessionmaker(engine, expire_on_commit=False)))
        scopes = {"all": {"all": True},
                  "manager": {"owner_ids": agents[:10], "include_pool": True,
                              "user_id": "manager-1"},
                  "agent": {"owner_ids": agents[:1], "include_pool": True,
                            "user_id": agents[0]}}
        month: dict[str, Any] = {}  # the default: the 30 days up to today, by day
        year_weeks = {"date_from": (datetime.now(UTC) - timedelta(days=364)).date(),
                      "date_to": datetime.now(UTC).date(), "interval": "week"}
        page = {"cursor": None, "limit": 50}
        first_day = numbers._range(month)[0].isoformat()  # the report's first period
        reports = {
            "volume": lambda f, s: numbers.volume(svc, f, s),
            "backlog": lambda f, s: numbers.backlog(svc, f, s),
            "first_reply": lambda f, s: numbers.durations(svc, "first_reply", f, s),
            "resolution": lambda f, s: numbers.durations(svc, "resolution", f, s),
            "sla_attainment": lambda f, s: numbers.sla_attainment(svc, f, s),
            "reopen_rate": lambda f, s: numbers.reopen_rate(svc, f, s),
            "backlog_records_now": lambda f, s: numbers.drill_down(
                svc, "backlog", f, {}, s, page),
            "backlog_records_first_day": lambda f, s: numbers.drill_down(
                svc, "backlog", f, {"period": first_day}, s, page),
            "reopen_records": lambda f, s: numbers.drill_down(
                svc, "reopen", f, {"outcome": "reopened"}, s, page),
        }
        results: dict[str, Any] = {"seed": seeded, "load_average_before": os.getloadavg()}
        for name, report in reports.items():
            for scope_name, scope in scopes.items():
                results[f"{name}_30_days_{scope_name}"] = timed(
                    f"{name}, 30 days by day, {scope_name}",
                    lambda r=report, s=scope: r(month, s))
        for name in ("volume", "backlog"):
            results[f"{name}_year_by_week_all"] = timed(
                f"{name}, a year by week, all",
                lambda r=reports[name]: r(year_weeks, scopes["all"]))
        results["load_average_after"] = os.getloadavg()
        return results
    finally:
        if engine is not None:
            engine.dispose()
        if os.environ.get("BENCH_DESK_KEEP") != "1" and not reuse:
            drop_database(database)
        else:
            progress(f"kept database {database}")


if __name__ == "__main__":
    print(json.dumps(run(), ensure_ascii=False, indent=2))
