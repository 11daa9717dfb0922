"""The console in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Playwright's sync API cannot run in the test process: the root conftest monkey-patches eventlet,
under which Playwright's event loop hangs. Each scenario therefore runs in a child process,
`python -m tests.e2e.console.browser <scenario> '<json params>'`, and prints one
`RESULT <json>` line; `run_scenario` starts it and returns that result (or fails with its
output). The scenarios themselves are in `scenarios.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTEFACTS = ROOT / "var" / "test-artefacts" / "console"
RESULT_MARK = "RESULT "
PASSWORD = "demo-password"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def run_scenario(name: str, params: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run one scenario in a child process; its assertion errors fail the calling test."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    result = subprocess.run(
        [sys.executable, "-m", "tests.e2e.console.browser", name, json.dumps(params)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(RESULT_MARK) and result.returncode == 0:
            return json.loads(line[len(RESULT_MARK):])
    raise AssertionError(f"browser scenario {name!r} failed ({result.returncode}):\n"
                         f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")


class Console:
    """One Chromium; `sign_in(user)` gives a page in a fresh context signed in as that user."""

    def __init__(self, url: str, artefacts: Path) -> None:
        self.url = url.rstrip("/")
        self.artefacts = artefacts
        self.artefacts.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[Console]:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            # A fresh user-data-dir: nothing from an earlier run (tokens, caches) is reused.
            self.context_factory = lambda viewport: playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(dir=profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                headless=True, viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
            self.contexts: list[Any] = []
            try:
                yield self
            finally:
                for context in self.contexts:
                    with contextlib.suppress(Exception):
                        context.close()

    def sign_in(self, username: str, viewport: dict[str, int] | None = None) -> Any:
        from playwright.sync_api import expect

        context = self.context_factory(viewport or DESKTOP)
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.console_errors = errors  # uncaught script errors, checked by scenarios
        page.goto(self.url + "/")
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/console/leads")
        expect(page.locator('[data-test="who"]')).not_to_be_empty()
        return page

    def shot(self, page: Any, name: str) -> None:
        page.wait_for_timeout(300)  # let transitions end so the picture shows the final state
        page.screenshot(path=str(self.artefacts / f"{name}.png"), full_page=True)


def main(argv: list[str]) -> int:
    from tests.e2e.console import scenarios

    name, params = argv[0], json.loads(argv[1])
    console = Console(params["url"], Path(params.get("artefacts") or ARTEFACTS))
    with console.running():
        result = scenarios.SCENARIOS[name](console, params)
    print(RESULT_MARK + json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
