"""The console's first-screen figures for `make bench` (tests/bench_console.py), run in a
child process by browser.run_scenario like the test scenarios. Timings are reported, never
asserted.

Each figure is the page's own clock (`performance.now()`, from the navigation's start), read
as soon as Playwright sees the screen there (its selector wait; one round trip of a few ms
after it; a polled JavaScript predicate is not possible under the console's CSP, which
forbids eval):
- `sign_in_cold`: a fresh browser profile (no HTTP cache) opens the gateway's URL; until the
  sign-in form is shown (the redirect to /console/ included);
- `lead_inbox_cold`: a fresh profile with a session token opens /console/leads; until the
  lead table shows its first row (the app's code and the first API answers over the network);
- `lead_inbox_warm`: the same tab reloaded (the cache holds the app's hashed files).
"""

from __future__ import annotations

import statistics
from typing import Any

from tests.e2e.console.browser import DESKTOP, Console

# the lead table rendered with the first answer: a row, or its "no data" text
LEAD_ROWS = ('[data-test="lead-table"] .el-table__body tr, '
             '[data-test="lead-table"] .el-table__empty-text')
SIGN_IN_FORM = 'input[type="password"]'


def _ready_ms(page: Any, selector: str) -> float:
    page.locator(selector).first.wait_for(state="visible", timeout=30_000)
    return float(page.evaluate("performance.now()"))


def _summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"runs": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(p95, 1), "max_ms": round(ordered[-1], 1)}


def _fresh_page(console: Console) -> tuple[Any, Any]:
    context = console.context_factory(DESKTOP)
    return context, (context.pages[0] if context.pages else context.new_page())


def bench_first_screen(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    rounds = int(params["rounds"])
    token = params["token"]
    sign_in, inbox_cold, inbox_warm = [], [], []
    for _ in range(rounds):
        context, page = _fresh_page(console)
        page.goto(console.url + "/")
        sign_in.append(_ready_ms(page, SIGN_IN_FORM))
        context.close()

        context, page = _fresh_page(console)
        # the token where the console keeps it after a sign-in (sessionStorage, per tab)
        page.add_init_script(f"sessionStorage.setItem('crm.console.token', {token!r})")
        page.goto(console.url + "/console/leads")
        inbox_cold.append(_ready_ms(page, LEAD_ROWS))
        for _ in range(3):
            page.reload()
            inbox_warm.append(_ready_ms(page, LEAD_ROWS))
        context.close()
    return {"sign_in_cold": _summary(sign_in), "lead_inbox_cold": _summary(inbox_cold),
            "lead_inbox_warm": _summary(inbox_warm)}


SCENARIOS_BENCH = {"bench_first_screen": bench_first_screen}
