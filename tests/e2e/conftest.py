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

from collections.abc import Iterator

import pytest

from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer
from tests.support.system_session import restore_system, run_system

# `mailbox` and `webhook_receiver` are tests/conftest.py's.


@pytest.fixture(scope="session")
def system(
    request: pytest.FixtureRequest,
    amqp_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: SmtpServer,
) -> Iterator[System]:
    yield from run_system(request, amqp_uri, tmp_path_factory, mailbox)


@pytest.fixture(autouse=True)
def _restore_system(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, give back broker access and restart what the test stopped, and fail the
    test if a process died under it."""
    yield
    restore_system(request)
