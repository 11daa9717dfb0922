"""The sales service over the real broker: a refused stage move reaches an RPC caller (the
gateway, the rules) as PreconditionFailed with every missing item intact, and a conversion
publishes `lead_converted` once, with the caller's correlation id, however often it is asked
(sales reads the lead from the leads service, here a stand-in; without one the conversion is
DependencyUnavailable, nothing written).

Runs on SQLite and, where reachable, PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue
from nameko.standalone.rpc import ServiceRpcProxy

from services.sales.service import SalesService
from shared.errors import DependencyUnavailable, NotFound, PreconditionFailed
from shared.migrations import upgrade
from shared.rpc import rpc

pytestmark = pytest.mark.integration

LEAD = {
    "id": "lead-int-1", "name": "韩梅梅", "company": "常州星辰电气有限公司", "title": "工程部经理",
    "email": "han@xingchen.cn", "phone": None, "source": "referral", "region": "华东",
    "industry": "电气", "product_interest": ["SCADA"], "campaign": None, "attributes": {},
    "status": "qualified", "owner_id": "rep-a",
}


class LeadsStandIn:
    """The leads service's `get_lead` as the conversion asks it."""

    name = "leads"

    @rpc
    def get_lead(self, lead_id: str, scope: dict | None = None) -> dict:
        if lead_id != LEAD["id"] or LEAD["owner_id"] not in (scope or {}).get("owner_ids", []):
            raise NotFound(f"lead {lead_id} not found", {"field": "lead_id"})
        return LEAD


@pytest.fixture(params=["sqlite", "postgresql"])
def sales_db(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/sales.db"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    upgrade("sales", url)
    monkeypatch.setenv("SALES_DATABASE_URL", url)
    return url


def tap(amqp_uri: str) -> Queue:
    queue = Queue(f"tap-{uuid.uuid4().hex}", Exchange("sales.events", type="topic", durable=True),
                  routing_key="#", auto_delete=False, durable=False)
    with Connection(amqp_uri) as conn:
        queue.bind(conn.default_channel).declare()
    return queue


def drain(amqp_uri: str, queue: Queue, settle: float = 1.5) -> list[dict]:
    bodies: list[dict] = []
    with Connection(amqp_uri) as conn:
        simple = conn.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(block=True, timeout=settle)
            except simple.Empty:
                break
            bodies.append(message.payload)
            message.ack()
        simple.close()
    return bodies


def test_refusal_and_conversion_over_the_broker(container_factory, nameko_config, amqp_uri,
                                                sales_db):
    queue = tap(amqp_uri)
    container = container_factory(SalesService, nameko_config)
    container.start()
    container_factory(LeadsStandIn, nameko_config).start()
    context = {"correlation_id": "corr-int-1", "actor": "rep-a"}
    scope = {"owner_ids": ["rep-a"]}
    with ServiceRpcProxy("sales", nameko_config, context_data=context, timeout=20) as sales:
        with pytest.raises(NotFound) as hidden:
            sales.convert_lead(lead_id=LEAD["id"], options={}, scope={"owner_ids": ["rep-b"]})
        assert hidden.value.detail == f"lead {LEAD['id']} not found"
        first = sales.convert_lead(lead_id=LEAD["id"], options={}, scope=scope)
        again = sales.convert_lead(lead_id=LEAD["id"], options={}, scope=scope)
        assert again["replayed"] is True and again["opportunity_id"] == first["opportunity_id"]
        stages = [s["id"] for s in sales.get_pipeline()["stages"]]
        with pytest.raises(PreconditionFailed) as err:
            sales.move_opportunity(opportunity_id=first["opportunity_id"], stage_id=stages[2],
                                   scope=scope)
    missing = err.value.extra["missing"]
    assert {m.get("field") or m.get("tag") for m in missing} == {
        "amount", "expected_close_date", "needs_analysis"}
    assert all(isinstance(m["message"], str) and m["stage_id"] for m in missing)
    assert missing[-1]["found"] == 0 and missing[-1]["min_count"] == 1  # ints stay ints

    published = drain(amqp_uri, queue)
    types = [body["event_type"] for body in published]
    assert types.count("lead_converted") == 1
    assert sorted(types) == sorted(["customer_created", "contact_created", "opportunity_created",
                                    "lead_converted"])
    converted = next(body for body in published if body["event_type"] == "lead_converted")
    assert converted["correlation_id"] == "corr-int-1" and converted["actor"] == "rep-a"
    assert converted["producer"] == "sales"
    assert converted["data"]["lead_id"] == LEAD["id"]
    assert converted["data"]["customer_id"] == first["customer_id"]


def test_a_conversion_without_the_leads_service_is_unavailable(container_factory, nameko_config,
                                                               amqp_uri, sales_db):
    queue = tap(amqp_uri)
    with Connection(amqp_uri) as conn:  # a stand-in of an earlier test left its queue behind
        Queue("rpc-leads").bind(conn.default_channel).delete()
    container_factory(SalesService, nameko_config).start()
    with ServiceRpcProxy("sales", nameko_config, context_data={"actor": "rep-a"},
                         timeout=20) as sales:
        with pytest.raises(DependencyUnavailable) as err:
            sales.convert_lead(lead_id=LEAD["id"], options={}, scope={"owner_ids": ["rep-a"]})
        assert err.value.extra == {"service": "leads", "reason": "no running instance"}
        assert sales.list_customers(scope={"all": True})["items"] == []
    assert drain(amqp_uri, queue) == []
