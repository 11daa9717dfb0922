"""The gateway's RPC client: nameko's wire protocol over long-lived py-amqp links.

Each gateway process keeps a pool of links; a link is one broker connection with its own
exclusive reply queue, lent to one request thread at a time. A call publishes the request to the
`nameko-rpc` exchange (headers `nameko.correlation_id` and `nameko.actor` become the service's
call context) and reads frames until the reply with its correlation id arrives. nameko's own
standalone proxy does the same but builds a kombu connection and producer for every publish,
which was most of the gateway's CPU per request.

A call must never hang and must never run later behind the client's back: before publishing we
check that the service's RPC queue has a consumer (cached briefly), the request is mandatory (an
unroutable one comes back at once) and carries a TTL equal to the call timeout, so that a service
which comes back after the client got its 503 finds nothing to do.

The py-amqp links are the `rpc_client` fast path (`shared.fastpaths`). With it off, each link of
the pool is a started nameko `ClusterRpcProxy` (nameko's standalone client), publishing the same
request (mandatory, transient, the same TTL and context headers) through nameko's publisher; the
pool, its consumer check and its errors stay the same.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import amqp
import amqp.exceptions
import kombu
import kombu.exceptions
from kombu.utils import json as kombu_json
from nameko.exceptions import (
    BadRequest,
    RemoteError,
    RpcTimeout,
    UnknownService,
    deserialize,
)
from nameko.rpc import ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy

from shared import config as shared_config
from shared import fastpaths
from shared.errors import CrmError  # importing it registers the typed errors with nameko
from shared.rpc import broker_connection

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes socket.timeout
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
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


class Unroutable(Exception):
    """The broker returned a request: no queue is bound for the service."""


class LinkBroken(Exception):
    """The request could not be published: the link's connection is gone (say the broker
    restarted while the link was idle in the pool)."""


class RemoteFailure(Exception):
    """The service answered with an error (`error`, deserialised); the link is intact."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class Link(Protocol):
    """One request at a time over the broker. `call` returns the result or raises
    RemoteFailure, Unroutable, LinkBroken (nothing was sent), TimeoutError or a transport
    error."""

    def call(self, service: str, method: str, kwargs: Mapping[str, Any],
             context: dict[str, str], timeout: float) -> Any: ...

    def close(self) -> None: ...


class _Link:
    """One broker connection with an exclusive reply queue; used by one thread at a time."""

    def __init__(self, config: Mapping[str, Any], connect_timeout: float):
        self._connection = broker_connection(dict(config), connect_timeout)
        try:
            self._connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            self._amqp: amqp.Connection = self._connection.connection
            self._channel = self._amqp.channel()
            self._channel.exchange_declare(RPC_EXCHANGE, "topic", durable=True,
                                           auto_delete=False)
            self._reply_to = uuid.uuid4().hex
            reply_queue = f"rpc.reply-gateway-{self._reply_to}"
            self._channel.queue_declare(reply_queue, exclusive=True, auto_delete=True)
            self._channel.queue_bind(reply_queue, RPC_EXCHANGE, routing_key=self._reply_to)
            self._channel.basic_consume(reply_queue, no_ack=True, callback=self._on_reply)
            self._channel.events["basic_return"].add(self._on_return)
        except BaseException:
            self.close()
            raise
        self._waiting: str | None = None
        self._reply: dict[str, Any] | None = None
        self._returned = False

    def _on_reply(self, message: amqp.Message) -> None:
        # Anything but the awaited reply is a leftover and is dropped.
        if message.properties.get("correlation_id") == self._waiting:
            self._reply = kombu_json.loads(message.body)

    def _on_return(self, exc, exchange, routing_key, message: amqp.Message) -> None:
        if message.properties.get("correlation_id") == self._waiting:
            self._returned = True

    def call(self, service: str, method: str, kwargs: Mapping[str, Any],
             context: dict[str, str], timeout: float) -> Any:
        reply = self._round_trip(
            f"{service}.{method}",
            kombu_json.dumps({"args": [], "kwargs": dict(kwargs)}).encode(),
            {f"nameko.{key}": value for key, value in context.items()}, timeout)
        error = reply.get("error")
        if error:
            raise RemoteFailure(deserialize(error))
        return reply.get("result")

    def _round_trip(self, routing_key: str, body: bytes, headers: dict[str, str],
                    timeout: float) -> dict[str, Any]:
        """Publish one request and wait for its reply; socket.timeout after `timeout`."""
        correlation_id = uuid.uuid4().hex
        self._waiting, self._reply, self._returned = correlation_id, None, False
        message = amqp.Message(
            body, content_type="application/json", content_encoding="utf-8",
            reply_to=self._reply_to, correlation_id=correlation_id, application_headers=headers,
            expiration=str(int(timeout * 1000)), delivery_mode=1,
        )
        try:
            self._channel.basic_publish(message, exchange=RPC_EXCHANGE,
                                        routing_key=routing_key, mandatory=True)
        except TRANSPORT_ERRORS as exc:
            raise LinkBroken(str(exc)) from exc
        deadline = time.monotonic() + timeout
        while self._reply is None:
            if self._returned:
                raise Unroutable(routing_key)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            self._amqp.drain_events(timeout=remaining)
        return self._reply

    def close(self) -> None:
        try:
            self._connection.release()
        except Exception:  # noqa: BLE001 - a broken link may fail to close; drop it anyway
            log.debug("closing an RPC link failed", exc_info=True)


class _NamekoLink:
    """The library's path: a started nameko standalone proxy, used by one thread at a time.

    Its context is the dict given to nameko as `context_data`, refilled for every call: nameko
    reads it when it publishes (as `nameko.correlation_id` and `nameko.actor` headers, with
    nameko's own `nameko.call_id_stack`)."""

    def __init__(self, config: Mapping[str, Any], timeout: float):
        self._context: dict[str, str] = {}
        self._timeout = timeout
        self._proxy = ClusterRpcProxy(dict(config), context_data=self._context, timeout=timeout)
        self._cluster = self._proxy.start()
        self._services: dict[str, ServiceProxy] = {}

    def _service(self, service: str) -> ServiceProxy:
        proxy = self._services.get(service)
        if proxy is None:
            cluster_proxy = self._cluster[service]
            # As the fast path and the services' rpc_proxy: a transient request that expires
            # with the call, and one quick publish retry instead of nameko's slower policy.
            proxy = self._services[service] = ServiceProxy(
                cluster_proxy.worker_ctx, service, cluster_proxy.reply_listener,
                delivery_mode=1, expiration=self._timeout,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0,
                              "interval_max": 0},
            )
        return proxy

    def call(self, service: str, method: str, kwargs: Mapping[str, Any],
             context: dict[str, str], timeout: float) -> Any:
        self._context.clear()
        self._context.update(context)
        try:
            return getattr(self._service(service), method)(**kwargs)
        except UnknownService as exc:
            raise Unroutable(service) from exc
        except RpcTimeout as exc:
            raise TimeoutError() from exc
        except (RemoteError, BadRequest, CrmError) as exc:  # what nameko deserialises to
            raise RemoteFailure(exc) from None
        except RuntimeError as exc:  # nameko: "This consumer has been disconnected"
            raise ConnectionError(str(exc)) from exc

    def close(self) -> None:
        try:
            self._proxy.stop()
        except Exception:  # noqa: BLE001 - a broken proxy may fail to stop; drop it anyway
            log.debug("stopping a nameko RPC proxy failed", exc_info=True)


class RpcPool:
    """A thread-safe pool of broker links, created lazily: py-amqp links (the `rpc_client`
    fast path) or nameko's standalone proxies (`fast=False`, or the fast path off)."""

    def __init__(
        self,
        nameko_config: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_idle: int = 16,
        consumer_cache_seconds: float = 1.5,
        connect_timeout: float = 2.0,
        fast: bool | None = None,
    ):
        self.config = nameko_config or shared_config.nameko_config()
        self.fast = fastpaths.enabled("rpc_client") if fast is None else fast
        self.timeout = timeout if timeout is not None else shared_config.rpc_timeout()
        self.max_idle = max_idle
        self.consumer_cache_seconds = consumer_cache_seconds
        self.connect_timeout = connect_timeout
        self._idle: queue.LifoQueue[Link] = queue.LifoQueue()
        self._check_lock = threading.Lock()
        self._check_conn: kombu.Connection | None = None
        self._consumers_seen: dict[str, float] = {}
        self._closed = False

    # -- broker checks ---------------------------------------------------------------------

    def _connection(self) -> kombu.Connection:
        if self._check_conn is None:
            conn = broker_connection(self.config, self.connect_timeout)
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

    def _acquire(self, service: str) -> Link:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            if self.fast:
                return _Link(self.config, self.connect_timeout)
            return _NamekoLink(self.config, self.timeout)
        except TRANSPORT_ERRORS as exc:
            raise ServiceUnavailable(service, "message broker unreachable") from exc

    def _release(self, link: Link) -> None:
        if self._closed or self._idle.qsize() >= self.max_idle:
            link.close()
            return
        self._idle.put(link)

    def _drain_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
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
        context = {"correlation_id": correlation_id}
        if actor:
            context["actor"] = actor
        link = self._acquire(service)
        try:
            try:
                result = link.call(service, method, kwargs, context, self.timeout)
            except LinkBroken:
                # Nothing was sent. The idle links are as stale as this one: once more on a
                # new link, so that a broker restart costs no request a 503.
                link.close()
                self._drain_idle()
                link = self._acquire(service)
                result = link.call(service, method, kwargs, context, self.timeout)
        except RemoteFailure as failure:
            # The service answered: the link is intact, and the error is the caller's.
            self._release(link)
            raise failure.error from None
        except Unroutable as exc:
            # Nothing was delivered and the link is intact.
            self._release(link)
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, "no running instance") from exc
        except TimeoutError as exc:
            # A late reply could still land on this link's queue; never reuse it.
            link.close()
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, f"no reply within {self.timeout:g} s") from exc
        except (LinkBroken, *TRANSPORT_ERRORS) as exc:
            link.close()
            self._consumers_seen.pop(service, None)
            raise ServiceUnavailable(service, "message broker connection lost") from exc
        except BaseException:
            link.close()
            raise
        self._release(link)
        return result

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
