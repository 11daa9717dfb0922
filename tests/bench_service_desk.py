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
"""

from __future__ import annotations

import json
import os
import smtplib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from deploy import devctl
from services.service_desk.models import MailMessageRow, TicketEntryRow, TicketRow
from tests.e2e.system import System, free_port

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


def run() -> dict[str, Any]:
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    results: dict[str, Any] = {"concurrency": CONCURRENCY, "seconds": SECONDS}
    with tempfile.TemporaryDirectory(prefix="crm-bench-mail-") as tmp:
        for database in DATABASES:
            results[database] = _run_on(database, base_uri, Path(tmp))
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))
