"""Bench: the web console's first screen (issue: "the first screen interactive in under a
second on this machine with the demo data"). The whole system started on a private vhost and
data directory with the demo organisation (`make run`'s seed), the built console, Debian's
headless Chromium. The rep captures `BENCH_CONSOLE_LEADS` (40) leads over HTTP first; then
`BENCH_CONSOLE_ROUNDS` (10) fresh browser profiles, each: the sign-in page cold, the rep's
lead inbox cold (a session token, an empty HTTP cache), then three reloads of it (warm). The
figures' definitions are in tests/e2e/console/scenarios_bench.py. Prints JSON; timings are
reported, never asserted.

    BENCH_ONLY=console make bench      # or: python -m tests.bench_console
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from deploy import devctl
from services.gateway.console import build
from tests.bench import new_lead
from tests.e2e.console.browser import PASSWORD, run_scenario
from tests.e2e.system import System

ROUNDS = int(os.environ.get("BENCH_CONSOLE_ROUNDS", "10"))
REP = "zhangwei"  # a demo sales rep: the lead inbox is their first screen
LEADS = int(os.environ.get("BENCH_CONSOLE_LEADS", "40"))


def progress(message: str) -> None:
    print(f"[bench-console] {message}", file=sys.stderr, flush=True)


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    build.ensure_built(progress)
    build.ensure_browser(progress)
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    with tempfile.TemporaryDirectory(prefix="crm-bench-console-") as tmp, \
            devctl.temporary_vhost(base_uri, log=progress) as uri:
        progress("starting the whole system with the demo data")
        system = System.start(uri, Path(tmp) / "system",
                              extra_env={"CRM_LOG_LEVEL": "WARNING"}, broker_proxy=False)
        try:
            answer = system.post("/auth/tokens", json={"username": REP, "password": PASSWORD})
            assert answer.status_code == 201, (answer.status_code, answer.text[:300])
            for _ in range(LEADS):  # the demo seed has users and teams; the rep captures leads
                created = system.post("/leads", user=REP, json=new_lead())
                assert created.status_code in (201, 202), (created.status_code, created.text[:300])
            leads = system.get("/leads", user=REP, params={"limit": 20}).json()["items"]
            progress(f"{rounds} rounds in Chromium ({len(leads)} leads on the rep's first page)")
            figures = run_scenario("bench_first_screen", {
                "url": system.url, "rounds": rounds, "token": answer.json()["token"]},
                timeout=120 + 30 * rounds)
        finally:
            system.stop()
    return {"rep": REP, "leads_on_first_page": len(leads), **figures,
            "target_ms": 1000, "load_average": [round(v, 2) for v in os.getloadavg()]}


def main() -> None:
    print(json.dumps(run(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
