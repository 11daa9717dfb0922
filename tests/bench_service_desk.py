"""E-mail intake benchmark: messages per second through the service desk's SMTP listener into
committed tickets (each counted at its 250, which comes after the commit), with the service
desk running as its own process (and the gateway, which the system needs to start), on SQLite
and PostgreSQL. Prints JSON; timings are reported, never asserted.

    BENCH_ONLY=service_desk make bench       # or: python -m tests.bench_service_desk

Scenarios, each for BENCH_MAIL_SECONDS (10) at BENCH_MAIL_CONCURRENCY (4) SMTP clients, each
client on one SMTP session sending one mail after another:
- `new_text`: a new ticket per mail (a Chinese subject and body, distinct senders);
- `new_attachment`: the same with a 100 KB PDF attachment kept in the database;
- `threaded_reply`: a customer's answer (In-Reply-To an earlier mail) onto an existing ticket.
At the end the tickets and entries in the database are counted against the 250s.

And SLA warnings on time with 100,000 open tickets (`sla_warnings_on_time`, below;
`BENCH_SLA=0` leaves it out).
"""

from __future__ import annotations

import json
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, func, select, text

from deploy import devctl
from services.rules import seed
from services.service_desk.models import MailMessageRow, TicketEntryRow, TicketRow
from shared.migrations import upgrade
from tests.e2e.system import ROOT, System, free_port

SECONDS = float(os.environ.get("BENCH_MAIL_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_MAIL_CONCURRENCY", "4"))
DATABASES = [d for d in os.environ.get("BENCH_MAIL_DATABASES", "sqlite,postgresql").split(",")
             if d]
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ATTACHMENT = b"%PDF-1.4\n" + os.urandom(100 * 1024)


def progress(message: str) -> None:
    print(f"[bench-mail] {message}", file=sys.stderr, flush=True)


def _mail(kind: str, n: str, parent: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"客户{n} <c{n}@bench.example.cn>"
    msg["To"] = "support@desk.example.cn"
    msg["Subject"] = f"打印机不出纸 {n}" if parent is None else f"Re: 打印机不出纸 {n}"
    msg["Message-ID"] = f"<{n}.{kind}@bench.example.cn>"
    if parent is not None:
        msg["In-Reply-To"] = msg["References"] = parent
    msg.set_content("您好，我们的打印机从昨天开始不出纸，请尽快安排工程师上门。谢谢！\n" * 5)
    if kind == "new_attachment":
        msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf",
                           filename="故障照片.pdf")
    return msg


def _load(host: str, port: int, kind: str, parents: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS
    counter = iter(range(10**9))

    def client() -> None:
        with smtplib.SMTP(host, port, timeout=60) as smtp:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(counter)
                n = f"{kind}-{i}-{uuid.uuid4().hex[:6]}"
                parent = parents[i % len(parents)] if kind == "threaded_reply" else None
                started = time.perf_counter()
                try:
                    smtp.send_message(_mail(kind, n, parent))
                except smtplib.SMTPException as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "messages": len(latencies), "failures": len(failures),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if len(latencies) >= 100 else None,
        "first_failures": failures[:3],
    }


def _run_on(database: str, base_uri: str, base_dir: Path) -> dict[str, Any]:
    urls: dict[str, str] = {}
    pg_name = None
    if database == "postgresql":
        import psycopg

        pg_name = f"crm_bench_mail_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        urls["service_desk"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name
    listen_port = free_port()
    results: dict[str, Any] = {}
    try:
        with devctl.temporary_vhost(base_uri, log=progress) as uri:
            progress(f"starting service_desk and the gateway on {database}")
            system = System.start(uri, base_dir / database, services=["service_desk"],
                                  database_urls=urls, broker_proxy=False, extra_env={
                                      "SERVICE_DESK_SMTP_LISTEN": f"127.0.0.1:{listen_port}",
                                      "SERVICE_DESK_MAIL_SENDER_LIMIT": "1000000",
                                      "CRM_LOG_LEVEL": "WARNING"})
            try:
                # the tickets the threaded replies answer
                parents = []
                with smtplib.SMTP("127.0.0.1", listen_port, timeout=60) as smtp:
                    for i in range(20):
                        msg = _mail("parent", f"parent-{i}", None)
                        smtp.send_message(msg)
                        parents.append(msg["Message-ID"])
                for kind in ("new_text", "new_attachment", "threaded_reply"):
                    progress(f"{database}: {kind} for {SECONDS:g} s at {CONCURRENCY} clients")
                    results[kind] = _load("127.0.0.1", listen_port, kind, parents)
                    progress(f"{database}: {kind}: {results[kind]['per_second']} messages/s")
                engine = create_engine(urls.get("service_desk", "").replace(
                    "postgresql://", "postgresql+psycopg://")
                    or f"sqlite:///{system.data_dir / 'service_desk.db'}")
                with engine.connect() as conn:
                    stored = {
                        "tickets": conn.execute(select(func.count()).select_from(TicketRow))
                        .scalar_one(),
                        "entries": conn.execute(select(func.count()).select_from(TicketEntryRow))
                        .scalar_one(),
                        "mails": conn.execute(select(func.count()).select_from(MailMessageRow))
                        .scalar_one(),
                    }
                    conn.execute(text("SELECT 1"))
                engine.dispose()
                accepted = 20 + sum(results[k]["messages"] for k in results)
                results["check"] = {**stored, "accepted": accepted,
                                    "every_250_stored": stored["mails"] == accepted}
            finally:
                system.stop()
    finally:
        if pg_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    return results


# --------------------------------------------------------------------------- SLA warnings on time
# (issue 17, part s-sla-rules)

# SLA warnings on time (`sla_warnings_on_time`): 100,000 open tickets (`BENCH_SLA_TICKETS`) under
# a one-hour first-reply policy, bulk inserted into a PostgreSQL service_desk database with their
# schedules, and their 100,000 pending `ticket-sla-check` timers in a PostgreSQL rules database
# (the shipped rule; the notification rules are disabled: the figure is the warning's
# publication). `BENCH_SLA_DUE` (1,500) of the tickets reach 75 % during the run, at
# `BENCH_SLA_RATE` per second (20); the others later. One real rules process and one real
# service_desk process over the broker: each instant fires the timer, the rule calls
# `service_desk.check_sla`, which publishes `ticket_sla_warning` through its outbox. Lateness =
# the warning's `published_at` (the outbox relay's publish) minus the 75 % instant.
# Target: p99 lateness under 5 s.
#
#     BENCH_MAIL_DATABASES= .venv/bin/python -m tests.bench_service_desk   # this one alone

SLA_TICKETS = int(os.environ.get("BENCH_SLA_TICKETS", "100000"))
SLA_DUE = int(os.environ.get("BENCH_SLA_DUE", "1500"))
SLA_RATE = float(os.environ.get("BENCH_SLA_RATE", "20"))
SLA_BENCH = os.environ.get("BENCH_SLA", "1") != "0"
LEAD_SECONDS = 20.0  # between the start of the processes and the first instant


def _sla_progress(message: str) -> None:
    print(f"[bench-sla] {message}", file=sys.stderr, flush=True)


def _sla_percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _sla_database(prefix: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    name = f"crm_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _sla_drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                     (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _sla_instants(start: datetime) -> list[datetime]:
    """Each ticket's 75 % instant: the first SLA_DUE at SLA_RATE from `start`, the rest spread
    over the following hours (pending, not due during the run)."""
    due = [start + timedelta(seconds=n / SLA_RATE) for n in range(SLA_DUE)]
    later = [start + timedelta(hours=1, seconds=n * 0.25) for n in range(SLA_TICKETS - SLA_DUE)]
    return due + later


def _sla_load_desk(url: str, ids: list[str], instants: list[datetime]) -> None:
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
        _sla_progress("  tickets inserted")
        with conn.cursor().copy(
            "COPY ticket_entries (id, ticket_id, seq, kind, public, author_kind, to_value, at) "
            "FROM STDIN") as copy:
            for ticket_id, instant in zip(ids, instants, strict=True):
                copy.write_row((str(uuid.uuid4()), ticket_id, 1, "created", True, "customer",
                                "new", instant - timedelta(minutes=45)))
        _sla_progress("  entries inserted")
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


def _sla_load_rules(url: str, ids: list[str], instants: list[datetime]) -> None:
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


def _sla_start(name: str, env: dict[str, str], base: Path) -> tuple[subprocess.Popen, str]:
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

    desk_db, desk_url = _sla_database("desk")
    rules_db, rules_url = _sla_database("rules")
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
        _sla_progress("starting rules and service_desk")
        for name in ("rules", "service_desk"):
            process, _ = _sla_start(name, env, base)
            processes.append(process)
        # The instants begin after the bulk load (estimated generously) and a lead.
        first = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS + SLA_TICKETS / 2500)
        instants = _sla_instants(first)
        _sla_progress(f"inserting {SLA_TICKETS} open tickets and their timers")
        started = time.monotonic()
        _sla_load_desk(desk_url, ids, instants)
        _sla_load_rules(rules_url, ids, instants)
        load_seconds = time.monotonic() - started
        if datetime.now(UTC) > first:
            _sla_progress("warning: the first instants passed before the load was done")
        _sla_progress(f"{SLA_DUE} warnings due at {SLA_RATE:g}/s from {first.isoformat()}")
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
            "lateness_ms": {"p50": round(_sla_percentile(lateness, 0.5), 1),
                            "p99": round(_sla_percentile(lateness, 0.99), 1),
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
        _sla_drop(desk_db)
        _sla_drop(rules_db)



def run() -> dict[str, Any]:
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    results: dict[str, Any] = {"concurrency": CONCURRENCY, "seconds": SECONDS}
    with tempfile.TemporaryDirectory(prefix="crm-bench-mail-") as tmp:
        for database in DATABASES:
            results[database] = _run_on(database, base_uri, Path(tmp))
    if SLA_BENCH:
        results["sla_warnings_on_time"] = sla_run()
    return results


def sla_run() -> dict[str, Any]:
    """The SLA warnings alone: `python -c 'import tests.bench_service_desk as b; b.sla_run()'`
    or `BENCH_MAIL_DATABASES= python -m tests.bench_service_desk`."""
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    with tempfile.TemporaryDirectory(prefix="crm-bench-desk-") as tmp:
        base = Path(tmp)
        devctl.ensure_broker(base_uri, base / "broker", _sla_progress)
        with devctl.temporary_vhost(base_uri, log=_sla_progress) as uri:
            return sla_warnings_on_time(uri, base)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))
