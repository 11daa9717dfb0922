"""The security suites run against the same kind of system as tests/e2e, started with the same
environment (tests/support/system_session.py), but one of their own for this directory: the
schemathesis run and the matrix write records that the e2e tests' assertions do not expect.
`mailbox` and `webhook_receiver` are tests/conftest.py's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer
from tests.support.system_session import restore_system, run_system


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
    yield
    restore_system(request)
