"""A consumer that makes no progress while messages wait fails `/health` (503, naming its queue),
over the real broker and the service's real HTTP endpoint; once it finishes again, 200.

This is the stall the fault suite once met on PostgreSQL: rules' handlers hung in calls to a
leads that was down, thousands of events waited behind them for minutes, and `/health` said 200.
"""

from __future__ import annotations

import socket
import uuid

import eventlet
import pytest
import requests
from eventlet.event import Event
from kombu import Connection, Exchange
from sqlalchemy import MetaData

from shared.consumer import event_handler
from shared.db import Database, get_engine
from shared.platform import PlatformEndpoints

pytestmark = pytest.mark.integration

STALL_SECONDS = 1.0


class Hold:
    """Keeps every handler waiting until the test lets them go."""

    def __init__(self) -> None:
        self.release = Event()
        self.entered = 0
        self.finished = 0

    def wait(self) -> None:
        self.entered += 1
        self.release.wait()
        self.finished += 1


HOLD = Hold()


class StallProbeService(PlatformEndpoints):
    name = "stall_probe"
    db = Database("stall_probe")

    @event_handler("stall_probe", "thing_happened")
    def on_stall_probe_thing_happened(self, envelope: dict) -> None:
        HOLD.wait()  # a call that never answers, as a remote service down would


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish(amqp_uri: str, count: int) -> None:
    with Connection(amqp_uri) as conn:
        producer = conn.Producer()
        for _ in range(count):
            producer.publish(
                {"event_id": str(uuid.uuid4()), "event_type": "thing_happened", "version": 1,
                 "occurred_at": "2026-01-01T00:00:00+00:00", "producer": "stall_probe",
                 "correlation_id": "c-stall", "causation_id": None, "actor": None,
                 "data": {"n": 1}},
                exchange=Exchange("stall_probe.events", type="topic", durable=True),
                routing_key="thing_happened", serializer="json", delivery_mode=2)


def health(address: str) -> requests.Response:
    # eventlet's green sockets: the container's web server answers in this same process
    return requests.get(f"http://{address}/health", timeout=10)


def wait_until(predicate, timeout: float = 30.0):
    with eventlet.Timeout(timeout):
        while not (result := predicate()):
            eventlet.sleep(0.1)
    return result


@pytest.fixture
def probe(container_factory, nameko_config, tmp_path, monkeypatch):
    global HOLD
    HOLD = Hold()
    url = f"sqlite:///{tmp_path}/stall.db"
    monkeypatch.setenv("STALL_PROBE_DATABASE_URL", url)
    monkeypatch.setenv("CRM_CONSUMER_STALL_SECONDS", str(STALL_SECONDS))
    MetaData().create_all(get_engine(url))
    address = f"127.0.0.1:{free_port()}"
    container = container_factory(StallProbeService,
                                  {**nameko_config, "WEB_SERVER_ADDRESS": address})
    container.start()
    yield address
    if not HOLD.release.ready():
        HOLD.release.send(True)
    container.stop()


def test_health_fails_while_a_consumer_holds_messages_and_finishes_none(probe, amqp_uri):
    assert health(probe).status_code == 200, "an idle consumer is healthy"

    publish(amqp_uri, 5)
    wait_until(lambda: HOLD.entered >= 1)
    eventlet.sleep(STALL_SECONDS * 1.5)
    stalled = health(probe)
    assert stalled.status_code == 503, stalled.text
    body = stalled.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert "stall_probe" in body["checks"]["consumers"]
    assert "messages unfinished" in body["checks"]["consumers"]

    HOLD.release.send(True)  # the remote side answers again: everything held finishes
    wait_until(lambda: HOLD.finished >= 5)
    recovered = wait_until(lambda: (r := health(probe)).status_code == 200 and r)
    assert recovered.json()["checks"]["consumers"] == "ok"
