"""A service rides out a broker outage: the broker (here a TCP proxy in front of it) goes away
while a handler or an RPC is in flight, the process lives on, and after the broker is back it
consumes and answers again; the unacked event is redelivered and has one effect."""

from __future__ import annotations

import socket
import uuid

import eventlet
import pytest
from eventlet.event import Event
from kombu import Connection, Exchange
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from shared.consumer import SafeQueueConsumer, event_handler
from shared.db import Database, get_engine
from shared.inbox import first_delivery, inbox_table
from shared.rpc import ReplyingRpcConsumer, rpc, rpc_proxy
from tests.e2e.system import BrokerProxy

pytestmark = pytest.mark.integration

outage_metadata = MetaData()
outage_inbox = inbox_table(outage_metadata)
effects = Table("effects", outage_metadata, Column("id", Integer, primary_key=True),
                Column("event_id", String(36)))


class Gate:
    """Holds a handler until the test has cut the broker."""

    def __init__(self) -> None:
        self.entered = Event()
        self.release = Event()
        self.calls = 0

    def wait(self) -> None:
        self.calls += 1
        if self.calls == 1:  # only the first delivery is held
            self.entered.send(True)
            self.release.wait()


GATE = Gate()


class OutageService:
    name = "outage_probe"
    db = Database("outage_probe")

    @event_handler("outage_probe", "thing_happened")
    def on_outage_probe_thing_happened(self, envelope: dict) -> None:
        with self.db.begin() as session:
            if first_delivery(session, outage_inbox, envelope["event_id"], "outage.effects"):
                session.execute(effects.insert().values(event_id=envelope["event_id"]))
        GATE.wait()  # committed; the ack comes after this, over a connection that is gone

    @rpc
    def slow(self, n: int) -> int:
        GATE.wait()
        return n

    @rpc
    def echo(self, n: int) -> int:
        return n


class CallerService:
    """Calls the probe, as rules calls leads and sales."""

    name = "outage_caller"
    probe = rpc_proxy("outage_probe")

    @rpc
    def relay(self, n: int) -> int:
        return self.probe.echo(n)


@pytest.fixture
def outage_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/outage.db"
    monkeypatch.setenv("OUTAGE_PROBE_DATABASE_URL", url)
    outage_metadata.create_all(get_engine(url))
    return get_engine(url)


@pytest.fixture
def proxy(amqp_uri, tmp_path):
    global GATE
    GATE = Gate()
    broker = BrokerProxy(amqp_uri, tmp_path / "proxy.log")
    broker.start()
    yield broker
    broker.cut()


def publish(amqp_uri: str, event_id: str) -> None:
    envelope = {"event_id": event_id, "event_type": "thing_happened", "version": 1,
                "occurred_at": "2026-01-01T00:00:00+00:00", "producer": "outage_probe",
                "correlation_id": "c-outage", "causation_id": None, "actor": None,
                "data": {"n": 1}}
    with Connection(amqp_uri) as conn:
        conn.Producer().publish(envelope, exchange=Exchange("outage_probe.events",
                                                            type="topic", durable=True),
                                routing_key="thing_happened", serializer="json",
                                delivery_mode=2)


def wait_until(predicate, timeout: float = 60.0):
    with eventlet.Timeout(timeout):
        while not (result := predicate()):
            eventlet.sleep(0.1)
    return result


def stop(container) -> None:
    """While the broker is still there: a container stopping without it waits for it."""
    try:
        with eventlet.Timeout(20):
            container.stop()
    except eventlet.Timeout:
        container.kill()


def effect_count(engine, event_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(effects)
                            .where(effects.c.event_id == event_id)).scalar_one()


def test_a_handler_that_cannot_ack_leaves_the_process_alive(
    container_factory, nameko_config, amqp_uri, outage_db, proxy
):
    container = container_factory(OutageService, {**nameko_config, "AMQP_URI": proxy.uri})
    container.start()
    first = str(uuid.uuid4())
    publish(amqp_uri, first)
    GATE.entered.wait()
    # The socket dies under the consumer before it notices (as in a broker kill -9): the
    # handler, released at once, returns and its ack is the first to meet the dead socket.
    queue_consumer = next(ext for ext in container.extensions
                          if type(ext) is SafeQueueConsumer)  # the events' (not the RPCs')
    for consumer in queue_consumer._consumers.values():
        consumer.channel.connection.sock.shutdown(socket.SHUT_RDWR)
    GATE.release.send(True)
    eventlet.sleep(0.5)
    proxy.cut()
    eventlet.sleep(1.0)
    assert not container._died.ready(), "the container must not die with its broker link"

    proxy.restore()
    # The unacked event comes back and is skipped by the inbox; new events are consumed.
    wait_until(lambda: GATE.calls >= 2)
    second = str(uuid.uuid4())
    publish(amqp_uri, second)
    wait_until(lambda: effect_count(outage_db, second) == 1)
    assert effect_count(outage_db, first) == 1
    assert not container._died.ready()
    stop(container)


def test_a_reply_that_meets_the_broker_down_leaves_the_process_alive(
    container_factory, nameko_config, amqp_uri, outage_db, proxy
):
    container = container_factory(OutageService, {**nameko_config, "AMQP_URI": proxy.uri})
    container.start()
    with ServiceRpcProxy("outage_probe", nameko_config, timeout=60) as client:
        client.slow.call_async(7)  # its reply will be lost: the caller's timeout covers it
        GATE.entered.wait()
        proxy.cut()
        GATE.release.send(True)
        replier = next(ext for ext in container.extensions
                       if isinstance(ext, ReplyingRpcConsumer))
        wait_until(lambda: container._died.ready() or replier.replies_lost)
        assert not container._died.ready(), "the container must not die with its reply"
        proxy.restore()

        def answers() -> bool:
            try:
                with ServiceRpcProxy("outage_probe", nameko_config, timeout=3) as fresh:
                    return fresh.echo(5) == 5
            except Exception:  # noqa: BLE001 - not reconnected yet
                return False

        wait_until(answers)
    assert not container._died.ready()
    stop(container)


def test_a_reply_whose_ack_meets_a_dead_connection_leaves_the_caller_alive(
    container_factory, nameko_config, outage_db, monkeypatch
):
    """A broker kill -9 while rules waited for leads' reply: the reply listener's ack met the
    dead socket, and the exception ended rules for good (the chaos suite's broker kill)."""
    import kombu.message

    real_ack = kombu.message.Message.ack
    failed: list[str] = []

    def ack(message, *args, **kwargs):
        is_reply = (message.delivery_info.get("exchange") == "nameko-rpc"
                    and not str(message.delivery_info.get("routing_key")).startswith("outage_"))
        if is_reply and not failed:
            failed.append(message.properties.get("correlation_id"))
            raise ConnectionResetError(104, "Connection reset by peer")
        return real_ack(message, *args, **kwargs)

    monkeypatch.setattr(kombu.message.Message, "ack", ack)
    probe = container_factory(OutageService, nameko_config)
    caller = container_factory(CallerService, nameko_config)
    probe.start()
    caller.start()
    with ServiceRpcProxy("outage_caller", nameko_config, timeout=30) as client:
        assert client.relay(3) == 3
        assert failed, "the reply's ack was not made to fail"
        eventlet.sleep(0.5)
        assert not caller._died.ready(), "a reply's failed ack must not end the service"
        assert client.relay(4) == 4
    stop(caller)
    stop(probe)
