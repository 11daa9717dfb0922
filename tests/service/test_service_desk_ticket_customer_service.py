"""A ticket's `customer_id` is checked by the service desk itself (worker_factory over migrated
SQLite and PostgreSQL, a fake sales RPC proxy): sales is asked with the caller's scope (sales'
shape: all, or the owners), a customer hidden or missing is a 422 naming `customer_id` and
nothing is stored; a trusted call (no scope) asks with all; no customer_id asks nothing; sales
not answering is a 503 with nothing stored."""

from __future__ import annotations

from typing import Any

import eventlet
import pytest
from sqlalchemy import func, select

from services.service_desk.models import TicketRow
from shared import config as shared_config
from shared.errors import DependencyUnavailable, NotFound, ValidationFailed
from tests.service import desk

REP_A = {"owner_ids": ["rep-a"], "include_pool": True, "user_id": "rep-a"}

database_url = desk.database_url


class FakeSales:
    """What `rpc_proxy("sales")` gives a worker: `get_customer.call_async(...).result()`; the
    customers each owner sees, and every call recorded."""

    def __init__(self, customers: dict[str, str], hang: bool = False) -> None:
        self.customers = customers  # customer id -> owner id
        self.calls: list[dict[str, Any]] = []
        self.hang = hang
        self.get_customer = self

    def call_async(self, **kwargs: Any) -> FakeSales:
        self.calls.append(kwargs)
        self._last = kwargs
        return self

    def result(self) -> dict[str, Any]:
        if self.hang:
            eventlet.sleep(60)
        kwargs = self._last
        owner = self.customers.get(kwargs["customer_id"])
        scope = kwargs["scope"]
        if owner is None or not (scope.get("all") or owner in scope.get("owner_ids", ())):
            raise NotFound("customer not found")
        return {"id": kwargs["customer_id"], "owner_id": owner}


def _tickets(service) -> int:
    with service.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(TicketRow)).scalar_one()


def _new(service, scope, **fields):
    return service.create_ticket({"subject": "开票", "requester_email": "wang@example.cn",
                                  **fields}, scope)


def test_the_customer_is_checked_with_sales_in_the_callers_scope(database_url):
    sales = FakeSales({"c-own": "rep-a", "c-other": "rep-b"})
    service = desk.worker(database_url, actor="rep-a", sales=sales)
    ticket = _new(service, REP_A, customer_id="c-own")
    assert ticket["customer_id"] == "c-own"
    assert sales.calls == [{"customer_id": "c-own", "scope": {"owner_ids": ["rep-a"]},
                            "include_contacts": False}]
    for hidden in ("c-other", "c-missing"):
        with pytest.raises(ValidationFailed) as refused:
            _new(service, REP_A, customer_id=hidden)
        assert refused.value.extra["errors"] == {
            "customer_id": ["no such customer among those you see"]}
    assert _tickets(service) == 1  # nothing stored for a refused one

    # a trusted caller (no scope): the customer must exist
    trusted = _new(service, None, customer_id="c-other")
    assert trusted["customer_id"] == "c-other"
    assert sales.calls[-1]["scope"] == {"all": True}
    with pytest.raises(ValidationFailed):
        _new(service, None, customer_id="c-missing")

    # no customer_id: sales is not asked
    asked = len(sales.calls)
    assert _new(service, REP_A)["customer_id"] is None
    assert len(sales.calls) == asked


def test_sales_not_answering_is_a_503_and_stores_nothing(database_url, monkeypatch):
    monkeypatch.setattr(shared_config, "rpc_timeout", lambda: 0.2)
    service = desk.worker(database_url, actor="rep-a",
                          sales=FakeSales({"c-own": "rep-a"}, hang=True))
    with pytest.raises(DependencyUnavailable) as unavailable:
        _new(service, REP_A, customer_id="c-own")
    assert unavailable.value.extra["service"] == "sales"
    assert _tickets(service) == 0
