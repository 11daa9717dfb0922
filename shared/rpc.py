"""The RPC entrypoint of our services: nameko's, with leaner replies.

nameko's responder builds a kombu connection, producer and publisher for every reply, waits for
the broker's confirm and serialises the result twice. A reply is transient: if the broker loses
it, the caller's timeout answers for it. So each service process keeps one publishing link to
the broker for its replies (shared by its workers, one publish at a time) and sends each reply
once, unconfirmed and not persistent. Every service uses this `rpc` and not nameko's: the two
would be two consumers of one `rpc-<service>` queue, each not knowing the other's methods.

The lean replies and the cached signature check are the `rpc_replies` fast path
(`shared.fastpaths`). With it off, this entrypoint replies through nameko's own responder
(persistent, confirmed, a publisher per reply) and checks signatures as nameko does; the body,
the correlation id and the errors of a reply are the same.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from typing import Any

import amqp
import eventlet
import kombu
from kombu.utils import json as kombu_json
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, LOGIN_METHOD_CONFIG_KEY
from nameko.exceptions import (
    IncorrectSignature,
    UnknownService,
    UnserializableValueError,
    serialize,
)
from nameko.rpc import ReplyListener, Rpc, RpcConsumer, RpcProxy, get_rpc_exchange

from shared import config as shared_config
from shared import fastpaths
from shared.consumer import BROKER_ERRORS, SafeQueueConsumer, settle
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

JSON = "application/json"


def broker_connection(config: dict, connect_timeout: float = 5.0) -> kombu.Connection:
    """A kombu connection (not yet open) as nameko's configuration describes it: URI, TLS and
    login method. Links that publish or consume by hand take their py-amqp channel from it."""
    return kombu.Connection(
        config[AMQP_URI_CONFIG_KEY],
        ssl=config.get(AMQP_SSL_CONFIG_KEY) or False,
        login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        connect_timeout=connect_timeout,
    )


class ReplyLink:
    """One broker connection that publishes replies. A publish that meets a dead link
    reconnects; while the broker stays away the reply is given up after `give_up_after`
    seconds (replies are transient: the caller's timeout answers for a lost one) and the
    service goes on. It never raises: an exception here used to end the whole process."""

    def __init__(self, config: dict, exchange: str, give_up_after: float = 5.0):
        self.config = config
        self.exchange = exchange
        self.give_up_after = give_up_after
        # nameko monkey-patches threading, so this lock is a green one under eventlet.
        self._lock = threading.Lock()
        self._connection: kombu.Connection | None = None
        self._channel: amqp.Channel | None = None
        self.lost = 0  # replies given up

    def _open(self) -> amqp.Channel:
        if self._channel is None:
            self._connection = broker_connection(self.config, connect_timeout=2.0)
            self._connection.ensure_connection(max_retries=1)
            self._channel = self._connection.connection.channel()
        return self._channel

    def publish(self, body: bytes, routing_key: str, correlation_id: str | None) -> bool:
        """True when the reply went to the broker."""
        message = amqp.Message(body, content_type=JSON, content_encoding="utf-8",
                               correlation_id=correlation_id, delivery_mode=1)
        deadline = time.monotonic() + self.give_up_after
        with self._lock:
            while True:
                try:
                    self._open().basic_publish(message, exchange=self.exchange,
                                               routing_key=routing_key)
                    return True
                except BROKER_ERRORS as exc:
                    self.close()
                    if time.monotonic() >= deadline:
                        self.lost += 1
                        log.warning("reply %s not sent: the broker is unreachable (%s); the "
                                    "caller's timeout answers for it", correlation_id, exc)
                        return False
                    log.warning("reply link to the broker lost (%s); reconnecting", exc)
                    time.sleep(0.2)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - already broken
                log.debug("closing the reply link failed", exc_info=True)


def reply_body(result: object, exc_info: tuple | None) -> tuple[bytes, object, tuple | None]:
    """The reply's JSON body; a result that cannot be serialised becomes nameko's error."""
    error = serialize(exc_info[1]) if exc_info is not None else None
    try:
        return kombu_json.dumps({"result": result, "error": error}).encode(), result, exc_info
    except Exception:  # noqa: BLE001 - any encoder failure is the caller's problem, not ours
        exc_info = sys.exc_info()
        error = serialize(UnserializableValueError(result))
        return kombu_json.dumps({"result": None, "error": error}).encode(), None, exc_info


class RpcQueueConsumer(SafeQueueConsumer):
    """The queue consumer of RPC requests and of the replies to this service's own calls: one
    of its own (nameko shares an extension per class), so that events held by their handlers
    never take the prefetch slots a reply needs; and safe, as an ack that meets a dead broker
    connection must not end the process (nameko's reply listener acks every reply at once)."""


class ReplyingRpcConsumer(RpcConsumer):
    queue_consumer = RpcQueueConsumer()
    replies: ReplyLink | None = None  # None: nameko's responder replies (fast path off)
    _lost_by_nameko = 0

    @property
    def replies_lost(self) -> int:
        """Replies given up because the broker was unreachable, on either path."""
        return self._lost_by_nameko + (self.replies.lost if self.replies is not None else 0)

    def setup(self):
        super().setup()
        if fastpaths.enabled("rpc_replies"):
            self.replies = ReplyLink(self.container.config, get_rpc_exchange(
                self.container.config).name)

    def stop(self):
        super().stop()
        if self.replies is not None:
            self.replies.close()

    def handle_result(self, message, result, exc_info):
        if self.replies is None or message.properties.get("content_type") != JSON:
            try:
                return super().handle_result(message, result, exc_info)  # nameko's own way
            except BROKER_ERRORS as exc:
                self._lost_by_nameko += 1
                log.warning("reply not sent: the broker is unreachable (%s)", exc)
                return result, exc_info
        body, result, exc_info = reply_body(result, exc_info)
        self.replies.publish(body, message.properties["reply_to"],
                             message.properties.get("correlation_id"))
        # A dead connection cannot take the ack: the broker gives the request again (if its
        # TTL allows), and the effect is idempotent.
        settle(self.queue_consumer.ack_message, message, "ack")
        return result, exc_info

    def requeue_message(self, message):
        settle(self.queue_consumer.requeue_message, message, "requeue")


class ServiceRpc(Rpc):
    rpc_consumer = ReplyingRpcConsumer()

    _signature: inspect.Signature | None = None  # None: nameko checks (fast path off)

    def setup(self):
        super().setup()
        if fastpaths.enabled("rpc_replies"):
            self._signature = inspect.signature(getattr(self.container.service_cls,
                                                        self.method_name))

    def check_signature(self, args, kwargs):
        if self._signature is None:
            return super().check_signature(args, kwargs)
        # nameko's check rebuilds the method's signature on every call (inspect.getcallargs).
        try:
            self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None


rpc = ServiceRpc.decorator


class SafeReplyListener(ReplyListener):
    """nameko's listener for the replies to our calls, on the safe queue consumer: its ack of a
    reply used to meet a broker killed a moment before and end the whole service."""

    queue_consumer = RpcQueueConsumer()


class SafeRpcProxy(RpcProxy):
    rpc_reply_listener = SafeReplyListener()


def rpc_proxy(service: str) -> RpcProxy:
    """A dependency calling another service. Requests are transient, with a TTL of the call
    timeout: the caller's timeout answers for a lost request, and a request nobody took in time
    is dropped rather than run late. They stay confirmed: with the mandatory flag, the confirm
    is what tells an unknown service at once."""
    return SafeRpcProxy(service, delivery_mode=1, expiration=shared_config.rpc_timeout())


def ask(service: str, proxy: Any, command: str, **kwargs: Any) -> Any:
    """One command of `service` through `proxy` (what its `rpc_proxy` dependency gives a
    worker), answered within the RPC timeout. Its typed errors pass through (a NotFound stays a
    NotFound); no answer is a DependencyUnavailable (503) naming the service and why."""
    try:
        reply = getattr(proxy, command).call_async(**kwargs)
        with eventlet.Timeout(shared_config.rpc_timeout()):
            return reply.result()
    except eventlet.Timeout:
        reason = f"no reply within {shared_config.rpc_timeout():g} s"
    except UnknownService:
        reason = "no running instance"
    except BROKER_ERRORS:
        reason = "message broker connection lost"
    raise DependencyUnavailable(
        f"the {service} service is unavailable ({reason}); retry later",
        {"service": service, "reason": reason})
