"""`system`: the whole CRM running for the session (see tests/e2e/system.py).

    def test_capture(system):
        response = system.post("/leads", key=system.keys["zhangwei"], json={...})
        with system.broker_unavailable():
            assert system.get("/leads", user="admin").status_code == 503
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.system import System


def _print_uncaptured(config: pytest.Config, text: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text)


@pytest.fixture(scope="session")
def system(
    request: pytest.FixtureRequest, amqp_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    services = [s for s in os.environ.get("CRM_E2E_SERVICES", "").split(",") if s] or None
    running = System.start(amqp_uri, tmp_path_factory.mktemp("crm-system"), services=services)
    try:
        yield running
    finally:
        report = running.stop()
        if report:
            _print_uncaptured(request.config, "\n" + report)


@pytest.fixture(autouse=True)
def _restore_system(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, give back broker access and restart what the test stopped, and fail the
    test if a process died under it."""
    yield
    if "system" not in request.fixturenames:
        return
    running: System = request.getfixturevalue("system")
    died = running.died_report()
    running.ensure_running()
    if died:
        _print_uncaptured(request.config, "\n" + died)
        pytest.fail(f"a process of the system died during {request.node.name}", pytrace=False)
