"""`system`: the whole CRM running for the session (see tests/e2e/system.py).

    def test_capture(system):
        response = system.post("/leads", key=system.keys["zhangwei"], json={...})
        with system.broker_unavailable():
            assert system.get("/leads", user="admin").status_code == 503

`mailbox` (session): the SMTP server every service sends to (tests/support/smtp_server.py). It is
not cleared between tests: filter by recipient or subject,
`mailbox.wait_for(lambda m: m["To"] == "zhangwei@demo.crm.local" and "线索" in m["Subject"])`.
`webhook_receiver` (per test): an HTTP endpoint recording what it is sent
(tests/support/webhook_receiver.py), on 127.0.0.1, which the system allows webhooks to reach
(CRM_WEBHOOK_ALLOW_HOSTS=127.0.0.1).

The services run with a controllable clock (CRM_CLOCK=controllable) and a rules tick of 0.2 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy import devctl
from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

RULES_TICK_SECONDS = "0.2"


def _print_uncaptured(config: pytest.Config, text: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text)


@pytest.fixture(scope="session")
def mailbox(smtp_server: SmtpServer) -> SmtpServer:
    return smtp_server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def system(
    request: pytest.FixtureRequest,
    amqp_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: SmtpServer,
) -> Iterator[System]:
    services = [s for s in os.environ.get("CRM_E2E_SERVICES", "").split(",") if s] or None
    extra_env = {
        "CRM_SMTP_HOST": mailbox.host,
        "CRM_SMTP_PORT": str(mailbox.port),
        "CRM_SMTP_SECURITY": "none",
        "CRM_SMTP_USER": "",  # no credentials from the developer's environment
        "CRM_CLOCK": "controllable",
        "CRM_RULES_TICK_SECONDS": RULES_TICK_SECONDS,
        # The webhook receiver listens on 127.0.0.1, which webhooks reach only when allowed;
        # by this host name only, so other spellings of loopback stay refused.
        "CRM_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    # A vhost of its own: the system lives for the whole session, and its services would
    # otherwise compete for the durable queues of later integration tests' containers.
    with devctl.temporary_vhost(amqp_uri, log=lambda _: None) as system_uri:
        running = System.start(
            system_uri, tmp_path_factory.mktemp("crm-system"), services=services,
            extra_env=extra_env,
        )
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
