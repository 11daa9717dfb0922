"""Sales numbers benchmark: the funnel and the forecast over a million opportunities on
PostgreSQL, and an import of 100,000 customers from a file. Prints JSON; timings are reported,
never asserted.

    python -m tests.bench_sales          # BENCH_SALES_OPPORTUNITIES=1000000 by default
    BENCH_SALES_OPPORTUNITIES=20000 BENCH_SALES_IMPORT_ROWS=2000 python -m tests.bench_sales

A fresh database is created on CRM_TEST_PG_URL's server (dropped at the end unless
BENCH_SALES_KEEP=1) and migrated; opportunities and their stage history are loaded with COPY
(roll-up triggers off), the roll-up is rebuilt and the stage-flow pre-aggregate folded in once
(both timed apart: in service, triggers keep the roll-up and each funnel request folds only
new moves), then funnel and forecast run several times (p50 / max), with no filter
and with an owner and period filter. The import goes through the service's import path
(header check, row validation, duplicate detection, batched inserts, progress).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import psycopg  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from services.sales.domain import accounts, credit_code  # noqa: E402
from services.sales.numbers.queries import (  # noqa: E402
    forecast,
    funnel,
    rollups,
    snapshots,
    stage_flow,
)
from services.sales.numbers.queries.base import today as local_today  # noqa: E402
from services.sales.numbers.usecases import importing  # noqa: E402
from shared.db import DatabaseAccess, make_engine  # noqa: E402
from shared.migrations import upgrade  # noqa: E402
from tests.bench_pg import (  # noqa: E402
    copy_rows,
    create_database,
    database_url,
    drop_database,
)

OPPORTUNITIES = int(os.environ.get("BENCH_SALES_OPPORTUNITIES", "1000000"))
IMPORT_ROWS = int(os.environ.get("BENCH_SALES_IMPORT_ROWS", "100000"))
CUSTOMERS = int(os.environ.get("BENCH_SALES_CUSTOMERS", "0"))  # 0: a tenth of the opportunities
RUNS = int(os.environ.get("BENCH_SALES_RUNS", "7"))
OWNERS = 60
TEAMS = 6
DAYS = 730
ALL = {"all": True}
NAME_CHARACTERS = "华中国东南西北新天海金宝恒泰安康瑞祥盛达鑫源丰鼎宏远博通信联合创智科云数汇"
INDUSTRY_WORDS = ("科技", "机械", "电子", "贸易", "医疗", "物流", "软件", "材料", "能源", "食品")


def progress(message: str) -> None:
    print(f"[bench-sales] {message}", file=sys.stderr, flush=True)


def company_name(rng: random.Random) -> str:
    picks = "".join(rng.choice(NAME_CHARACTERS) for _ in range(6))
    return f"{picks}{rng.choice(INDUSTRY_WORDS)}有限公司"


def random_credit_code(rng: random.Random) -> str:
    body = "91" + f"{rng.randrange(110000, 659999):06d}" + "".join(
        rng.choice(credit_code.ALPHABET[:10] + "ABCDEFGH") for _ in range(9))
    return body + credit_code.check_character(body)


def seed(url: str, n: int) -> dict[str, Any]:
    """Customers (n / 10), n opportunities over two years with their stage paths."""
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=False) as conn:
        # a bulk load: the roll-up triggers are off for it, and the roll-up is rebuilt after
        conn.execute("SET session_replication_role = replica")
        stages = conn.execute(
            "SELECT s.id, s.position, s.kind, s.probability, s.pipeline_id FROM stages s "
            "JOIN pipelines p ON p.id = s.pipeline_id WHERE p.is_default ORDER BY s.position"
        ).fetchall()
        open_stages = [s for s in stages if s[2] == "open"]
        won = next(s for s in stages if s[2] == "won")
        lost = next(s for s in stages if s[2] == "lost")
        pipeline_id = stages[0][4]
        owners = [f"user-{i:03d}" for i in range(OWNERS)]
        team_of = {owner: f"team-{i % TEAMS}" for i, owner in enumerate(owners)}
        customers = [str(uuid.uuid4()) for _ in range(CUSTOMERS or max(1, n // 10))]
        started = time.perf_counter()

        def customer_row(i: int, cid: str) -> tuple:
            name = company_name(rng)
            key = accounts.name_key(name)  # the import's duplicate check reads these
            return (cid, name, key, accounts.name_block(key), "customer", "[]",
                    owners[i % OWNERS], team_of[owners[i % OWNERS]], "{}",
                    now - timedelta(days=DAYS), now)

        copy_rows(conn, "customers", ["id", "name", "name_key", "name_block", "lifecycle_stage",
                                  "tags", "owner_id", "team_id", "custom", "created_at",
                                  "updated_at"],
                  (customer_row(i, cid) for i, cid in enumerate(customers)))
        progress(f"{len(customers)} customers in {time.perf_counter() - started:.1f}s")

        history: list[tuple] = []
        opportunities: list[tuple] = []
        loaded = 0

        def flush() -> None:
            nonlocal loaded
            copy_rows(conn, "opportunities", [
                "id", "customer_id", "pipeline_id", "stage_id", "name", "amount", "currency",
                "expected_close_date", "owner_id", "team_id", "products", "competitors",
                "source", "status", "won_lost_reason", "closed_at", "custom",
                "stage_entered_at", "created_at", "updated_at"], opportunities)
            copy_rows(conn, "stage_history", ["opportunity_id", "stage_id", "entered_at", "left_at",
                                          "moved_by"], history)
            loaded += len(opportunities)
            opportunities.clear()
            history.clear()
            progress(f"{loaded}/{n} opportunities ({time.perf_counter() - started:.0f}s)")

        sources = ("website", "trade_show", "referral", "cold_call", "wechat", "partner")
        reasons = ("预算取消", "选择竞品", "价格过高", "需求变化", None)
        for i in range(n):
            oid = str(uuid.uuid4())
            owner = owners[rng.randrange(OWNERS)]
            created = now - timedelta(days=rng.uniform(0, DAYS))
            depth = rng.choices(range(1, len(open_stages) + 1),
                                weights=[40, 25, 20, 15][:len(open_stages)])[0]
            path = list(open_stages[:depth])
            outcome = rng.random()
            if depth == len(open_stages) and outcome < 0.55:
                path.append(won)
            elif outcome < 0.45:
                path.append(lost)
            entered = created
            times = []
            for _ in path:
                times.append(entered)
                entered = entered + timedelta(days=rng.uniform(1, 30))
            final = path[-1]
            closed = times[-1] if final[2] != "open" else None
            if closed and closed > now:
                closed = now
            for index, stage in enumerate(path):
                left = times[index + 1] if index + 1 < len(path) else None
                history.append((oid, stage[0], min(times[index], now),
                                min(left, now) if left else None, owner))
            amount = rng.randrange(10_000, 1_000_000)
            close_date = (created + timedelta(days=rng.uniform(30, 240))).date()
            opportunities.append((
                oid, customers[rng.randrange(len(customers))], pipeline_id, final[0],
                f"项目{i}", amount, "CNY", close_date, owner, team_of[owner], "[]", "[]",
                rng.choice(sources), final[2],
                rng.choice(reasons) if final[2] == "lost" else ("成交" if final[2] == "won"
                                                                else None),
                closed, "{}", min(times[-1], now), created, now,
            ))
            if len(opportunities) >= 50_000:
                flush()
        if opportunities:
            flush()
        conn.commit()
        conn.autocommit = True
        progress("ANALYZE")
        conn.execute("ANALYZE")
        rows = conn.execute("SELECT count(*) FROM stage_history").fetchone()[0]
    return {"opportunities": n, "stage_history_rows": rows, "customers": len(customers),
            "seed_seconds": round(time.perf_counter() - started, 1), "owners": owners}


def timed(label: str, call) -> dict[str, Any]:
    durations = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    result = {"p50_ms": round(statistics.median(durations), 1),
              "max_ms": round(max(durations), 1), "runs": RUNS}
    progress(f"{label}: {result}")
    return result


def import_file(rows: int) -> bytes:
    rng = random.Random(7)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["名称", "统一社会信用代码", "客户等级", "电话", "行业", "地区", "标签"])
    for i in range(rows):
        writer.writerow([
            company_name(rng) + f"{i}", random_credit_code(rng) if i % 3 else "",
            rng.choice("ABC"), f"1{rng.choice(('38', '39', '86'))}{rng.randrange(10**8):08d}",
            rng.choice(INDUSTRY_WORDS), rng.choice(("华东", "华南", "华北")), "导入;2026",
        ])
    return ("\ufeff" + text.getvalue()).encode()


def run() -> dict[str, Any]:
    database = f"crm_bench_sales_{secrets.token_hex(4)}"
    create_database(database)
    url = database_url(database)
    engine = None
    try:
        os.environ["SALES_STAGE_FLOW_LAG_SECONDS"] = "0"
        upgrade("sales", url)
        seeded = seed(url, OPPORTUNITIES)
        owners = seeded.pop("owners")
        engine = make_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        started = time.perf_counter()
        with engine.begin() as connection:
            rollup_rows = rollups.rebuild(connection)
        rebuild_seconds = round(time.perf_counter() - started, 1)
        progress(f"roll-up rebuilt: {rollup_rows} rows in {rebuild_seconds}s")
        started = time.perf_counter()
        with factory() as session, session.begin():
            folded = stage_flow.fold_stage_flow(session)
        fold_seconds = round(time.perf_counter() - started, 1)
        progress(f"stage flow folded: {folded} history rows in {fold_seconds}s")
        today = local_today()
        year = {"date_from": today - timedelta(days=365), "date_to": today}
        team = {"owner_ids": owners[:OWNERS // TEAMS], **year}

        def figure(function, filters):
            def call():
                with factory() as session:
                    if function is funnel.funnel:
                        with session.begin():
                            stage_flow.fold_stage_flow(session)  # as the RPC does
                    function(session, filters, ALL)
            return call

        results: dict[str, Any] = {
            "seed": seeded, "rollup_rows": rollup_rows, "rollup_rebuild_seconds": rebuild_seconds,
            "stage_flow_fold_seconds": fold_seconds}
        results["funnel_all"] = timed("funnel, all", figure(funnel.funnel, {}))
        results["funnel_team_year"] = timed("funnel, one team, a year",
                                            figure(funnel.funnel, team))
        quarter = {"date_from": date(today.year, 1, 1), "date_to": date(today.year, 12, 31)}
        results["forecast_year"] = timed("forecast, this year by month",
                                         figure(forecast.forecast, quarter))
        results["forecast_team_quarter"] = timed(
            "forecast, one team, this quarter", figure(forecast.forecast,
                                                       {"owner_ids": team["owner_ids"]}))

        started = time.perf_counter()
        with factory() as session, session.begin():
            snapshot = snapshots.take_snapshot(session, datetime.now(UTC), "manual")
        results["snapshot"] = {"seconds": round(time.perf_counter() - started, 2),
                               "opportunities": snapshot["opportunities"]}
        progress(f"snapshot: {results['snapshot']}")
        results["forecast_accuracy"] = timed(
            "forecast accuracy, three quarters", figure(snapshots.forecast_accuracy, {}))

        content = import_file(IMPORT_ROWS)
        db = DatabaseAccess(factory)
        started = time.perf_counter()
        with factory() as session, session.begin():
            job = importing.start_job(session, "customer", "bench.csv", content,
                                      {"owner_id": "user-000", "scope": ALL}, "user-000")
            job_id = job.id
        last = [0.0]

        def report_progress() -> None:
            if time.perf_counter() - last[0] > 5:
                last[0] = time.perf_counter()
                with factory() as session:
                    job = session.get(importing.ImportJob, job_id)
                    progress(f"import: {job.processed_rows}/{job.total_rows} rows")

        summary = importing.Importer(db, job_id, between_batches=report_progress).run()
        seconds = time.perf_counter() - started
        results["import"] = {
            "rows": IMPORT_ROWS, "seconds": round(seconds, 1),
            "rows_per_second": round(IMPORT_ROWS / seconds), "created": summary["created"],
            "skipped": summary["skipped"], "failed": summary["failed"],
            "file_bytes": len(content),
        }
        progress(f"import: {results['import']}")
        return results
    finally:
        if engine is not None:
            engine.dispose()
        if os.environ.get("BENCH_SALES_KEEP") != "1":
            drop_database(database)
        else:
            progress(f"kept database {database}")


if __name__ == "__main__":
    print(json.dumps(run(), ensure_ascii=False, indent=2))
