"""The sales service over the real broker: a refused stage move reaches an RPC caller (the
gateway, the rules) as PreconditionFailed with every missing item intact, and a conversion
publishes `lead_converted` once, with the caller's correlation id, however often it is asked.

Runs on SQLite and, where reachable, PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue
from nameko.standalone.rpc import ServiceRpcProxy

from services.sales.service import SalesService
from shared.errors import PreconditionFailed
from shared.migrations import upgrade

pytestmark = pytest.mark.integration

LEAD = {
    "id": "lead-int-1", "name": "韩梅梅", "company": "常州星辰电气有限公司", "title": "工程部经理",
    "email": "han@xingchen.cn", "phone": None, "source": "referral", "region": "华东",
    "industry": "电气", "product_interest": ["SCADA"], "campaign": None, "attributes": {},
    "status": "qualified", "owner_id": "rep-a",
}


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
    context = {"correlation_id": "corr-int-1", "actor": "rep-a"}
    scope = {"owner_ids": ["rep-a"]}
    with ServiceRpcProxy("sales", nameko_config, context_data=context, timeout=20) as sales:
        first = sales.convert_lead(lead=LEAD, options={}, scope=scope)
        again = sales.convert_lead(lead=LEAD, options={}, scope=scope)
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
