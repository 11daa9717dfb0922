"""Benchmarks of the rules service (figures printed as JSON, never asserted).

1. Lead created through the gateway -> the owner's in-app notification ("新线索"), at a steady
   50 leads/s (`BENCH_RULES_RATE`) for `BENCH_SECONDS`: latency p50/p99 from the client's
   request start to the notification's creation (same machine, same clock). The shipped rule
   also emails the owner; `BENCH_RULES_EMAIL=0` measures it without the email. The first
   `BENCH_RULES_WARM_UP_SECONDS` (2) of leads at the same rate are a warm-up, not measured.
2. One million pending timers (`BENCH_RULES_TIMERS`) in PostgreSQL, bulk inserted, and
   `BENCH_RULES_PROCESSES` (2) real rules processes. Steady: timers come due at
   `BENCH_RULES_STEADY_RATE` per second (2,000) for `BENCH_RULES_STEADY_SECONDS` (20): their
   lateness (fired - due) p50/p99. Burst: `BENCH_RULES_DUE` (20,000) made due at once: how
   many fire per second (the capacity) and how late (the backlog). Each timer fires once.

    .venv/bin/python -m tests.bench_rules            # alone (starts what it needs)
    run(system)                                       # from tests/bench.py with a running System
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from deploy import devctl
from tests.e2e.system import ROOT, System, free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARM_UP_SECONDS = float(os.environ.get("BENCH_RULES_WARM_UP_SECONDS", "2"))
RATE = float(os.environ.get("BENCH_RULES_RATE", "50"))
TIMERS = int(os.environ.get("BENCH_RULES_TIMERS", "1000000"))
DUE = int(os.environ.get("BENCH_RULES_DUE", "20000"))
EMAIL = os.environ.get("BENCH_RULES_EMAIL", "1") != "0"
PROCESSES = int(os.environ.get("BENCH_RULES_PROCESSES", "2"))
STEADY_RATE = float(os.environ.get("BENCH_RULES_STEADY_RATE", "2000"))
STEADY_SECONDS = float(os.environ.get("BENCH_RULES_STEADY_SECONDS", "20"))
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def progress(message: str) -> None:
    print(f"[bench-rules] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {"count": len(values_ms), "p50_ms": round(percentile(values_ms, 0.50), 1),
            "p95_ms": round(percentile(values_ms, 0.95), 1),
            "p99_ms": round(percentile(values_ms, 0.99), 1),
            "max_ms": round(max(values_ms), 1) if values_ms else float("nan")}


def install_rules(data_dir: Path, env: dict[str, str] | None = None) -> None:
    env = {**(env or {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}),
           "CRM_DATA_DIR": str(data_dir)}
    subprocess.run([sys.executable, "-m", "services.rules.seed"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)


# --------------------------------------------------------------------------- 1. latency


def notification_latency(system: System, mailbox: Any = None) -> dict[str, Any]:
    """With `mailbox` (the SMTP server the system sends to), the CPU figures include sending
    the owners' emails: they are counted once every email has arrived."""
    from sqlalchemy import create_engine, text

    install_rules(system.data_dir)
    for name in ("zhangwei", "lina"):
        system.wait_for(lambda name=name: system.get(
            f"/assignment/members/{system.users[name]}", user="admin").status_code == 200,
            timeout=30)
    if not EMAIL:  # the shipped rule without its email: the in-app path alone
        rule = system.get("/rules/website-lead-call-now", user="admin").json()
        for action in rule["actions"]:
            if action["type"] == "notify":
                action["channels"] = ["in_app"]
        edited = system.put("/rules/website-lead-call-now", user="admin", json={
            key: rule[key] for key in ("name", "description", "trigger", "conditions",
                                       "actions")})
        assert edited.status_code == 200, edited.text
    from tests.bench import Client, cpu_seconds, new_lead, python_speed_ms

    clients: queue.LifoQueue[Client] = queue.LifoQueue()  # keep-alive connections, reused
    engine = create_engine(f"sqlite:///{system.data_dir}/rules.db")

    def offer(total: int) -> tuple[dict[str, float], dict[str, float], list[str], float]:
        """`total` website leads at RATE per second; when each was requested and when its
        owner's notification was created, the errors, and the rate achieved."""
        started: dict[str, float] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def create() -> None:
            try:
                client = clients.get_nowait()
            except queue.Empty:
                client = Client(system.url, system.keys["admin"])
            t0 = time.time()
            try:
                # the capture benchmark's leads: website, 华东, company names as varied as
                # real ones
                status, body = client.post("/leads", new_lead())
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                return
            clients.put(client)
            if status != 201:
                errors.append(f"{status} {body[:200]!r}")
                return
            with lock:
                started[json.loads(body)["id"]] = t0

        threads = []
        begin = time.monotonic()
        for n in range(total):
            delay = begin + n / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=create, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=60)
        achieved = total / (time.monotonic() - begin)

        deadline = time.monotonic() + 60
        found: dict[str, float] = {}
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT record_id, min(created_at) FROM notifications "
                    "WHERE title LIKE '新线索%' GROUP BY record_id")).all()
            found = {r[0]: datetime.fromisoformat(str(r[1])).replace(tzinfo=UTC).timestamp()
                     for r in rows if r[0] in started}
            if len(found) >= len(started):
                break
            time.sleep(0.5)
        return started, found, errors, achieved

    # Warm-up, not measured: a process's first requests compile statements and fill caches
    # (the capture benchmark warms up too).
    progress(f"warming up for {WARM_UP_SECONDS:g} s at {RATE:g} leads/s")
    warm_started, _, _, _ = offer(int(WARM_UP_SECONDS * RATE))
    if mailbox is not None and EMAIL:
        deadline = time.monotonic() + 60
        while len(mailbox.messages) < len(warm_started) and time.monotonic() < deadline:
            time.sleep(0.2)
        mailbox.clear()

    groups = {name: pid for name, pid in system.info.pids.items()}
    speed_before = python_speed_ms()
    cpu_before = cpu_seconds(groups)
    total = int(SECONDS * RATE)
    progress(f"creating {total} website leads at {RATE:g}/s through the gateway")
    started, found, errors, achieved = offer(total)
    engine.dispose()
    emails = None
    if mailbox is not None and EMAIL:
        deadline = time.monotonic() + 60
        while len(mailbox.messages) < len(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        emails = len(mailbox.messages)
    cpu_after = cpu_seconds(groups)
    cpu_ms = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(len(started), 1), 2)
              for name in cpu_after}
    latencies = [(found[lead_id] - t0) * 1000 for lead_id, t0 in started.items()
                 if lead_id in found]
    return {"leads": len(started), "offered_rate_per_s": RATE, "with_email": EMAIL,
            "achieved_rate_per_s": round(achieved, 1), "errors": len(errors),
            "first_errors": errors[:3], "notified": len(found),
            "creation_to_owner_notification": summary(latencies), "target_p99_ms": 250,
            "emails_received": emails, "cpu_ms_per_lead": cpu_ms,
            "python_loop_ms_before_after": [speed_before, python_speed_ms()]}


# --------------------------------------------------------------------------- 2. timers


def _pg_database() -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    name = f"crm_bench_rules_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                     (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _bulk_timers(url: str, count: int) -> None:
    """`count` pending timers of a cheap rule, due over the next 30 days, by COPY."""
    import psycopg

    from shared.migrations import upgrade

    upgrade("rules", url)
    now = datetime.now(UTC)
    definition = {"trigger": {"type": "delay", "events": ["bench.started"], "delay": "30d"},
                  "conditions": "", "actions": [
                      {"type": "notify", "to": ["user:bench-user"], "channels": ["in_app"],
                       "title": "定时提醒"}]}
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(
            "INSERT INTO rules (id, key, name, enabled, version, trigger_type, definition, "
            "created_at, updated_at) VALUES ('bench', 'bench', 'bench', true, 1, 'delay', "
            "%s, %s, %s)", (json.dumps(definition), now, now))
        conn.execute(
            "INSERT INTO rule_versions (rule_id, version, name, definition, created_at) "
            "VALUES ('bench', 1, 'bench', %s, %s)", (json.dumps(definition), now))
        with conn.cursor().copy(
            "COPY timers (id, kind, due_at, status, rule_id, rule_version, record_key, payload, "
            "cancel_keys, created_at) FROM STDIN"
        ) as copy:
            for n in range(count):
                due = now + timedelta(days=1, seconds=(n * 2591) % (29 * 86400))
                copy.write_row((str(uuid.uuid4()), "rule", due, "pending", "bench", 1,
                                f"lead:bench-{n}", "{}", "[]", now))
                if n and n % 200000 == 0:
                    progress(f"  {n} timers inserted")
        conn.commit()
        conn.execute("ANALYZE timers")
        conn.commit()


def _watch(conn: Any, where: str, params: tuple, count: int) -> dict[str, Any]:
    """Waits until the `count` timers matching `where` have fired: their lateness and the
    rate at which they fired."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        fired = conn.execute(f"SELECT count(*) FROM timers WHERE status = 'fired' AND {where}",
                             params).fetchone()[0]
        if fired >= count:
            break
        time.sleep(0.5)
    rows = conn.execute(
        "SELECT extract(epoch from fired_at - due_at) * 1000, extract(epoch from fired_at) "
        f"FROM timers WHERE status = 'fired' AND {where}", params).fetchall()
    moments = sorted(float(r[1]) for r in rows)
    span = (moments[-1] - moments[0]) if len(moments) > 1 else 0.0
    return {"fired": len(rows),
            "fired_per_second": round(len(rows) / span, 1) if span > 0 else None,
            "lateness": summary([float(r[0]) for r in rows])}


def _measured(watch: Callable[[], dict[str, Any]], groups: dict[str, int]) -> dict[str, Any]:
    """`watch()`'s figures and the CPU each process took per fired timer: the rules processes,
    RabbitMQ (their events) and PostgreSQL."""
    from tests.bench import cpu_seconds

    before = cpu_seconds(groups, ("rabbitmq", "postgresql"))
    figures = watch()
    after = cpu_seconds(groups, ("rabbitmq", "postgresql"))
    fired = max(figures["fired"], 1)
    return {**figures, "cpu_ms_per_timer": {
        name: round((after[name] - before[name]) * 1000 / fired, 3) for name in after}}


def timer_firing(amqp_uri: str, base: Path) -> dict[str, Any]:
    import psycopg

    name, url = _pg_database()
    processes: list[subprocess.Popen] = []
    try:
        progress(f"inserting {TIMERS} pending timers into PostgreSQL")
        started = time.monotonic()
        _bulk_timers(url, TIMERS)
        insert_seconds = time.monotonic() - started
        progress(f"starting {PROCESSES} rules process(es) on it")
        for index in range(PROCESSES):
            address = f"127.0.0.1:{free_port()}"
            env = {**{k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")},
                   "AMQP_URI": amqp_uri, "RULES_DATABASE_URL": url,
                   "WEB_SERVER_ADDRESS": address, "CRM_DATA_DIR": str(base),
                   "CRM_LOG_LEVEL": "WARNING"}
            env.pop("CRM_CLOCK", None)
            log = open(base / f"rules-bench-{index}.log", "ab")  # noqa: SIM115
            processes.append(subprocess.Popen(
                [str(devctl.venv_bin() / "nameko"), "run", "--config",
                 str(devctl.NAMEKO_CONFIG), devctl.service_target("rules")], cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
            deadline = time.monotonic() + 90
            while True:
                try:
                    if requests.get(f"http://{address}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or processes[-1].poll() is not None:
                    raise RuntimeError(f"a rules process did not start; see {base}")
                time.sleep(0.3)
        groups = {f"rules {index + 1}": process.pid for index, process in enumerate(processes)}
        with psycopg.connect(url, autocommit=True) as conn:
            steady_count = min(int(STEADY_RATE * STEADY_SECONDS), TIMERS // 2)
            progress(f"steady: {steady_count} timers coming due at {STEADY_RATE:g}/s")
            start = datetime.now(UTC) + timedelta(seconds=2)
            conn.execute(
                "WITH picked AS (SELECT id, row_number() OVER (ORDER BY due_at) AS n "
                "FROM timers WHERE status = 'pending' ORDER BY due_at LIMIT %s) "
                "UPDATE timers t SET due_at = %s + (picked.n - 1) * interval '1 second' / %s "
                "FROM picked WHERE t.id = picked.id", (steady_count, start, STEADY_RATE))
            steady = _measured(lambda: _watch(conn, "due_at >= %s", (start,), steady_count),
                               groups)
            batch = min(DUE, TIMERS - steady_count)
            progress(f"burst: {batch} timers made due at once")
            due_at = datetime.now(UTC) + timedelta(seconds=2)
            conn.execute(
                "UPDATE timers SET due_at = %s WHERE id IN (SELECT id FROM timers "
                "WHERE status = 'pending' ORDER BY due_at LIMIT %s)", (due_at, batch))
            burst = _measured(lambda: _watch(conn, "due_at = %s", (due_at,), batch), groups)
            pending = conn.execute("SELECT count(*) FROM timers WHERE status = 'pending'"
                                   ).fetchone()[0]
            runs, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT timer_id) FROM rule_runs").fetchone()
        return {"pending_timers": TIMERS, "bulk_insert_seconds": round(insert_seconds, 1),
                "rules_processes": PROCESSES, "still_pending": pending,
                "runs": runs, "timers_with_a_run": distinct,
                "steady": {"due_per_second": STEADY_RATE, **steady},
                "burst": {"made_due_at_once": batch, **burst},
                "target": "thousands/s, p99 lateness < 5 s"}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        _drop_database(name)


# --------------------------------------------------------------------------- entry points


def run(system: System | None = None) -> dict[str, Any]:
    """Both figures. With `system` (leads and rules running) the latency is measured on it;
    otherwise a system is started on a private vhost and data directory."""
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    with tempfile.TemporaryDirectory(prefix="crm-bench-rules-") as tmp:
        base = Path(tmp)
        if system is not None:
            latency = notification_latency(system)
            timers = timer_firing(system.amqp_uri, base)
            return {"rules_notification": latency, "rules_timers": timers}
        from tests.support.smtp_server import SmtpServer

        # A real SMTP server takes the owners' emails, as a relay would.
        with devctl.temporary_vhost(base_uri, log=progress) as uri, SmtpServer() as smtp:
            progress("starting leads, rules and the gateway")
            own = System.start(uri, base / "system", services=["leads", "rules"], extra_env={
                "CRM_SMTP_HOST": smtp.host, "CRM_SMTP_PORT": str(smtp.port),
                "CRM_SMTP_SECURITY": "none", "CRM_SMTP_USER": "", "CRM_LOG_LEVEL": "WARNING",
                "CRM_RATE_LIMIT": "100000"}, broker_proxy=False)
            try:
                latency = notification_latency(own, smtp)
            finally:
                own.stop()
            timers = timer_firing(uri, base)
    return {"rules_notification": latency, "rules_timers": timers}


def main() -> None:
    print(json.dumps(run(None), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
