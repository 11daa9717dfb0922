"""Benchmarks of the service_desk service (figures printed as JSON, never asserted).

SLA warnings on time (`sla_warnings_on_time`): 100,000 open tickets (`BENCH_SLA_TICKETS`) under
a one-hour first-reply policy, bulk inserted into a PostgreSQL service_desk database with their
schedules, and their 100,000 pending `ticket-sla-check` timers in a PostgreSQL rules database
(the shipped rule; the notification rules are disabled: the figure is the warning's
publication). `BENCH_SLA_DUE` (1,500) of the tickets reach 75 % during the run, at
`BENCH_SLA_RATE` per second (20); the others later. One real rules process and one real
service_desk process over the broker: each instant fires the timer, the rule calls
`service_desk.check_sla`, which publishes `ticket_sla_warning` through its outbox. Lateness =
the warning's `published_at` (the outbox relay's publish) minus the 75 % instant.
Target: p99 lateness under 5 s.

    .venv/bin/python -m tests.bench_service_desk      # or BENCH_ONLY=service_desk make bench
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from deploy import devctl
from services.rules import seed
from shared.migrations import upgrade
from tests.e2e.system import ROOT, free_port

SLA_TICKETS = int(os.environ.get("BENCH_SLA_TICKETS", "100000"))
SLA_DUE = int(os.environ.get("BENCH_SLA_DUE", "1500"))
SLA_RATE = float(os.environ.get("BENCH_SLA_RATE", "20"))
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LEAD_SECONDS = 20.0  # between the start of the processes and the first instant


def progress(message: str) -> None:
    print(f"[bench-service-desk] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _database(prefix: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    name = f"crm_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                     (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _instants(start: datetime) -> list[datetime]:
    """Each ticket's 75 % instant: the first SLA_DUE at SLA_RATE from `start`, the rest spread
    over the following hours (pending, not due during the run)."""
    due = [start + timedelta(seconds=n / SLA_RATE) for n in range(SLA_DUE)]
    later = [start + timedelta(hours=1, seconds=n * 0.25) for n in range(SLA_TICKETS - SLA_DUE)]
    return due + later


def _load_desk(url: str, ids: list[str], instants: list[datetime]) -> None:
    import psycopg

    now = datetime.now(UTC)
    targets = {"first_reply": {"minutes": 60, "business": False, "pause_statuses": []},
               "resolution": {"minutes": 240, "business": False,
                              "pause_statuses": ["pending", "on_hold"]}}
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(
            "INSERT INTO sla_policies (id, name, position, calendar_id, priorities, "
            "customer_tiers, targets, warn_at, version, created_at, updated_at) VALUES "
            "('bench', 'bench 1h', 1, NULL, '[]', '[]', %s, '[0.75, 0.9]', 1, %s, %s)",
            (json.dumps(targets), now, now))
        conn.execute("UPDATE ticket_counters SET value = %s WHERE name = 'ticket'",
                     (len(ids),))
        with conn.cursor().copy(
            "COPY tickets (id, number, subject, requester_email, status, priority, tags, "
            "assignee_id, channel, created_at, updated_at) FROM STDIN") as copy:
            for n, (ticket_id, instant) in enumerate(zip(ids, instants, strict=True)):
                created = instant - timedelta(minutes=45)
                copy.write_row((ticket_id, n + 1, f"工单 {n}", "bench@example.cn", "new",
                                "urgent", "[]", "bench-agent", "api", created, created))
        progress("  tickets inserted")
        with conn.cursor().copy(
            "COPY ticket_entries (id, ticket_id, seq, kind, public, author_kind, to_value, at) "
            "FROM STDIN") as copy:
            for ticket_id, instant in zip(ids, instants, strict=True):
                copy.write_row((str(uuid.uuid4()), ticket_id, 1, "created", True, "customer",
                                "new", instant - timedelta(minutes=45)))
        progress("  entries inserted")
        with conn.cursor().copy(
            "COPY sla_schedules (ticket_id, sequence, policy_id, next_check_at, schedule, "
            "computed_at, updated_at) FROM STDIN") as copy:
            for ticket_id, instant in zip(ids, instants, strict=True):
                copy.write_row((ticket_id, 1, "bench", instant, "{}",
                                instant - timedelta(minutes=45), now))
        conn.commit()
        for table in ("tickets", "ticket_entries", "sla_schedules"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()


def _load_rules(url: str, ids: list[str], instants: list[datetime]) -> None:
    import psycopg

    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=False) as conn:
        with conn.cursor().copy(
            "COPY timers (id, kind, due_at, status, rule_id, rule_version, record_key, payload, "
            "cancel_keys, created_at) FROM STDIN") as copy:
            for ticket_id, instant in zip(ids, instants, strict=True):
                payload = {"event": {"causation_depth": 0}, "waited": True, "sequence": 1}
                copy.write_row((str(uuid.uuid4()), "date", instant, "pending",
                                "ticket-sla-check", 1, f"ticket:{ticket_id}",
                                json.dumps(payload), "[]", now))
        conn.commit()
        conn.execute("ANALYZE timers")
        conn.commit()


def _start(name: str, env: dict[str, str], base: Path) -> tuple[subprocess.Popen, str]:
    address = f"127.0.0.1:{free_port()}"
    log = open(base / f"{name}-bench.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [str(devctl.venv_bin() / "nameko"), "run", "--config", str(devctl.NAMEKO_CONFIG),
         devctl.service_target(name)], cwd=ROOT, env={**env, "WEB_SERVER_ADDRESS": address},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"http://{address}/health", timeout=2).status_code == 200:
                return process, address
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{name} did not start; see {base}")
        time.sleep(0.3)


def sla_warnings_on_time(amqp_uri: str, base: Path) -> dict[str, Any]:
    import psycopg

    desk_db, desk_url = _database("desk")
    rules_db, rules_url = _database("rules")
    processes: list[subprocess.Popen] = []
    try:
        ids = [str(uuid.uuid4()) for _ in range(SLA_TICKETS)]
        upgrade("service_desk", desk_url)
        seed.install(rules_url)
        with psycopg.connect(rules_url, autocommit=True) as conn:
            # The figure is the warning's publication: the notification rules stay out.
            conn.execute("UPDATE rules SET enabled = false WHERE key <> 'ticket-sla-check'")
        env = {**{k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")},
               "AMQP_URI": amqp_uri, "RULES_DATABASE_URL": rules_url,
               "SERVICE_DESK_DATABASE_URL": desk_url, "CRM_DATA_DIR": str(base),
               "CRM_LOG_LEVEL": "WARNING"}
        env.pop("CRM_CLOCK", None)
        progress("starting rules and service_desk")
        for name in ("rules", "service_desk"):
            process, _ = _start(name, env, base)
            processes.append(process)
        # The instants begin after the bulk load (estimated generously) and a lead.
        first = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS + SLA_TICKETS / 2500)
        instants = _instants(first)
        progress(f"inserting {SLA_TICKETS} open tickets and their timers")
        started = time.monotonic()
        _load_desk(desk_url, ids, instants)
        _load_rules(rules_url, ids, instants)
        load_seconds = time.monotonic() - started
        if datetime.now(UTC) > first:
            progress("warning: the first instants passed before the load was done")
        progress(f"{SLA_DUE} warnings due at {SLA_RATE:g}/s from {first.isoformat()}")
        last = instants[SLA_DUE - 1]
        with psycopg.connect(desk_url, autocommit=True) as conn:
            query = ("SELECT envelope, published_at FROM outbox WHERE event_type = "
                     "'ticket_sla_warning' AND published_at IS NOT NULL")
            deadline = time.monotonic() + (last - datetime.now(UTC)).total_seconds() + 120
            rows: list[Any] = []
            while time.monotonic() < deadline:
                rows = conn.execute(query).fetchall()
                if len(rows) >= SLA_DUE:
                    break
                time.sleep(1.0)
            pending = conn.execute("SELECT count(*) FROM tickets WHERE status = 'new'"
                                   ).fetchone()[0]
        due = dict(zip(ids[:SLA_DUE], instants[:SLA_DUE], strict=True))
        lateness = []
        early = 0
        for envelope, published_at in rows:
            data = json.loads(envelope)["data"]
            instant = due.get(data["ticket_id"])
            if instant is None or data["threshold"] != 0.75:
                early += 1  # a ticket not meant to be due: must not happen
                continue
            lateness.append((published_at - instant).total_seconds() * 1000)
        with psycopg.connect(rules_url, autocommit=True) as conn:
            live = conn.execute("SELECT count(*) FROM timers WHERE status = 'pending' AND "
                                "rule_id = 'ticket-sla-check'").fetchone()[0]
        return {
            "open_tickets": pending, "bulk_load_seconds": round(load_seconds, 1),
            "warnings_due": SLA_DUE, "due_per_second": SLA_RATE,
            "warnings_published": len(lateness), "unexpected_warnings": early,
            "lateness_ms": {"p50": round(percentile(lateness, 0.5), 1),
                            "p99": round(percentile(lateness, 0.99), 1),
                            "max": round(max(lateness), 1) if lateness else None},
            "pending_check_timers_after": live,
            "target": "p99 lateness < 5 s",
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        _drop(desk_db)
        _drop(rules_db)


def run() -> dict[str, Any]:
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    with tempfile.TemporaryDirectory(prefix="crm-bench-desk-") as tmp:
        base = Path(tmp)
        devctl.ensure_broker(base_uri, base / "broker", progress)
        with devctl.temporary_vhost(base_uri, log=progress) as uri:
            return {"sla_warnings_on_time": sla_warnings_on_time(uri, base)}


def main() -> None:
    print(json.dumps(run(), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
