"""The gateway's RPC pool against the real RabbitMQ: it must fail fast with ServiceUnavailable
when nobody consumes, time out instead of hanging, and carry context and typed errors.

Every test runs on both links of the pool: the py-amqp fast path (`rpc_client`) and nameko's
standalone proxy (the fast path off), which must behave the same. "Fast" is shown by the
reason of the 503 (the consumer check or an unroutable request answered, not the timeout),
never by a stopwatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
import eventlet
import kombu
import pytest

from services.gateway.rpc import RpcPool, ServiceUnavailable
from shared.config import nameko_config as make_nameko_config
from shared.errors import NotFound

ROOT = Path(__file__).resolve().parents[2]

SERVICE_SOURCE = '''
import eventlet
from nameko.rpc import rpc

from shared.context import CallContext
from shared.errors import NotFound


class Probe:
    name = "{name}"
    context = CallContext()

    @rpc
    def ping(self, payload):
        return payload

    @rpc
    def whoami(self):
        return {{"correlation_id": self.context.correlation_id, "actor": self.context.actor}}

    @rpc
    def missing(self):
        raise NotFound("no such thing", {{"id": "x"}})

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "late"
'''


@pytest.fixture(params=[True, False], ids=["fast_path", "nameko_proxy"])
def pool(amqp_uri: str, request: pytest.FixtureRequest) -> Iterator[RpcPool]:
    rpc_pool = RpcPool(make_nameko_config(AMQP_URI=amqp_uri), timeout=1.5, fast=request.param)
    yield rpc_pool
    rpc_pool.close()


def _queue_state(amqp_uri: str, name: str) -> tuple[int, int]:
    with kombu.Connection(amqp_uri) as conn:
        _, messages, consumers = conn.channel().queue_declare(queue=name, passive=True)
        return messages, consumers


def test_unknown_service_is_unavailable_at_once(pool: RpcPool) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        pool.call(f"gwtest_{uuid.uuid4().hex[:8]}", "ping", {"payload": 1},
                  correlation_id="c", actor=None)
    # Answered by the consumer check, not by waiting out the call's timeout.
    assert "no running instance" in str(info.value)


def test_queue_without_consumer_is_unavailable_and_nothing_is_queued(
    pool: RpcPool, amqp_uri: str
) -> None:
    service = f"gwtest_{uuid.uuid4().hex[:8]}"
    queue = f"rpc-{service}"
    with kombu.Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.exchange_declare("nameko-rpc", "topic", durable=True, auto_delete=False)
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        channel.queue_bind(queue, "nameko-rpc", routing_key=f"{service}.*")
        try:
            with pytest.raises(ServiceUnavailable) as info:
                pool.call(service, "ping", {"payload": 1}, correlation_id="c", actor="u1")
            assert "no running instance" in str(info.value)
            assert _queue_state(amqp_uri, queue) == (0, 0)
        finally:
            channel.queue_delete(queue)


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "nameko_proxy"])
def test_unreachable_broker_is_unavailable_quickly(fast: bool) -> None:
    rpc_pool = RpcPool(make_nameko_config(AMQP_URI="amqp://guest:guest@127.0.0.1:1/"),
                       timeout=1, fast=fast)
    with pytest.raises(ServiceUnavailable) as info:
        rpc_pool.call("leads", "ping", {"payload": 1}, correlation_id="c", actor=None)
    # The refused connection answered, not a timeout: nothing was published or awaited.
    assert "message broker unreachable" in str(info.value)
    assert not rpc_pool.broker_ok()
    rpc_pool.close()


@pytest.fixture
def probe_service(amqp_uri: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    name = f"gwtest_{uuid.uuid4().hex[:8]}"
    (tmp_path / "gwprobe.py").write_text(textwrap.dedent(SERVICE_SOURCE.format(name=name)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "--broker", amqp_uri, "gwprobe"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a wait for the start, not a measure of it
        while time.monotonic() < deadline:
            try:
                if _queue_state(amqp_uri, f"rpc-{name}")[1] > 0:
                    break
            except Exception:  # noqa: BLE001 - the queue does not exist yet
                pass
            if process.poll() is not None:
                pytest.fail("the probe service exited")
            time.sleep(0.2)
        else:
            pytest.fail("the probe service did not start consuming")
        yield name, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def test_calls_context_typed_errors_and_timeouts(
    pool: RpcPool, probe_service: tuple[str, subprocess.Popen], amqp_uri: str
) -> None:
    name, process = probe_service
    assert pool.call(name, "ping", {"payload": {"文字": 1}}, correlation_id="c1",
                     actor=None) == {"文字": 1}
    assert pool.call(name, "whoami", {}, correlation_id="corr-7", actor="user-9") == {
        "correlation_id": "corr-7", "actor": "user-9"}
    with pytest.raises(NotFound) as info:
        pool.call(name, "missing", {}, correlation_id="c2", actor=None)
    assert info.value.extra == {"id": "x"}
    # The proxy survived the remote error and is reused.
    assert pool._idle.qsize() == 1

    with pytest.raises(ServiceUnavailable) as timeout:
        pool.call(name, "slow", {"seconds": 4}, correlation_id="c3", actor=None)
    # The call's own timeout answered (not the service's late reply, nor a broken link).
    assert "no reply within 1.5 s" in str(timeout.value)
    # The proxy that timed out is discarded; the next call works on a fresh one.
    assert pool._idle.qsize() == 0
    assert pool.call(name, "ping", {"payload": 2}, correlation_id="c4", actor=None) == 2

    process.terminate()
    process.wait(timeout=15)
    # Within the consumer cache window the call is published but carries a TTL equal to the
    # timeout, so a service that comes back later never runs it.
    with pytest.raises(ServiceUnavailable):
        pool.call(name, "ping", {"payload": 3}, correlation_id="c5", actor=None)
    time.sleep(0.5)
    messages, consumers = _queue_state(amqp_uri, f"rpc-{name}")
    assert consumers == 0 and messages == 0
    with pytest.raises(ServiceUnavailable) as gone:
        pool.call(name, "ping", {"payload": 4}, correlation_id="c6", actor=None)
    assert "no running instance" in str(gone.value)  # the consumer check, not a timeout
    with kombu.Connection(amqp_uri) as conn:
        conn.channel().queue_delete(f"rpc-{name}")


def test_a_stale_idle_link_costs_no_request(
    amqp_uri: str, probe_service: tuple[str, subprocess.Popen]
) -> None:
    """A link whose connection went away while idle in the pool (a broker restart) is replaced
    before the request is sent, and the call succeeds. (The fast path's links only: nameko's
    proxy publishes on a connection of its own.)"""
    name, _ = probe_service
    pool = RpcPool(make_nameko_config(AMQP_URI=amqp_uri), timeout=1.5, fast=True)
    try:
        assert pool.call(name, "ping", {"payload": 1}, correlation_id="c1", actor=None) == 1
        stale = pool._idle.get_nowait()
        stale._amqp.sock.close()
        pool._idle.put(stale)
        assert pool.call(name, "ping", {"payload": 2}, correlation_id="c2", actor=None) == 2
        assert pool._idle.qsize() == 1 and pool._idle.get_nowait() is not stale
    finally:
        pool.close()


def _answer_one_request(amqp_uri: str, service: str, seen: list, ready) -> None:
    """A bare responder on `rpc-<service>`: records the request it takes and answers it as a
    nameko service would."""
    with kombu.Connection(amqp_uri) as conn:
        channel = conn.connection.channel()
        channel.exchange_declare("nameko-rpc", "topic", durable=True, auto_delete=False)
        channel.queue_declare(f"rpc-{service}", durable=True, auto_delete=True)
        channel.queue_bind(f"rpc-{service}", "nameko-rpc", routing_key=f"{service}.*")

        def on_request(message) -> None:
            seen.append(message)
            channel.basic_publish(
                amqp.Message(b'{"result": "ok", "error": null}',
                             content_type="application/json",
                             correlation_id=message.properties["correlation_id"]),
                exchange="nameko-rpc", routing_key=message.properties["reply_to"])

        channel.basic_consume(f"rpc-{service}", callback=on_request, no_ack=True)
        ready.send()
        while not seen:
            conn.connection.drain_events(timeout=30)
        channel.queue_delete(f"rpc-{service}")


def test_both_links_send_the_same_request(amqp_uri: str) -> None:
    requests = {}
    for fast in (True, False):
        service = f"gwtest_{uuid.uuid4().hex[:8]}"
        seen: list = []
        ready = eventlet.Event()
        responder = eventlet.spawn(_answer_one_request, amqp_uri, service, seen, ready)
        ready.wait()
        rpc_pool = RpcPool(make_nameko_config(AMQP_URI=amqp_uri), timeout=1.5, fast=fast)
        try:
            assert rpc_pool.call(service, "create", {"data": {"名": 1}}, correlation_id="corr-1",
                                 actor="user-2") == "ok"
        finally:
            rpc_pool.close()
        responder.wait()
        (message,) = seen
        requests[fast] = message
        assert message.delivery_info["routing_key"] == f"{service}.create"
        assert message.delivery_info["exchange"] == "nameko-rpc"
    fast, library = requests[True], requests[False]
    assert json.loads(fast.body) == json.loads(library.body) == {
        "args": [], "kwargs": {"data": {"名": 1}}}
    for name in ("content_type", "content_encoding", "delivery_mode", "expiration"):
        assert fast.properties.get(name) == library.properties.get(name), name
    assert fast.properties["delivery_mode"] == 1 and fast.properties["expiration"] == "1500"
    for message in (fast, library):
        assert message.properties["reply_to"] and message.properties["correlation_id"]
        headers = message.properties["application_headers"]
        assert headers["nameko.correlation_id"] == "corr-1"
        assert headers["nameko.actor"] == "user-2"
    # nameko's proxy adds only its own call id stack to the context headers.
    assert set(library.properties["application_headers"]) - set(
        fast.properties["application_headers"]) <= {"nameko.call_id_stack"}
