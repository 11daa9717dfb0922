"""The event backbone over the real broker: outbox, idempotent inbox, retries and dead letters.

Each test runs on SQLite and, where reachable, PostgreSQL.
"""

from __future__ import annotations

import json
import uuid

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from marshmallow import Schema, fields
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from shared.consumer import DEAD_LETTER_QUEUE, event_handler
from shared.db import Database, get_engine
from shared.envelope import utcnow
from shared.inbox import first_delivery, inbox_table
from shared.outbox import EventOutbox, outbox_table
from shared.rpc import rpc

pytestmark = pytest.mark.integration

probe_metadata = MetaData()
probe_outbox = outbox_table(probe_metadata)
probe_inbox = inbox_table(probe_metadata)
effects = Table(
    "effects",
    probe_metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(36)),
)
HANDLED: list[str] = []


class ThingHappened(Schema):
    n = fields.Integer(required=True)


class ProbeService:
    name = "probe"
    db = Database("probe")
    events = EventOutbox("probe", probe_outbox, {"thing_happened": ThingHappened})

    @rpc
    def do(self, n: int, fail: bool = False) -> int:
        with self.db.begin() as session:
            self.events.record(session, "thing_happened", {"n": n})
            if fail:
                raise RuntimeError("rolled back after recording the event")
        return n

    @event_handler("probe", "thing_happened")
    def on_probe_thing_happened(self, envelope: dict) -> None:
        with self.db.begin() as session:
            if first_delivery(session, probe_inbox, envelope["event_id"], "probe.effects"):
                session.execute(effects.insert().values(event_id=envelope["event_id"]))


class FailingService:
    name = "failing"

    @event_handler("probe", "thing_happened")
    def on_probe_thing_happened(self, envelope: dict) -> None:
        HANDLED.append(envelope["event_id"])
        raise RuntimeError("this handler always fails")


@pytest.fixture(params=["sqlite", "postgresql"])
def probe_db(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/probe.db"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    monkeypatch.setenv("PROBE_DATABASE_URL", url)
    probe_metadata.create_all(get_engine(url))
    return get_engine(url)


def tap(amqp_uri: str, exchange: str) -> Queue:
    """A private queue bound to every event of an exchange, declared before anything is sent."""
    queue = Queue(f"tap-{uuid.uuid4().hex}", Exchange(exchange, type="topic", durable=True),
                  routing_key="#", auto_delete=False, durable=False)
    with Connection(amqp_uri) as conn:
        queue.bind(conn.default_channel).declare()
    return queue


def drain(amqp_uri: str, queue: Queue, settle: float = 1.0) -> list:
    """Everything in the queue after `settle` seconds of quiet."""
    bodies: list = []
    with Connection(amqp_uri) as conn:
        simple = conn.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(block=True, timeout=settle)
            except simple.Empty:
                break
            bodies.append((message.payload, message.headers))
            message.ack()
        simple.close()
    return bodies


def test_events_are_published_once_per_commit_and_never_on_rollback(
    container_factory, nameko_config, amqp_uri, probe_db
):
    queue = tap(amqp_uri, "probe.events")
    container = container_factory(ProbeService, nameko_config)
    container.start()

    with ServiceRpcProxy("probe", nameko_config, timeout=10) as probe:
        assert probe.do(1) == 1
        with pytest.raises(Exception, match="rolled back"):
            probe.do(2, fail=True)
        assert probe.do(3) == 3

    published = drain(amqp_uri, queue)
    assert sorted(body["data"]["n"] for body, _ in published) == [1, 3]
    envelope = published[0][0]
    assert set(envelope) >= {"event_id", "event_type", "version", "occurred_at", "producer",
                             "correlation_id", "causation_id", "actor", "data"}
    assert published[0][1]["nameko.causation_id"] == envelope["event_id"]
    with probe_db.connect() as conn:
        rows = conn.execute(select(probe_outbox.c.published_at)).all()
    assert len(rows) == 2 and all(published_at is not None for (published_at,) in rows)


def test_rows_left_by_a_dead_process_are_swept(container_factory, nameko_config, amqp_uri,
                                               probe_db, monkeypatch):
    """A row committed but never relayed (the process died) is published by the sweep."""
    import shared.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "SWEEP_INTERVAL", 0.2)
    monkeypatch.setattr(outbox_module, "SWEEP_GRACE", outbox_module.timedelta(0))
    queue = tap(amqp_uri, "probe.events")
    envelope = {"event_id": str(uuid.uuid4()), "event_type": "thing_happened", "version": 1,
                "occurred_at": "2026-01-01T00:00:00+00:00", "producer": "probe",
                "correlation_id": "c-1", "causation_id": None, "actor": None, "data": {"n": 7}}
    with probe_db.begin() as conn:
        conn.execute(probe_outbox.insert().values(
            event_id=envelope["event_id"], event_type="thing_happened",
            envelope=json.dumps(envelope), created_at=outbox_module.utcnow()))
    container = container_factory(ProbeService, nameko_config)
    container.start()
    published = drain(amqp_uri, queue, settle=2.0)
    assert [body["event_id"] for body, _ in published] == [envelope["event_id"]]


def test_a_redelivered_event_has_one_effect(container_factory, nameko_config, amqp_uri,
                                            probe_db):
    container = container_factory(ProbeService, nameko_config)
    container.start()
    envelope = {"event_id": str(uuid.uuid4()), "event_type": "thing_happened", "version": 1,
                "occurred_at": "2026-01-01T00:00:00+00:00", "producer": "probe",
                "correlation_id": "c-2", "causation_id": None, "actor": None, "data": {"n": 1}}
    exchange = Exchange("probe.events", type="topic", durable=True)
    with Connection(amqp_uri) as conn:
        producer = conn.Producer()
        for _ in range(3):
            producer.publish(envelope, exchange=exchange, routing_key="thing_happened",
                             serializer="json", delivery_mode=2)

    def effect_count() -> int:
        with probe_db.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(effects)
                .where(effects.c.event_id == envelope["event_id"])
            ).scalar_one()

    with eventlet.Timeout(10):
        while effect_count() < 1:
            eventlet.sleep(0.05)
    eventlet.sleep(1.0)  # give the two redeliveries time to (not) apply
    assert effect_count() == 1


def test_a_failing_handler_retries_with_backoff_then_dead_letters(
    container_factory, nameko_config, amqp_uri
):
    HANDLED.clear()
    with Connection(amqp_uri) as conn:
        Queue(DEAD_LETTER_QUEUE, durable=True).bind(conn.default_channel).queue_declare(
            passive=False)
        conn.default_channel.queue_purge(DEAD_LETTER_QUEUE)
    config = {**nameko_config, "EVENT_RETRY_BACKOFF": [0.2, 0.4]}
    container = container_factory(FailingService, config)
    container.start()
    envelope = {"event_id": str(uuid.uuid4()), "event_type": "thing_happened", "data": {"n": 1}}
    with Connection(amqp_uri) as conn:
        conn.Producer().publish(envelope, exchange=Exchange("probe.events", type="topic",
                                                            durable=True),
                                routing_key="thing_happened", serializer="json", delivery_mode=2)
    dead = drain(amqp_uri, Queue(DEAD_LETTER_QUEUE, durable=True), settle=3.0)
    assert len(HANDLED) == 3, "one try and two retries, no hot loop"
    assert len(dead) == 1
    body, headers = dead[0]
    assert body["event_id"] == envelope["event_id"]
    assert headers["x-crm-attempt"] == 3
    assert "always fails" in headers["x-crm-error"]
    eventlet.sleep(1.0)
    assert len(HANDLED) == 3, "nothing is retried after dead-lettering"


def test_confirmed_events_waiting_to_be_marked_are_not_published_again(amqp_uri, probe_db):
    """The relay marks confirmed rows sent in one UPDATE per interval; a sweep in between must
    mark them, not publish them a second time."""
    from datetime import timedelta

    from shared.context import Context
    from shared.envelope import new_envelope
    from shared.outbox import BatchPublisher, OutboxRelay

    queue = tap(amqp_uri, "probe.events")
    relay = OutboxRelay("probe", probe_db, probe_outbox, BatchPublisher(amqp_uri),
                        mark_delay=3600)
    body = json.dumps(new_envelope("probe", "thing_happened", {"n": 1},
                                   Context(correlation_id="c-1")))
    with probe_db.begin() as conn:
        conn.execute(probe_outbox.insert().values(
            event_id=json.loads(body)["event_id"], event_type="thing_happened", envelope=body,
            created_at=utcnow() - timedelta(minutes=1)))
    try:
        event_id = json.loads(body)["event_id"]
        assert relay.publish_rows([(event_id, "thing_happened", body)]) == 1
        assert relay.marks_pending
        assert relay.publish_pending(grace=timedelta(0)) == 0
        assert not relay.marks_pending
    finally:
        relay.publisher.close()
    assert [body["data"]["n"] for body, _ in drain(amqp_uri, queue)] == [1]
    with probe_db.connect() as conn:
        assert conn.execute(select(probe_outbox.c.published_at)).scalar_one() is not None


def test_the_definitions_policies_are_in_effect(amqp_uri):
    """Dead letters for the event queues, not RPC; version 2 storage for every event queue."""
    import subprocess

    from deploy import devctl

    _, _, vhost = devctl.amqp_endpoint(amqp_uri)
    ctl = devctl.find_tool("rabbitmqctl")
    if vhost == "/" or ctl is None:
        pytest.skip("no test vhost of a local broker")
    with Connection(amqp_uri) as connection:
        for name in ("evt-probe-policy", "rpc-probe-policy"):
            Queue(name, durable=True, auto_delete=True)(connection.default_channel).declare()
        listed = subprocess.run(
            [ctl, "list_queues", "-q", "-p", vhost, "name", "policy"],
            capture_output=True, text=True, check=True, timeout=60).stdout
    policies = dict(line.split("\t")[:2] for line in listed.splitlines() if "\t" in line)
    # Every queue of events dead-letters (and keeps version 2 storage); the dead letters
    # themselves do not; RPC requests do not: an expired request is not a dead event.
    assert policies["rules.all-events"] == "crm-dead-letter"
    assert policies["evt-probe-policy"] == "crm-dead-letter"
    assert policies["crm.dead-letter"] == "crm-event-stores"
    assert policies["rpc-probe-policy"] in ("", None)


@pytest.mark.parametrize("poison", ["not-json", "disallowed-content-type", "no-data",
                                    "not-an-object"])
def test_a_message_that_is_no_event_is_dead_lettered_with_its_reason(
    container_factory, nameko_config, amqp_uri, poison
):
    """Nothing is thrown away: what no handler can read goes to crm.dead-letter at once,
    with why, and the consumer goes on with the next message."""
    HANDLED.clear()
    with Connection(amqp_uri) as conn:
        Queue(DEAD_LETTER_QUEUE, durable=True).bind(conn.default_channel).queue_declare(
            passive=False)
        conn.default_channel.queue_purge(DEAD_LETTER_QUEUE)
    container = container_factory(FailingService, {**nameko_config,
                                                   "EVENT_RETRY_BACKOFF": [0.2]})
    container.start()
    exchange = Exchange("probe.events", type="topic", durable=True)
    bodies = {
        "not-json": (b"{this is not json", "application/json"),
        "disallowed-content-type": (b"\x80\x04K\x01.", "application/x-python-serialize"),
        "no-data": (json.dumps({"event_id": "e-1", "event_type": "thing_happened"}).encode(),
                    "application/json"),
        "not-an-object": (b"[1, 2]", "application/json"),
    }
    body, content_type = bodies[poison]
    good = {"event_id": str(uuid.uuid4()), "event_type": "thing_happened", "data": {"n": 1}}
    with Connection(amqp_uri) as conn:
        producer = conn.Producer()
        producer.publish(body, exchange=exchange, routing_key="thing_happened",
                         content_type=content_type, content_encoding="binary",
                         delivery_mode=2)
        producer.publish(good, exchange=exchange, routing_key="thing_happened",
                         serializer="json", delivery_mode=2)
    with eventlet.Timeout(15):
        while good["event_id"] not in HANDLED:
            eventlet.sleep(0.05)
    assert "e-1" not in HANDLED, "the poison never reached the handler"
    with Connection(amqp_uri) as conn:
        # The raw message: kombu's SimpleQueue would try (and fail) to decode the poison.
        channel = conn.connection.channel()
        with eventlet.Timeout(10):  # (a retried good event may be dead-lettered too)
            while (dead := channel.basic_get(DEAD_LETTER_QUEUE, no_ack=True)) is None or (
                    dead.body != body):
                eventlet.sleep(0.05)
        headers = dead.properties["application_headers"]
        assert dead.body == body
        assert headers["x-crm-reason"] == ("not an event" if poison in ("no-data",
                                                                      "not-an-object")
                                           else "undecodable")
        assert headers["x-crm-error"]
        assert headers["x-crm-queue"].startswith("evt-probe-")
        channel.close()


def _outbox_row(probe_db, n: int) -> tuple[str, str, str]:
    from datetime import timedelta

    from shared.context import Context
    from shared.envelope import new_envelope

    body = json.dumps(new_envelope("probe", "thing_happened", {"n": n},
                                   Context(correlation_id=f"c-{n}")))
    event_id = json.loads(body)["event_id"]
    with probe_db.begin() as conn:
        conn.execute(probe_outbox.insert().values(
            event_id=event_id, event_type="thing_happened", envelope=body,
            created_at=utcnow() - timedelta(minutes=1)))
    return (event_id, "thing_happened", body)


@pytest.mark.parametrize("own_frames", [True, False], ids=["own-frames", "kombu"])
def test_events_a_broker_lost_after_confirming_them_are_published_again(
    amqp_uri, probe_db, tmp_path, own_frames
):
    """The broker confirmed three events and then came back without them (a kill -9 before
    they reached its disk, a node restored empty; here: their queue purged while the relay's
    connection is cut). The relay's next publish finds its connection broken; the sweep then
    publishes the three again, with the new event, and nothing more at the next sweep."""
    from datetime import timedelta

    from shared.outbox import BatchPublisher, OutboxRelay
    from tests.e2e.system import BrokerProxy

    queue = tap(amqp_uri, "probe.events")
    proxy = BrokerProxy(amqp_uri, tmp_path / "proxy.log")
    proxy.start()
    relay = OutboxRelay("probe", probe_db, probe_outbox,
                        BatchPublisher(proxy.uri, own_frames=own_frames))
    try:
        assert relay.publish_rows([_outbox_row(probe_db, n) for n in (1, 2, 3)]) == 3
        assert relay.publish_pending(grace=timedelta(0)) == 0
        assert not relay.replay_pending
        with Connection(amqp_uri) as conn:  # the broker loses what it held
            assert queue(conn.default_channel).purge() == 3
        proxy.cut()
        proxy.restore()
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the dead socket raises
            relay.publish_rows([_outbox_row(probe_db, 4)])
        assert relay.publish_pending(grace=timedelta(0)) == 1  # the new event
        assert relay.publish_pending(grace=timedelta(0)) == 0
        assert not relay.replay_pending
    finally:
        relay.publisher.close()
        proxy.cut()
    received = sorted(body["data"]["n"] for body, _ in drain(amqp_uri, queue))
    assert received == [1, 2, 3, 4], "the lost events again, once, and the new one"
    with probe_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(probe_outbox)
                            .where(probe_outbox.c.published_at.is_(None))).scalar_one() == 0


def test_a_relay_that_never_had_a_confirm_publishes_nothing_again(amqp_uri, probe_db,
                                                                  tmp_path):
    """A process whose first publish fails (the broker not up yet) has confirmed nothing
    that a broker could have lost: its sweep publishes what is pending, no old rows again."""
    from datetime import timedelta

    from shared.outbox import BatchPublisher, OutboxRelay
    from tests.e2e.system import BrokerProxy

    _outbox_row(probe_db, 1)
    with probe_db.begin() as conn:  # sent by an earlier process
        conn.execute(probe_outbox.update().values(published_at=utcnow()))
    queue = tap(amqp_uri, "probe.events")
    proxy = BrokerProxy(amqp_uri, tmp_path / "proxy.log")  # not started: refused
    relay = OutboxRelay("probe", probe_db, probe_outbox, BatchPublisher(proxy.uri))
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - connection refused
            relay.publish_rows([_outbox_row(probe_db, 2)])
        assert not relay.replay_pending
        proxy.start()
        assert relay.publish_pending(grace=timedelta(0)) == 1
    finally:
        relay.publisher.close()
        proxy.cut()
    assert [body["data"]["n"] for body, _ in drain(amqp_uri, queue)] == [2]
