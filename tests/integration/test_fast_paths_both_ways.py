"""The fast paths and the libraries' own paths (`CRM_FAST_PATHS`, shared/fastpaths.py) over the
real broker: what the relay publishes and what an RPC caller gets back are the same both ways."""

from __future__ import annotations

import json
import uuid

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from marshmallow import Schema, fields
from nameko.exceptions import IncorrectSignature
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import MetaData, select

from shared import fastpaths
from shared.context import CallContext
from shared.db import Database, get_engine
from shared.errors import NotFound, ValidationFailed
from shared.outbox import BatchPublisher, EventOutbox, outbox_table
from shared.rpc import ReplyingRpcConsumer, rpc

pytestmark = pytest.mark.integration

both_metadata = MetaData()
both_outbox = outbox_table(both_metadata)


class Noted(Schema):
    n = fields.Integer(required=True)
    label = fields.String(required=True)


class BothWaysService:
    name = "bothways"
    db = Database("bothways")
    events = EventOutbox("bothways", both_outbox, {"thing_noted": Noted})
    context = CallContext()

    @rpc
    def note(self, n: int, label: str = "x") -> dict:
        with self.db.begin() as session:
            envelope = self.events.record(session, "thing_noted", {"n": n, "label": label})
        return {"event_id": envelope["event_id"], "correlation_id": self.context.correlation_id}

    @rpc
    def missing(self) -> None:
        raise NotFound("no such thing", {"id": "x"})

    @rpc
    def unserialisable(self) -> object:
        return {"when": object()}


@pytest.fixture(params=["all", "none"], ids=["fast_paths", "library_paths"])
def fast_paths_setting(request, monkeypatch) -> str:
    monkeypatch.setenv(fastpaths.SETTING, request.param)
    return request.param


@pytest.fixture
def both_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/bothways.db"
    monkeypatch.setenv("BOTHWAYS_DATABASE_URL", url)
    both_metadata.create_all(get_engine(url))
    return get_engine(url)


def tap(amqp_uri: str, exchange: str) -> Queue:
    queue = Queue(f"tap-{uuid.uuid4().hex}", Exchange(exchange, type="topic", durable=True),
                  routing_key="#", auto_delete=False, durable=False)
    with Connection(amqp_uri) as conn:
        queue.bind(conn.default_channel).declare()
    return queue


def raw_messages(amqp_uri: str, queue: Queue, count: int) -> list:
    """The next `count` messages of `queue` as py-amqp received them (properties and all);
    fails after a minute without them."""
    with Connection(amqp_uri) as conn:
        channel = conn.connection.channel()
        received: list = []
        with eventlet.Timeout(60):
            while len(received) < count:
                message = channel.basic_get(queue.name, no_ack=True)
                if message is None:
                    eventlet.sleep(0.05)
                else:
                    received.append(message)
        channel.queue_delete(queue.name)
        return received


BATCH = [
    ("bothways.events", "thing_noted", json.dumps({"event_id": "e-1", "data": {"名": "张三"}},
                                                  ensure_ascii=False),
     {"nameko.correlation_id": "c-1", "nameko.causation_id": "e-1", "nameko.actor": "用户-7",
      "nameko.causation_depth": 2}, "e-1"),
    ("bothways.events", "thing_big", json.dumps({"event_id": "e-2", "blob": "y" * 300_000}),
     {"nameko.correlation_id": "c-2", "nameko.causation_id": "e-2",
      "nameko.causation_depth": 1}, "e-2"),
]


def test_the_relay_publishes_the_same_messages_both_ways(amqp_uri: str) -> None:
    seen = {}
    for own_frames in (True, False):
        queue = tap(amqp_uri, "bothways.events")
        publisher = BatchPublisher(amqp_uri, own_frames=own_frames)
        try:
            publisher.publish_batch(BATCH)
        finally:
            publisher.close()
        seen[own_frames] = raw_messages(amqp_uri, queue, len(BATCH))
    for fast, library, sent in zip(seen[True], seen[False], BATCH, strict=True):
        exchange, routing_key, body, headers, message_id = sent
        for message in (fast, library):
            assert message.body == body  # py-amqp decodes a utf-8 body
            assert message.delivery_info["routing_key"] == routing_key
            assert message.delivery_info["exchange"] == exchange
            assert message.properties["application_headers"] == headers
            assert message.properties["message_id"] == message_id
            assert message.properties["delivery_mode"] == 2
        assert fast.properties == library.properties


def test_a_service_works_the_same_both_ways(container_factory, nameko_config, amqp_uri,
                                            both_db, fast_paths_setting) -> None:
    queue = tap(amqp_uri, "bothways.events")
    container = container_factory(BothWaysService, nameko_config)
    container.start()
    consumer = next(ext for ext in container.extensions if isinstance(ext, ReplyingRpcConsumer))
    assert (consumer.replies is not None) == (fast_paths_setting == "all")

    with ServiceRpcProxy("bothways", nameko_config, timeout=10,
                         context_data={"correlation_id": "corr-9"}) as proxy:
        answer = proxy.note(7, label="七")
        assert answer["correlation_id"] == "corr-9"
        with pytest.raises(NotFound) as missing:
            proxy.missing()
        assert missing.value.extra == {"id": "x"}
        with pytest.raises(Exception, match="object") as unserialisable:
            proxy.unserialisable()
        assert type(unserialisable.value).__name__ == "RemoteError"
        assert "UnserializableValueError" in str(unserialisable.value)
        with pytest.raises(IncorrectSignature, match="'n'"):
            proxy.note()  # nameko's signature check or the cached one: the same error
        # An event that does not fit its schema is refused by marshmallow either way.
        with pytest.raises(ValidationFailed) as invalid:
            proxy.note("seven")
        assert "n" in invalid.value.extra["errors"]

    (message,) = raw_messages(amqp_uri, queue, 1)
    envelope = json.loads(message.body)
    assert envelope["event_id"] == answer["event_id"]
    assert envelope["data"] == {"n": 7, "label": "七"}
    assert message.properties["application_headers"]["nameko.correlation_id"] == "corr-9"
    with both_db.connect() as conn:
        assert conn.execute(select(both_outbox.c.event_id)).scalars().all() == [
            answer["event_id"]]
