"""Root test fixtures: eventlet first, then an isolated RabbitMQ vhost and PostgreSQL databases.

Fixtures:
- `amqp_uri` (session): URI of a fresh vhost `crm-test-<random>` (deleted at the end), or of
  AMQP_URI's own vhost when rabbitmqctl cannot create one; also exported as AMQP_URI.
- `nameko_config` / `rabbit_config`: `shared.config.nameko_config(AMQP_URI=amqp_uri)`.
- `pg_url_factory`: call it to get the URL of a fresh PostgreSQL database (dropped after the
  test); the test is skipped when PostgreSQL is unreachable.
- `smtp_server` (session): one real SMTP server; `mailbox` is the same for the e2e and security
  systems. `webhook_receiver`: an HTTP endpoint recording the requests it gets.
- the gateway app: `gateway_env`, `fake_rpc` (tests.support.gateway.FakeRpc), `make_app`,
  `app`, `client`, `org` (the demo organisation).
"""

import warnings

with warnings.catch_warnings():
    # by message, not class: the class is eventlet's own
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

eventlet.monkey_patch()  # before anything imports socket/threading (see STACK-NOTES.md)

import os  # noqa: E402
import secrets  # noqa: E402
import urllib.parse  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

# psycopg 3 only yields to eventlet with this, and it must be set before psycopg is imported.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

from deploy import devctl  # noqa: E402
from tests.support.smtp_server import SmtpServer  # noqa: E402
from tests.support.webhook_receiver import WebhookReceiver  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

    from tests.support.gateway import FakeRpc

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by place and fixture, so `-m "not e2e"` / `-m "not postgres"` select without effort."""
    for item in items:
        path = Path(str(item.path)).resolve()
        parts = path.relative_to(ROOT).parts if path.is_relative_to(ROOT) else ()
        if parts[:2] == ("tests", "e2e"):
            item.add_marker(pytest.mark.e2e)
        elif parts[:2] == ("tests", "integration"):
            item.add_marker(pytest.mark.integration)
        if "pg_url_factory" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


# --------------------------------------------------------------------------- RabbitMQ


@pytest.fixture(scope="session")
def amqp_uri() -> Iterator[str]:
    base = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    problem = devctl.broker_problem(base)
    if problem:
        message = f"{problem}; run `make test` or `.venv/bin/python deploy/devctl.py ensure-broker`"
        if os.environ.get("CRM_REQUIRE_BROKER"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    with devctl.temporary_vhost(base, log=print) as uri:
        yield from _exported(uri)


def _exported(uri: str) -> Iterator[str]:
    """Subprocesses (the e2e system) inherit the test vhost through AMQP_URI."""
    previous = os.environ.get("AMQP_URI")
    os.environ["AMQP_URI"] = uri
    try:
        yield uri
    finally:
        if previous is None:
            os.environ.pop("AMQP_URI", None)
        else:
            os.environ["AMQP_URI"] = previous


@pytest.fixture
def nameko_config(amqp_uri: str) -> dict:
    from shared.config import nameko_config as make_config

    return make_config(AMQP_URI=amqp_uri)


@pytest.fixture
def rabbit_config(nameko_config: dict) -> dict:
    """Replaces nameko's fixture, which needs the management plugin this broker may not have."""
    return nameko_config


# --------------------------------------------------------------------------- PostgreSQL


def _pg_url(admin_url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL with the right to create databases; skips the test when PostgreSQL is unreachable."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(exc).strip()}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url_factory(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """`pg_url_factory()` -> `postgresql://postgres@127.0.0.1:5432/crm_test_<random>`."""
    import psycopg
    from psycopg import sql

    created: list[str] = []

    def make() -> str:
        name = f"crm_test_{secrets.token_hex(6)}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _pg_url(pg_admin_url, name)

    yield make

    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- SMTP


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """One real SMTP server for the whole session. Under eventlet every asyncio loop runs in
    the same OS thread, and a second loop cannot run while the first one is, so tests share
    this one (filter messages by recipient or subject; `refuse` / `defer` are mutable sets)."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def mailbox(smtp_server: SmtpServer) -> SmtpServer:
    """The SMTP server every service of the e2e and security systems sends to."""
    return smtp_server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An HTTP endpoint on 127.0.0.1 recording what it is sent (tests/support)."""
    with WebhookReceiver() as receiver:
        yield receiver


# --------------------------------------------------------------------------- the gateway app
# For the gateway tests of tests/service and tests/integration; the helpers they use
# (FakeRpc, auth, assert_problem, lead) are in tests/support/gateway.py. The gateway is
# imported when a test asks for these, not by every test session.


@pytest.fixture
def gateway_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated gateway database in a temp data dir, without the developer's settings."""
    from shared.migrations import upgrade

    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    for name in ("CRM_SECRET_KEY", "GATEWAY_DATABASE_URL", "CRM_RATE_LIMIT", "CRM_RATE_BURST",
                 "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_GATEWAY_CLOSE_ON_EXIT", "0")
    upgrade("gateway")
    return tmp_path


@pytest.fixture
def fake_rpc() -> "FakeRpc":
    from tests.support.gateway import FakeRpc

    return FakeRpc()


@pytest.fixture
def make_app(gateway_env: Path, fake_rpc: "FakeRpc", amqp_uri: str
             ) -> Iterator[Callable[..., "Flask"]]:
    """`make_app(**settings)`: a gateway app on the fake RPC pool (unless `rpc_pool` is given),
    its directory events going to the test vhost; closed after the test."""
    from services.gateway.app import create_app

    apps: list = []

    def make(**settings: object) -> "Flask":
        settings.setdefault("rpc_pool", fake_rpc)
        settings.setdefault("amqp_uri", amqp_uri)  # directory events go to the test vhost
        settings.setdefault("sweep_directory", False)
        app = create_app(settings=settings)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["crm_gateway"].directory.close()
        app.extensions["crm_gateway"].store.dispose()


@pytest.fixture
def app(make_app: Callable[..., "Flask"]) -> "Flask":
    return make_app()


@pytest.fixture
def client(app: "Flask") -> "FlaskClient":
    return app.test_client()


@pytest.fixture
def org(app: "Flask") -> dict[str, dict[str, object]]:
    """The demo organisation: {username: {id, role, api_key}}."""
    from services.gateway.seed import seed

    return seed(app.extensions["crm_gateway"].store)
