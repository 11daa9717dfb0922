"""Fixtures of the gateway tests: a migrated SQLite database in a temp data dir, a fake leads
RPC pool, the demo organisation and helpers. Import the fixtures you use from this module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.gateway.app import create_app
from services.gateway.seed import seed
from shared.migrations import upgrade


class FakeRpc:
    """Stands in for RpcPool: records calls and answers from `handlers[(service, method)]`.

    A handler is a callable taking the RPC kwargs, or an exception instance to raise, or a
    plain value to return.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.handlers: dict[tuple[str, str], Any] = {}
        self.broker_up = True

    def on(self, service: str, method: str, handler: Any) -> None:
        self.handlers[(service, method)] = handler

    def call(self, service: str, method: str, kwargs: Any, *, correlation_id: str,
             actor: str | None) -> Any:
        self.calls.append({"service": service, "method": method, "kwargs": dict(kwargs),
                           "correlation_id": correlation_id, "actor": actor})
        handler = self.handlers.get((service, method))
        if isinstance(handler, BaseException):
            raise handler
        if callable(handler):
            return handler(**kwargs)
        return handler

    def broker_ok(self) -> bool:
        return self.broker_up

    def close(self) -> None:
        return None

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1]


def lead(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": "lead-1", "name": "张伟", "company": "上海阿克米", "title": None,
        "email": "zw@acme.cn", "phone": "+8613800138000", "source": "website", "region": None,
        "industry": None, "product_interest": [], "campaign": None, "attributes": {},
        "status": "new", "disqualify_reason": None, "qualification": None, "score": 12,
        "owner_id": None, "in_pool": True, "merged_into_id": None,
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
        "last_activity_at": None,
    }
    body.update(overrides)
    return body


@pytest.fixture
def gateway_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    for name in ("CRM_SECRET_KEY", "GATEWAY_DATABASE_URL", "CRM_RATE_LIMIT", "CRM_RATE_BURST",
                 "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_GATEWAY_CLOSE_ON_EXIT", "0")
    upgrade("gateway")
    return tmp_path


@pytest.fixture
def fake_rpc() -> FakeRpc:
    return FakeRpc()


@pytest.fixture
def make_app(gateway_env: Any, fake_rpc: FakeRpc, amqp_uri: str
             ) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
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
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def org(app: Flask) -> dict[str, dict[str, Any]]:
    """The demo organisation: {username: {id, role, api_key}}."""
    return seed(app.extensions["crm_gateway"].store)


def auth(org: dict[str, dict[str, Any]], username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {org[username]['api_key']}"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.get_json(force=True)
    for member in ("type", "title", "status", "detail", "instance"):
        assert member in body, body
    assert body["status"] == status
    return body
