"""Helpers of the gateway tests: a recording RPC pool, a lead as the leads service answers
it, the demo organisation's credentials and the problem+json check. The fixtures that build
the app (`gateway_env`, `fake_rpc`, `make_app`, `app`, `client`, `org`) are in
tests/conftest.py, where pytest finds them for tests/service and tests/integration alike."""

from __future__ import annotations

from typing import Any


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
