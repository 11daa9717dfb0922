"""Pooled nameko RPC clients for the gateway.

A standalone nameko proxy is neither thread- nor greenlet-safe (STACK-NOTES), and creating one
per request costs a connection and a reply queue, so each process keeps a pool of started
`ClusterRpcProxy` instances and lends one to each call.

A call must never hang and must never run later behind the client's back: before publishing we
check that the service's RPC queue has a consumer (cached briefly), and the request message
carries a TTL equal to the call timeout so that a service which comes back after the client got
its 503 finds nothing to do.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import amqp.exceptions
import kombu
import kombu.exceptions
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService, deserialize
from nameko.rpc import ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy

import shared.errors  # noqa: F401  registers the typed errors so replies deserialize to them
from shared import config as shared_config

log = logging.getLogger(__name__)

# nameko always asks for mandatory delivery; without confirms (see `call`) it warns that it
# cannot detect unroutable requests, which the consumer check does instead.
warnings.filterwarnings("ignore", message="Mandatory delivery was requested", category=UserWarning)

# Publishing retries would turn a dead broker into a multi-second stall; the consumer check
# already proved the broker reachable a moment ago, so one quick retry is enough.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                        "interval_max": 0.2}

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    socket.timeout,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
    RuntimeError,  # nameko's "consumer has been disconnected / stopped"
)


class ServiceUnavailable(Exception):
    """The broker or the target service cannot answer now; the client should retry later."""

    status = 503
    title = "Service unavailable"

    def __init__(self, service: str, reason: str, retry_after: int = 5):
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.retry_after = retry_after
        self.detail = f"The {service} service is unavailable ({reason}); retry later."


class RpcClient(Protocol):
    """What the gateway needs from an RPC pool; tests inject a fake with the same shape."""

    def call(
        self,
        service: str,
        method: str,
        kwargs: Mapping[str, Any],
        *,
        correlation_id: str,
        actor: str | None,
    ) -> Any: ...

    def broker_ok(self) -> bool: ...

    def close(self) -> None: ...


class RpcPool:
    """A thread-safe pool of started cluster proxies, created lazily."""

    def __init__(
        self,
        nameko_config: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_idle: int = 16,
        consumer_cache_seconds: float = 1.5,
        connect_timeout: float = 2.0,
    ):
        self.config = nameko_config or shared_config.nameko_config()
        self.timeout = timeout if timeout is not None else shared_config.rpc_timeout()
        self.max_idle = max_idle
        self.consumer_cache_seconds = consumer_cache_seconds
        self.connect_timeout = connect_timeout
        self._idle: queue.LifoQueue[ClusterRpcProxy] = queue.LifoQueue()
        self._check_lock = threading.Lock()
        self._check_conn: kombu.Connection | None = None
        self._consumers_seen: dict[str, float] = {}
        self._closed = False

    # -- broker checks ---------------------------------------------------------------------

    def _connection(self) -> kombu.Connection:
        if self._check_conn is None:
            conn = kombu.Connection(
                self.config["AMQP_URI"],
                connect_timeout=self.connect_timeout,
                login_method=self.config.get("LOGIN_METHOD"),
            )
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            self._check_conn = conn
        return self._check_conn

    def _reset_connection(self) -> None:
        if self._check_conn is not None:
            try:
                self._check_conn.release()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
            self._check_conn = None
            # The broker connection dropped: idle proxies hold sockets to the same broker and
            # their reply queues may be gone, so a fresh generation is safer than a timeout.
            self._drain_idle()

    def consumer_count(self, service: str) -> int:
        """Consumers on `rpc-<service>`; 0 when the queue does not exist."""
        with self._check_lock:
            try:
                channel = self._connection().channel()
            except TRANSPORT_ERRORS as exc:
                self._reset_connection()
                raise ServiceUnavailable(service, "message broker unreachable") from exc
            try:
                _, _, consumers = channel.queue_declare(queue=f"rpc-{service}", passive=True)
                return int(consumers)
            except amqp.exceptions.NotFound:
                return 0
            except TRANSPORT_ERRORS as exc:
                self._reset_connection()
                raise ServiceUnavailable(service, "message broker unreachable") from exc
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - a 404 already closed the channel
                    pass

    def _ensure_consumers(self, service: str) -> None:
        seen = self._consumers_seen.get(service)
        if seen is not None and time.monotonic() - seen < self.consumer_cache_seconds:
            return
        if self.consumer_count(service) == 0:
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, "no running instance")
        self._consumers_seen[service] = time.monotonic()

    def broker_ok(self) -> bool:
        with self._check_lock:
            try:
                conn = self._connection()
                conn.channel().close()
                return True
            except TRANSPORT_ERRORS:
                self._reset_connection()
                return False

    # -- the pool ----------------------------------------------------------------------------

    def _acquire(self, service: str) -> ClusterRpcProxy:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        wrapper = ClusterRpcProxy(self.config, timeout=self.timeout)
        try:
            wrapper.start()
        except TRANSPORT_ERRORS as exc:
            raise ServiceUnavailable(service, "message broker unreachable") from exc
        return wrapper

    def _release(self, wrapper: ClusterRpcProxy) -> None:
        if self._closed or self._idle.qsize() >= self.max_idle:
            self._discard(wrapper)
            return
        self._idle.put(wrapper)

    @staticmethod
    def _discard(wrapper: ClusterRpcProxy) -> None:
        try:
            wrapper.stop()
        except Exception:  # noqa: BLE001 - a broken proxy may fail to close; drop it anyway
            log.debug("closing a discarded RPC proxy failed", exc_info=True)

    def _drain_idle(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    def call(
        self,
        service: str,
        method: str,
        kwargs: Mapping[str, Any],
        *,
        correlation_id: str,
        actor: str | None,
    ) -> Any:
        self._ensure_consumers(service)
        wrapper = self._acquire(service)
        # nameko drops None-valued headers with a warning; leave the actor out instead.
        data = {"correlation_id": correlation_id}
        if actor:
            data["actor"] = actor
        wrapper._worker_ctx.data = data
        proxy = ServiceProxy(
            wrapper._worker_ctx,
            service,
            wrapper._reply_listener,
            expiration=self.timeout,
            retry_policy=PUBLISH_RETRY_POLICY,
            # A confirm costs a broker round trip per call; nameko needs it only to detect an
            # unroutable request, which the consumer check above already rules out (a service
            # that stops in between costs one timeout, then 503).
            use_confirms=False,
        )
        try:
            reply = getattr(proxy, method).call_async(**kwargs)
            body = reply.reply_event.wait()
        except UnknownService as exc:
            # Unroutable publish: nothing was delivered and the proxy is intact.
            self._release(wrapper)
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, "no running instance") from exc
        except RpcTimeout as exc:
            # A late reply could still land on this proxy's queue; never reuse it.
            self._discard(wrapper)
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, f"no reply within {self.timeout:g} s") from exc
        except TRANSPORT_ERRORS as exc:
            self._discard(wrapper)
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, "message broker connection lost") from exc
        except BaseException:
            self._discard(wrapper)
            raise
        self._release(wrapper)
        error = body.get("error")
        if error:
            raise deserialize(error)
        return body.get("result")

    def close(self) -> None:
        self._closed = True
        self._drain_idle()
        with self._check_lock:
            if self._check_conn is not None:
                try:
                    self._check_conn.release()
                finally:
                    self._check_conn = None


__all__ = ["RemoteError", "RpcClient", "RpcPool", "ServiceUnavailable"]
