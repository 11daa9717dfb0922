"""Event handlers that never drop a message, never requeue it in a hot loop, and never die with
the broker.

nameko's default (`requeue_on_error=False`) acks and loses an event whose handler raised.
Here a failed event is re-published to a delay queue per back-off step (queue TTL, then dead-
lettered back to the handler's queue); after the last step it goes to the dead-letter exchange
`crm.dlx` (queue `crm.dead-letter`) with the error in its headers. The original is acked only
after the copy is confirmed by the broker.

A message that cannot be an event at all (a body that is not JSON, a content type we do not
accept, an envelope without `event_id`, `event_type` or a `data` object) goes to the dead-letter
queue at once, with its reason: no retry can fix it.

The broker may go away at any moment (a kill -9, a restart): an ack or a requeue that meets a
dead connection is given up (the broker redelivers every unacked message when the consumer
reconnects, and the inbox makes the second delivery harmless), and nameko's queue consumer
reconnects by itself. Nothing here may raise into the container: an exception in a worker's
result handling kills the whole service process.

`stalled_consumers()` tells `/health` about a consumer that holds messages and finishes none.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import amqp.exceptions
import kombu.exceptions
from kombu import Connection, Exchange, Queue
from kombu.pools import producers
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import QueueConsumer

from shared import config, metrics

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0)
DEAD_LETTER_EXCHANGE = "crm.dlx"
DEAD_LETTER_QUEUE = "crm.dead-letter"
ATTEMPT_HEADER = "x-crm-attempt"
ERROR_HEADER = "x-crm-error"
REASON_HEADER = "x-crm-reason"
QUEUE_HEADER = "x-crm-queue"

# What a dead or dying broker connection raises: py-amqp's errors, kombu's, and the socket's
# own (ConnectionResetError, BrokenPipeError, ECONNREFUSED are OSErrors, which py-amqp's
# `ConnectionError`, all nameko catches, is not).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, amqp.exceptions.AMQPError, kombu.exceptions.KombuError,
)


class Unprocessable(Exception):  # noqa: N818 - it names what the message is
    """A handler's verdict that its message can never be handled (data that does not fit its
    schema, a record that does not exist): dead-lettered at once with this reason, never
    retried. Inbound messages from other systems (the ERP's) raise it."""


def settle(action: Callable[[Any], None], message: Any, what: str) -> bool:
    """Ack or requeue `message`; False when the connection is gone (the broker then gives the
    message to a consumer again, which is why every effect is idempotent)."""
    try:
        action(message)
    except BROKER_ERRORS as exc:
        log.warning("could not %s a message: the broker connection is gone (%s); the broker "
                    "will deliver it again", what, exc)
        return False
    return True


# --------------------------------------------------------------------------- progress


def stall_seconds() -> float:
    """How long a consumer may hold a message without finishing any before /health fails.
    Well above an RPC timeout: a handler's remote calls time out and are retried later."""
    return float(config.env("CRM_CONSUMER_STALL_SECONDS", "60"))


@dataclass
class ConsumerProgress:
    """The messages a consumer holds and when it last finished one."""

    queue: str
    in_flight: dict[int, float] = field(default_factory=dict)
    last_finished: float = field(default_factory=time.monotonic)
    finished: int = 0

    def started(self, message: Any) -> None:
        self.in_flight[id(message)] = time.monotonic()

    def done(self, message: Any) -> bool:
        """False when it was done already (or never started)."""
        if self.in_flight.pop(id(message), None) is None:
            return False
        self.last_finished = time.monotonic()
        self.finished += 1
        return True

    def holds(self, message: Any) -> bool:
        return id(message) in self.in_flight

    def stall(self, limit: float, now: float | None = None) -> str | None:
        """Why this consumer is stuck, or None."""
        now = time.monotonic() if now is None else now
        if not self.in_flight:
            return None
        oldest = now - min(self.in_flight.values())
        idle = now - self.last_finished
        if oldest < limit or idle < limit:
            return None
        return (f"{self.queue}: {len(self.in_flight)} messages unfinished, the oldest for "
                f"{oldest:.0f} s, none finished for {idle:.0f} s")


_PROGRESS: dict[int, ConsumerProgress] = {}
_PROGRESS_LOCK = threading.Lock()


def stalled_consumers(limit: float | None = None) -> list[str]:
    """The consumers of this process that hold messages and finished none for `limit`
    seconds (CRM_CONSUMER_STALL_SECONDS), each with its reason."""
    limit = stall_seconds() if limit is None else limit
    with _PROGRESS_LOCK:
        trackers = list(_PROGRESS.values())
    return [reason for tracker in trackers if (reason := tracker.stall(limit))]


# --------------------------------------------------------------------------- plumbing


class ConfirmedPublisher:
    """Re-routes received messages, unchanged, waiting for the broker's confirm of each."""

    def __init__(self, amqp_uri: str):
        self.connection = Connection(
            amqp_uri, transport_options={"confirm_publish": True}, connect_timeout=10
        )

    def publish_to(
        self, exchange: Exchange | str, routing_key: str, body: bytes | str, headers: dict,
        content_type: str | None = "application/json", content_encoding: str | None = "utf-8",
    ) -> None:
        with producers[self.connection].acquire(block=True, timeout=30) as producer:
            producer.publish(
                body.encode("utf-8") if isinstance(body, str) else body,
                exchange=exchange,
                routing_key=routing_key,
                content_type=content_type,
                content_encoding=content_encoding,
                delivery_mode=2,
                headers=headers,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )

    def close(self) -> None:
        try:
            self.connection.release()
        except BROKER_ERRORS:  # already broken
            log.debug("closing the dead-letter publisher failed", exc_info=True)


def dead_letter_exchange() -> Exchange:
    return Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True)


def retry_queue(queue_name: str, delay: float) -> Queue:
    return Queue(
        f"{queue_name}.retry.{int(delay * 1000)}ms",
        durable=True,
        queue_arguments={
            "x-message-ttl": int(delay * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue_name,
        },
    )


class SafeQueueConsumer(QueueConsumer):
    """nameko's queue consumer (which reconnects by itself), with acks and requeues that a dead
    connection cannot turn into a dead process, and undecodable messages handed to their
    entrypoint's `handle_undecodable` instead of being lost."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            handler = getattr(provider, "handle_undecodable", None)
            if handler is not None:
                consumer.on_decode_error = handler
        return consumers

    def ack_message(self, message) -> None:
        settle(super().ack_message, message, "ack")

    def requeue_message(self, message) -> None:
        settle(super().requeue_message, message, "requeue")


def envelope_problem(body: Any) -> str | None:
    """Why a decoded body is not an event envelope, or None."""
    if not isinstance(body, dict):
        return f"the body is a JSON {type(body).__name__}, not an event envelope object"
    missing = [name for name in ("event_id", "event_type")
               if not isinstance(body.get(name), str) or not body.get(name)]
    if missing:
        return f"the envelope has no {' or '.join(missing)}"
    if not isinstance(body.get("data"), dict):
        return "the envelope has no data object"
    return None


class ReliableEventHandler(EventHandler):
    """`@event_handler(service, event_type)` with retries and a dead-letter queue.

    The back-off steps come from the config key `EVENT_RETRY_BACKOFF` (seconds), so tests can
    shorten them.
    """

    queue_consumer = SafeQueueConsumer()

    def setup(self) -> None:
        super().setup()
        self._setup_reliability(declare=())

    def _setup_reliability(self, declare: tuple[Queue, ...]) -> None:
        self.backoff = tuple(self.container.config.get("EVENT_RETRY_BACKOFF", DEFAULT_BACKOFF))
        amqp_uri = self.container.config["AMQP_URI"]
        self.publisher = ConfirmedPublisher(amqp_uri)
        self.progress = ConsumerProgress(self.queue.name)
        dlq = Queue(DEAD_LETTER_QUEUE, dead_letter_exchange(), routing_key="#", durable=True)
        with Connection(amqp_uri) as conn:
            channel = conn.default_channel
            dlq.bind(channel).declare()
            for queue in declare:
                queue.bind(channel).declare()
            for delay in self.backoff:
                retry_queue(self.queue.name, delay).bind(channel).declare()

    def start(self) -> None:
        with _PROGRESS_LOCK:
            _PROGRESS[id(self)] = self.progress
        super().start()

    def stop(self) -> None:
        super().stop()
        with _PROGRESS_LOCK:
            _PROGRESS.pop(id(self), None)
        self.publisher.close()

    def kill(self) -> None:
        with _PROGRESS_LOCK:
            _PROGRESS.pop(id(self), None)
        super().kill()

    # ---- receiving -------------------------------------------------------------------------

    def handle_message(self, body, message) -> None:
        self.progress.started(message)
        problem = envelope_problem(body)
        if problem is not None:
            self._dead_letter(message, message.body, "not an event", problem,
                              content_type=message.content_type,
                              content_encoding=message.content_encoding)
            return
        try:
            worker_ctx = self.container.spawn_worker(
                self, (body,), {}, context_data=self.unpack_message_headers(message),
                handle_result=partial(self.handle_result, message))
        except ContainerBeingKilled:
            self.progress.done(message)
            self.queue_consumer.requeue_message(message)
            return
        worker = self.container._worker_threads.get(worker_ctx)  # nameko keeps no other handle
        if worker is not None:
            worker.link(self._worker_exited, message)

    def _worker_exited(self, worker, message) -> None:
        """A worker whose handler escaped nameko's `except Exception` (eventlet's Timeout is a
        BaseException) never reported its result: its message would stay unacked for ever and
        hold a prefetch slot. Treat it as a failed attempt."""
        if not self.progress.holds(message):
            return
        try:
            worker.wait()
        except ContainerBeingKilled:
            return
        except BaseException as exc:  # noqa: BLE001 - whatever killed the worker is its error
            if type(exc).__name__ == "GreenletExit":
                return  # the container is being killed: the broker redelivers the message
            log.error("%s died with %s; retrying its event", self.method_name,
                      type(exc).__name__, exc_info=True)
            self.handle_message_processed(message, None, sys.exc_info())
            return
        # It returned without reporting (it should not): settle it as handled.
        self.handle_message_processed(message, None, None)

    def handle_undecodable(self, message, exc: Exception) -> None:
        """kombu's decode error callback: a body or content type no handler can read."""
        self.progress.started(message)
        self._dead_letter(message, message.body, "undecodable",
                          f"{type(exc).__name__}: {exc}",
                          content_type=message.content_type,
                          content_encoding=message.content_encoding)

    # ---- settling --------------------------------------------------------------------------

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        service = self.container.service_name
        if exc_info is None:
            metrics.EVENTS_CONSUMED.labels(service, self.method_name, "ok").inc()
            self.progress.done(message)
            self.queue_consumer.ack_message(message)
            return
        metrics.EVENTS_CONSUMED.labels(service, self.method_name, "error").inc()
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 0)) + 1
        error = "".join(traceback.format_exception_only(*exc_info[:2]))[-2000:]
        if isinstance(exc_info[1], Unprocessable):
            self._dead_letter(message, message.body, "unprocessable", str(exc_info[1]),
                              attempt=attempt)
            return
        if attempt > len(self.backoff):
            self._dead_letter(message, message.body, f"failed {attempt} times", error,
                              attempt=attempt)
            return
        headers = {**(message.headers or {}), ATTEMPT_HEADER: attempt, ERROR_HEADER: error,
                   QUEUE_HEADER: self.queue.name}
        delay = self.backoff[attempt - 1]
        try:
            self.publisher.publish_to("", retry_queue(self.queue.name, delay).name,
                                      message.body, headers)
        except Exception:  # noqa: BLE001 - the broker, most likely
            # Could not park the copy: give the event back to the queue rather than lose it.
            log.exception("could not re-publish a failed event; requeueing it")
            self.progress.done(message)
            self.queue_consumer.requeue_message(message)
            return
        metrics.EVENTS_RETRIED.labels(service, self.method_name).inc()
        log.warning("%s failed (attempt %s); retrying in %ss", self.method_name, attempt, delay)
        self.progress.done(message)
        self.queue_consumer.ack_message(message)

    def _dead_letter(
        self, message, body: bytes | str, reason: str, error: str, attempt: int | None = None,
        content_type: str | None = "application/json", content_encoding: str | None = "utf-8",
    ) -> None:
        """Park the message in `crm.dead-letter` with why, then ack it."""
        service = self.container.service_name
        headers = {**(message.headers or {}), REASON_HEADER: reason, ERROR_HEADER: error[-2000:],
                   QUEUE_HEADER: self.queue.name}
        if attempt is not None:
            headers[ATTEMPT_HEADER] = attempt
        try:
            self.publisher.publish_to(dead_letter_exchange(), self.queue.name, body, headers,
                                      content_type=content_type,
                                      content_encoding=content_encoding)
        except Exception:  # noqa: BLE001 - the broker, most likely
            log.exception("could not dead-letter a message; requeueing it")
            self.progress.done(message)
            self.queue_consumer.requeue_message(message)
            # Not a hot loop in practice: this fails only while the broker is failing.
            time.sleep(1.0)
            return
        metrics.EVENTS_DEAD_LETTERED.labels(service, self.method_name).inc()
        log.error("%s: message dead-lettered (%s): %s", self.method_name, reason,
                  error.strip()[:500])
        self.progress.done(message)
        self.queue_consumer.ack_message(message)


event_handler = ReliableEventHandler.decorator


ALL_EVENTS_EXCHANGE = "crm.events"


class AllEventsHandler(ReliableEventHandler):
    """`@all_events_handler("rules.all-events")`: one durable queue bound with `#` to
    `crm.events`, into which every service's outbox binds its `<service>.events` exchange.

    The routing key is the event type and the envelope's `producer` names the service. Retries
    and dead letters are those of `ReliableEventHandler`.
    """

    def __init__(self, queue_name: str, **kwargs) -> None:
        self.queue_name = queue_name
        super().__init__("*", "#", **kwargs)

    def setup(self) -> None:
        exchange = Exchange(ALL_EVENTS_EXCHANGE, type="topic", durable=True, auto_delete=False)
        self.queue = Queue(self.queue_name, exchange=exchange, routing_key="#", durable=True,
                           auto_delete=False)
        # Consumer.setup (not EventHandler.setup, which would name and bind its own queue).
        self.queue_consumer.register_provider(self)
        self._setup_reliability(declare=(self.queue,))


all_events_handler = AllEventsHandler.decorator
