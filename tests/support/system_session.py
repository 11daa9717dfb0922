"""The whole system as a session fixture body, shared by tests/e2e/conftest.py and
tests/security/conftest.py: each directory defines its own `system` fixture with it, so each
gets a system of its own (the security suites write records the e2e assertions do not expect),
started with the same environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy import devctl
from tests.e2e.system import System, free_port
from tests.support.smtp_server import SmtpServer

RULES_TICK_SECONDS = "0.2"


def print_uncaptured(config: pytest.Config, text: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text)


def run_system(request: pytest.FixtureRequest, amqp_uri: str,
               tmp_path_factory: pytest.TempPathFactory, mailbox: SmtpServer
               ) -> Iterator[System]:
    """Start every process, yield the running system, stop it and print what went wrong."""
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
        # The service desk's inbound SMTP listener (tests send mail to it with smtplib).
        "SERVICE_DESK_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
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
                print_uncaptured(request.config, "\n" + report)


def restore_system(request: pytest.FixtureRequest) -> None:
    """After a test: give back broker access and restart what the test stopped, and fail the
    test if a process died under it."""
    if "system" not in request.fixturenames:
        return
    running: System = request.getfixturevalue("system")
    died = running.died_report()
    running.ensure_running()
    if died:
        print_uncaptured(request.config, "\n" + died)
        pytest.fail(f"a process of the system died during {request.node.name}", pytrace=False)
