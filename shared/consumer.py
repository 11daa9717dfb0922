"""Event handlers that never drop a failing event and never requeue it in a hot loop.

nameko's default (`requeue_on_error=False`) acks and loses an event whose handler raised.
Here a failed event is re-published to a delay queue per back-off step (queue TTL, then dead-
lettered back to the handler's queue); after the last step it goes to the dead-letter exchange
`crm.dlx` (queue `crm.dead-letter`) with the error in its headers. The original is acked only
after the copy is confirmed by the broker.
"""

from __future__ import annotations

import logging
import traceback

from kombu import Connection, Exchange, Queue
from kombu.pools import producers
from nameko.events import EventHandler

from shared import metrics

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0)
DEAD_LETTER_EXCHANGE = "crm.dlx"
DEAD_LETTER_QUEUE = "crm.dead-letter"
ATTEMPT_HEADER = "x-crm-attempt"


class ConfirmedPublisher:
    """Re-routes received messages, unchanged, waiting for the broker's confirm of each."""

    def __init__(self, amqp_uri: str):
        self.connection = Connection(
            amqp_uri, transport_options={"confirm_publish": True}, connect_timeout=10
        )

    def publish_to(
        self, exchange: Exchange | str, routing_key: str, body: bytes | str, headers: dict
    ) -> None:
        with producers[self.connection].acquire(block=True, timeout=30) as producer:
            producer.publish(
                body.encode("utf-8") if isinstance(body, str) else body,
                exchange=exchange,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                headers=headers,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )

    def close(self) -> None:
        self.connection.release()


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


class ReliableEventHandler(EventHandler):
    """`@event_handler(service, event_type)` with retries and a dead-letter queue.

    The back-off steps come from the config key `EVENT_RETRY_BACKOFF` (seconds), so tests can
    shorten them.
    """

    def setup(self) -> None:
        super().setup()
        self.backoff = tuple(self.container.config.get("EVENT_RETRY_BACKOFF", DEFAULT_BACKOFF))
        amqp_uri = self.container.config["AMQP_URI"]
        self.publisher = ConfirmedPublisher(amqp_uri)
        dlq = Queue(DEAD_LETTER_QUEUE, dead_letter_exchange(), routing_key="#", durable=True)
        with Connection(amqp_uri) as conn:
            channel = conn.default_channel
            dlq.bind(channel).declare()
            for delay in self.backoff:
                retry_queue(self.queue.name, delay).bind(channel).declare()

    def stop(self) -> None:
        super().stop()
        self.publisher.close()

    def handle_message_processed(self, message, result=None, exc_info=None) -> None:
        service = self.container.service_name
        if exc_info is None:
            metrics.EVENTS_CONSUMED.labels(service, self.method_name, "ok").inc()
            self.queue_consumer.ack_message(message)
            return
        metrics.EVENTS_CONSUMED.labels(service, self.method_name, "error").inc()
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 0)) + 1
        headers = dict(message.headers or {})
        headers[ATTEMPT_HEADER] = attempt
        headers["x-crm-error"] = "".join(traceback.format_exception_only(*exc_info[:2]))[-2000:]
        headers["x-crm-queue"] = self.queue.name
        try:
            if attempt <= len(self.backoff):
                delay = self.backoff[attempt - 1]
                self.publisher.publish_to("", retry_queue(self.queue.name, delay).name,
                                          message.body, headers)
                metrics.EVENTS_RETRIED.labels(service, self.method_name).inc()
                log.warning("%s failed (attempt %s); retrying in %ss", self.method_name,
                            attempt, delay)
            else:
                self.publisher.publish_to(dead_letter_exchange(), self.queue.name,
                                          message.body, headers)
                metrics.EVENTS_DEAD_LETTERED.labels(service, self.method_name).inc()
                log.error("%s failed %s times; dead-lettered", self.method_name, attempt)
        except Exception:
            # Could not park the copy: give the event back to the queue rather than lose it.
            log.exception("could not re-publish a failed event; requeueing it")
            self.queue_consumer.requeue_message(message)
            return
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
        self.backoff = tuple(self.container.config.get("EVENT_RETRY_BACKOFF", DEFAULT_BACKOFF))
        amqp_uri = self.container.config["AMQP_URI"]
        self.publisher = ConfirmedPublisher(amqp_uri)
        dlq = Queue(DEAD_LETTER_QUEUE, dead_letter_exchange(), routing_key="#", durable=True)
        with Connection(amqp_uri) as conn:
            channel = conn.default_channel
            dlq.bind(channel).declare()
            self.queue.bind(channel).declare()
            for delay in self.backoff:
                retry_queue(self.queue.name, delay).bind(channel).declare()


all_events_handler = AllEventsHandler.decorator
