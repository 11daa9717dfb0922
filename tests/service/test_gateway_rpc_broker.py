"""The gateway's RPC pool against the real RabbitMQ: it must fail fast with ServiceUnavailable
when nobody consumes, time out instead of hanging, and carry context and typed errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def pool(amqp_uri: str) -> Iterator[RpcPool]:
    rpc_pool = RpcPool(make_nameko_config(AMQP_URI=amqp_uri), timeout=1.5)
    yield rpc_pool
    rpc_pool.close()


def _queue_state(amqp_uri: str, name: str) -> tuple[int, int]:
    with kombu.Connection(amqp_uri) as conn:
        _, messages, consumers = conn.channel().queue_declare(queue=name, passive=True)
        return messages, consumers


def test_unknown_service_is_unavailable_at_once(pool: RpcPool) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        pool.call(f"gwtest_{uuid.uuid4().hex[:8]}", "ping", {"payload": 1},
                  correlation_id="c", actor=None)
    assert time.monotonic() - started < 1


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
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable) as info:
                pool.call(service, "ping", {"payload": 1}, correlation_id="c", actor="u1")
            assert time.monotonic() - started < 1
            assert "no running instance" in str(info.value)
            assert _queue_state(amqp_uri, queue) == (0, 0)
        finally:
            channel.queue_delete(queue)


def test_unreachable_broker_is_unavailable_quickly() -> None:
    rpc_pool = RpcPool(make_nameko_config(AMQP_URI="amqp://guest:guest@127.0.0.1:1/"),
                       timeout=1)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        rpc_pool.call("leads", "ping", {"payload": 1}, correlation_id="c", actor=None)
    assert not rpc_pool.broker_ok()
    assert time.monotonic() - started < 3
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
        deadline = time.monotonic() + 30
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

    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as timeout:
        pool.call(name, "slow", {"seconds": 4}, correlation_id="c3", actor=None)
    assert 1.4 < time.monotonic() - started < 3
    assert "no reply" in str(timeout.value)
    # The proxy that timed out is discarded; the next call works on a fresh one.
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
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        pool.call(name, "ping", {"payload": 4}, correlation_id="c6", actor=None)
    assert time.monotonic() - started < 1
    with kombu.Connection(amqp_uri) as conn:
        conn.channel().queue_delete(f"rpc-{name}")


def test_a_stale_idle_link_costs_no_request(
    pool: RpcPool, probe_service: tuple[str, subprocess.Popen]
) -> None:
    """A link whose connection went away while idle in the pool (a broker restart) is replaced
    before the request is sent, and the call succeeds."""
    name, _ = probe_service
    assert pool.call(name, "ping", {"payload": 1}, correlation_id="c1", actor=None) == 1
    stale = pool._idle.get_nowait()
    stale._amqp.sock.close()
    pool._idle.put(stale)
    assert pool.call(name, "ping", {"payload": 2}, correlation_id="c2", actor=None) == 2
    assert pool._idle.qsize() == 1 and pool._idle.get_nowait() is not stale
