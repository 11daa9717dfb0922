"""Bench: a 200-line quote rendered to PDF from the default print template (p50, p99).

Also a 2-page quote (40 lines), the issue's "well under a second" figure, and which font
subsetter WeasyPrint uses (HarfBuzz's libharfbuzz-subset, or the slow pure-Python fontTools).
And (contract approval) an approval decision to the next approver's notification: contracts
in a two-step flow, the first step approved over HTTP at a steady `BENCH_APPROVAL_RATE` (20)
decisions per second for `BENCH_SECONDS`, latency p50/p99 from the request's start to the
creation of the next approver's in-app notification (the shipped rule
approval-requested-notify; same machine, same clock), after a warm-up of
`BENCH_APPROVAL_WARM_UP_SECONDS` (2) at the same rate. `BENCH_APPROVAL=0` skips it.
`python -m tests.bench_contracts` or `BENCH_ONLY=contracts make bench`; prints JSON. Then the
numbers' collection and aging reports on PostgreSQL (tests/bench_contracts_numbers.py;
BENCH_CONTRACTS_NUMBERS=0 leaves them out).
"""

from __future__ import annotations

import http.client as http_client
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.contracts.printing import DEFAULT_TEMPLATE, render_pdf, sample_quote

COMPANY = {"name": "示例软件有限公司", "address": "上海市浦东新区世纪大道1号"}


def _figures(lines: int, rounds: int) -> dict[str, Any]:
    quote = sample_quote(lines)
    times = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        size = len(render_pdf(DEFAULT_TEMPLATE, quote, COMPANY))
        times.append(time.perf_counter() - started)
    times.sort()
    return {"lines": lines, "rounds": rounds, "pdf_bytes": size,
            "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1)}


def _pdf(rounds: int | None = None) -> dict[str, Any]:
    from weasyprint.pdf import fonts
    from weasyprint.text.ffi import harfbuzz

    rounds = rounds or int(os.environ.get("BENCH_PDF_ROUNDS", "20"))
    render_pdf(DEFAULT_TEMPLATE, sample_quote(3), COMPANY)  # warm: fontconfig, imports
    subsetter = ("harfbuzz" if fonts.harfbuzz_subset and harfbuzz.hb_version_atleast(4, 1, 0)
                 else "fonttools")
    results = {"font_subsetter": subsetter, "quote_2_pages": _figures(40, rounds),
               "quote_200_lines": _figures(200, rounds), "cores": os.cpu_count()}
    # -- numbers: collection and aging over 100,000 contracts / 1,000,000 receipts ----
    if os.environ.get("BENCH_CONTRACTS_NUMBERS", "1") != "0":
        from tests import bench_contracts_numbers

        results["numbers"] = bench_contracts_numbers.run()
    return results


# -- contract approval: decision -> next approver's notification ----

APPROVAL_RATE = float(os.environ.get("BENCH_APPROVAL_RATE", "20"))
APPROVAL_SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
APPROVAL_WARM_UP = float(os.environ.get("BENCH_APPROVAL_WARM_UP_SECONDS", "2"))


def progress(message: str) -> None:
    print(f"[bench-contracts] {message}", file=sys.stderr, flush=True)


def approval_notification_latency(system: Any) -> dict[str, Any]:
    """On a running system (sales, contracts, rules, gateway, the shipped rules installed)."""
    import requests
    from sqlalchemy import create_engine, text

    from tests.bench import Client
    from tests.bench_rules import summary

    http = requests.Session()
    http.trust_env = False

    def call(method: str, path: str, user: str, **kwargs: Any) -> Any:
        response = http.request(method, system.url + path, timeout=30, headers={
            "Authorization": f"Bearer {system.keys[user]}"}, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    title = f"压测合同{uuid.uuid4().hex[:8]}"
    users = system.users
    call("POST", "/approval-flows", "admin", json={
        "record_type": "contract", "name": title, "condition": f"title == '{title}'",
        "steps": [{"name": "一审", "mode": "any",
                   "approvers": [{"kind": "user", "id": users["lina"]}]},
                  {"name": "二审", "mode": "any",
                   "approvers": [{"kind": "user", "id": users["chenjing"]}]}]})
    customer = call("POST", "/customers", "zhangwei", json={"name": f"{title}客户有限公司"})
    warm, total = int(APPROVAL_WARM_UP * APPROVAL_RATE), int(APPROVAL_SECONDS * APPROVAL_RATE)
    progress(f"submitting {warm + total} contracts to a two-step flow")
    approvals: list[str] = []
    for _ in range(warm + total):
        contract = call("POST", "/contracts", "zhangwei", json={
            "title": title, "customer_id": customer["id"], "amount": "100000"})
        call("POST", f"/contracts/{contract['id']}/submit", "zhangwei")
        approvals.append(contract["id"])
    inbox: dict[str, str] = {}
    cursor = None
    while True:  # lina's inbox: the approvals of these contracts
        page = call("GET", "/approvals", "lina",
                    params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        inbox.update({a["record_id"]: a["id"] for a in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    ids = [inbox[contract_id] for contract_id in approvals]
    engine = create_engine(f"sqlite:///{system.data_dir}/rules.db")
    clients: queue.LifoQueue[Client] = queue.LifoQueue()
    next_approver = users["chenjing"]

    def offer(batch: list[str]) -> tuple[dict[str, float], dict[str, float], list[str], float]:
        started: dict[str, float] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def decide(approval_id: str) -> None:
            try:
                client = clients.get_nowait()
            except queue.Empty:
                client = Client(system.url, system.keys["lina"])
            t0 = time.time()
            try:
                status, body = client.post(f"/approvals/{approval_id}/approve", {})
            except (OSError, http_client.HTTPException) as exc:
                errors.append(repr(exc))
                return
            clients.put(client)
            if status != 200:
                errors.append(f"{status} {body[:200]!r}")
                return
            with lock:
                started[approval_id] = t0

        threads = []
        begin = time.monotonic()
        for n, approval_id in enumerate(batch):
            delay = begin + n / APPROVAL_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=decide, args=(approval_id,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=60)
        achieved = len(batch) / (time.monotonic() - begin)
        deadline = time.monotonic() + 60
        found: dict[str, float] = {}
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT record_id, min(created_at) FROM notifications "
                    "WHERE user_id = :user GROUP BY record_id"), {"user": next_approver}).all()
            found = {}  # the rules' approval records are `<approval id>:<step>:<n>`
            for record_id, created in rows:
                approval_id = str(record_id).split(":", 1)[0]
                if approval_id in started:
                    at = datetime.fromisoformat(str(created)).replace(tzinfo=UTC).timestamp()
                    found[approval_id] = min(at, found.get(approval_id, at))
            if len(found) >= len(started):
                break
            time.sleep(0.5)
        return started, found, errors, achieved

    progress(f"warming up: {warm} decisions at {APPROVAL_RATE:g}/s")
    offer(ids[:warm])
    progress(f"{total} decisions at {APPROVAL_RATE:g}/s")
    started, found, errors, achieved = offer(ids[warm:])
    engine.dispose()
    latencies = [(found[a] - t0) * 1000 for a, t0 in started.items() if a in found]
    return {"decisions": len(started), "offered_rate_per_s": APPROVAL_RATE,
            "achieved_rate_per_s": round(achieved, 1), "errors": len(errors),
            "first_errors": errors[:3], "notified": len(found),
            "decision_to_next_approver_notification": summary(latencies),
            "target_p99_ms": 250}


def approval_bench() -> dict[str, Any]:
    """Start sales, contracts, rules and the gateway on a private vhost and data directory."""
    from deploy import devctl
    from tests.e2e.system import System

    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    with tempfile.TemporaryDirectory(prefix="crm-bench-contracts-") as tmp, \
            devctl.temporary_vhost(base_uri, log=progress) as uri:
        progress("starting sales, contracts, rules and the gateway")
        system = System.start(uri, Path(tmp) / "system",
                              services=["sales", "contracts", "rules"],
                              extra_env={"CRM_LOG_LEVEL": "WARNING",
                                         "CRM_RATE_LIMIT": "100000"}, broker_proxy=False)
        try:
            return approval_notification_latency(system)
        finally:
            system.stop()


def run(rounds: int | None = None) -> dict[str, Any]:
    results = _pdf(rounds)
    if os.environ.get("BENCH_APPROVAL", "1") != "0":
        results["approval_notification"] = approval_bench()
    return results


def main() -> None:
    print(json.dumps(run(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
