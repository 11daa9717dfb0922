"""What the PostgreSQL benchmarks share (tests/bench_sales.py, bench_contracts_numbers.py,
bench_service_desk_numbers.py): the server (CRM_TEST_PG_URL), a scratch database's URL, bulk
loading with COPY, timing a report and dropping the database at the end."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def create_database(database: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(database: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (database,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))


def copy_rows(conn: psycopg.Connection, table: str, columns: list[str],
              rows: Iterable[Any]) -> int:
    """COPY `rows` (tuples in `columns`' order) into `table`; the number copied."""
    count = 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def timed(label: str, call: Callable[[], Any], runs: int,
          progress: Callable[[str], None]) -> dict[str, Any]:
    """`call` once to warm plans and caches, then `runs` times: p50, p99 and max in ms."""
    call()
    durations = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        durations.append((time.perf_counter() - began) * 1000)
    durations.sort()
    result = {"p50_ms": round(statistics.median(durations), 1),
              "p99_ms": round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 1),
              "max_ms": round(durations[-1], 1), "runs": runs}
    progress(f"{label}: {result}")
    return result
