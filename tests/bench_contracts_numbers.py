"""Bench: the collection-by-month and overdue-aging reports over 100,000 contracts, their
instalments and 1,000,000 receipts on PostgreSQL (target: under 300 ms). Prints JSON (p50,
p99, max); timings are reported, never asserted.

    python -m tests.bench_contracts_numbers
    BENCH_CONTRACTS_CONTRACTS=10000 BENCH_CONTRACTS_RECEIPTS=100000 python -m ...

A fresh database is created on CRM_TEST_PG_URL's server (dropped at the end unless
BENCH_CONTRACTS_KEEP=1), migrated, bulk-loaded with COPY and analysed; then each report runs
BENCH_CONTRACTS_RUNS times through the service's use cases (the RPC's SQL) for everybody and
for one team of 10 of the 60 owners. BENCH_CONTRACTS_DATABASE=<kept database> reuses one.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from services.contracts.usecases import numbers  # noqa: E402
from shared.db import make_engine  # noqa: E402
from shared.migrations import upgrade  # noqa: E402
from tests.bench_pg import (  # noqa: E402
    copy_rows,
    create_database,
    database_url,
    drop_database,
)
from tests.bench_pg import timed as _timed

CONTRACTS = int(os.environ.get("BENCH_CONTRACTS_CONTRACTS", "100000"))
RECEIPTS = int(os.environ.get("BENCH_CONTRACTS_RECEIPTS", "1000000"))
RUNS = int(os.environ.get("BENCH_CONTRACTS_RUNS", "20"))
INSTALMENTS = 4  # per contract
OWNERS = 60
DAYS = 3 * 365


def progress(message: str) -> None:
    print(f"[bench-contracts-numbers] {message}", file=sys.stderr, flush=True)


def seed(url: str, as_of: date) -> dict[str, Any]:
    """CONTRACTS signed contracts over three years up to `as_of` (a few drafts), each with
    INSTALMENTS instalments (paid, partly paid or unpaid), and RECEIPTS receipts spread over
    the contracts."""
    rng = random.Random(20261203)
    now = datetime.now(UTC)
    owners = [f"user-{i:03d}" for i in range(OWNERS)]
    start = as_of - timedelta(days=DAYS)
    started = time.perf_counter()
    ids: list[str] = []
    with psycopg.connect(url, autocommit=False) as conn:
        def contracts():
            for i in range(CONTRACTS):
                cid = str(uuid.uuid4())
                ids.append(cid)
                status = "draft" if i % 50 == 0 else rng.choice(("active", "active", "expired"))
                yield (cid, f"HT-{2024 + i % 3}-{i:06d}", status, f"合同{i}",
                       f"cust-{i % 20000}", owners[i % OWNERS],
                       f"{rng.randrange(10_000, 500_000)}.00", "CNY", "[]", "[]", now, now)
        copy_rows(conn, "contracts", ["id", "number", "status", "title", "customer_id", "owner_id",
                                  "amount", "currency", "parties", "clauses",
                                  "created_at", "updated_at"], contracts())
        progress(f"{CONTRACTS} contracts ({time.perf_counter() - started:.0f}s)")

        def instalments():
            for cid in ids:
                first = start + timedelta(days=rng.randrange(DAYS))
                for seq in range(1, INSTALMENTS + 1):
                    due = first + timedelta(days=90 * (seq - 1))
                    amount = rng.randrange(2_000, 100_000)
                    if due < as_of:
                        paid = rng.choice((amount, amount, amount, amount // 2, 0))
                    else:
                        paid = 0
                    status = ("paid" if paid >= amount else "overdue" if due < as_of
                              else "partly_paid" if paid else "pending")
                    yield (str(uuid.uuid4()), cid, seq, due.isoformat(), f"{amount}.00",
                           f"{paid}.00", status)
        count = copy_rows(conn, "contract_instalments", ["id", "contract_id", "seq", "due_date",
                                                     "amount", "paid", "status"], instalments())
        progress(f"{count} instalments ({time.perf_counter() - started:.0f}s)")

        def receipts():
            for i in range(RECEIPTS):
                day = start + timedelta(days=rng.randrange(DAYS))
                if i and i % 200_000 == 0:
                    progress(f"{i}/{RECEIPTS} receipts ({time.perf_counter() - started:.0f}s)")
                yield (str(uuid.uuid4()), ids[rng.randrange(len(ids))],
                       f"{rng.randrange(100, 50_000)}.{rng.randrange(100):02d}",
                       day.isoformat(), "bank", "[]", now)
        copy_rows(conn, "contract_receipts", ["id", "contract_id", "amount", "received_on",
                                          "method", "allocations", "created_at"], receipts())
        conn.commit()
        conn.autocommit = True
        progress("ANALYZE")
        conn.execute("VACUUM ANALYZE")
    return {"contracts": CONTRACTS, "instalments": count, "receipts": RECEIPTS,
            "seed_seconds": round(time.perf_counter() - started, 1), "owners": owners}


def timed(label: str, call: Any) -> dict[str, Any]:
    return _timed(label, call, RUNS, progress)


def run() -> dict[str, Any]:
    reuse = os.environ.get("BENCH_CONTRACTS_DATABASE")  # a kept database: no new seed
    database = reuse or f"crm_bench_contracts_{secrets.token_hex(4)}"
    if not reuse:
        create_database(database)
    url = database_url(database)
    engine = None
    try:
        upgrade("contracts", url)
        as_of = date.today()
        if reuse:
            seeded = {"reused": database, "owners": [f"user-{i:03d}" for i in range(OWNERS)]}
        else:
            seeded = seed(url, as_of)
        owners = seeded.pop("owners")
        engine = make_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        year = {"date_from": as_of - timedelta(days=364), "date_to": as_of}
        everybody = {"all": True}
        team = {"owner_ids": owners[:10]}

        def report(function: Any, filters: dict[str, Any], scope: dict[str, Any]) -> Any:
            def call() -> Any:
                with factory() as session:
                    return function(session, filters, scope)
            return call

        results: dict[str, Any] = {"seed": seeded}

        def bare_count() -> None:
            # the floor on this machine at this moment: counting the year's receipt index
            # entries, no cast, no grouping (a ratio to it survives a busy machine)
            with factory() as session:
                session.execute(text(
                    "SELECT count(*) FROM contract_receipts WHERE received_on BETWEEN :a AND :b"
                ), {"a": year["date_from"].isoformat(), "b": year["date_to"].isoformat()})
        results["calibration_count_year_receipts"] = timed(
            "calibration: count of a year's receipts", bare_count)
        results["load_average"] = os.getloadavg()
        results["collection_year_all"] = timed(
            "collection by month, a year, all", report(numbers.collection, year, everybody))
        results["collection_year_team"] = timed(
            "collection by month, a year, one team", report(numbers.collection, year, team))
        results["aging_all"] = timed("aging, all", report(numbers.aging, {"as_of": as_of},
                                                          everybody))
        results["aging_team"] = timed("aging, one team", report(numbers.aging,
                                                                {"as_of": as_of}, team))
        results["collection_and_aging_all"] = timed(
            "collection + aging (one report page), all",
            lambda: (report(numbers.collection, year, everybody)(),
                     report(numbers.aging, {"as_of": as_of}, everybody)()))
        results["dso_quarter_all"] = timed(
            "DSO, a quarter, all", report(numbers.dso, {"date_from": as_of - timedelta(days=89),
                                                        "date_to": as_of}, everybody))
        return results
    finally:
        if engine is not None:
            engine.dispose()
        if os.environ.get("BENCH_CONTRACTS_KEEP") != "1" and not reuse:
            drop_database(database)
        else:
            progress(f"kept database {database}")


if __name__ == "__main__":
    print(json.dumps(run(), ensure_ascii=False, indent=2))
