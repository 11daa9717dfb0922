"""The console's tests need its build and Chromium: `make test` provides both first
(`python -m services.gateway.console.build --browser`); this checks again (fast when fresh), so
a plain `pytest tests/e2e/console` works too."""

from __future__ import annotations

import pytest

from services.gateway.console import build


@pytest.fixture(scope="session")
def console_built() -> None:
    try:
        build.ensure_built(print)
    except build.ConsoleBuildError as exc:
        pytest.fail(f"the web console could not be built: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def chromium(console_built: None) -> str:
    try:
        return str(build.ensure_browser(print))
    except build.ConsoleBuildError as exc:
        pytest.fail(str(exc), pytrace=False)
