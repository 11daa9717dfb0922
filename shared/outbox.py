"""Transactional outbox: events are rows written in the transaction of the state change.

A relay greenlet publishes them with publisher confirms right after the worker commits and
marks them sent; a periodic sweep publishes what a dead process left behind and purges old rows.
A rolled-back change leaves no row, so nothing is published for it; a crash after commit leaves
the row, so nothing is lost. Consumers must be idempotent (at least once).
"""

from __future__ import annotations

import json
import logging
import weakref
from datetime import timedelta
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Exchange
from kombu.pools import producers
from marshmallow import Schema
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from shared import config, metrics
from shared.context import context_of
from shared.db import UTCDateTime, get_engine
from shared.envelope import context_headers, event_exchange_name, new_envelope, utcnow
from shared.errors import ValidationFailed

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0
SWEEP_GRACE = timedelta(seconds=5)
RETENTION = timedelta(days=7)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("envelope", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("published_at", UTCDateTime(), nullable=True),
        Index("ix_outbox_published_at", "published_at"),
    )


class ConfirmedPublisher:
    """Publishes persistent messages and waits for the broker's confirm of each."""

    def __init__(self, amqp_uri: str):
        self.connection = Connection(
            amqp_uri, transport_options={"confirm_publish": True}, connect_timeout=10
        )

    def publish(
        self, exchange: str, routing_key: str, body: dict, headers: dict, message_id: str
    ) -> None:
        topic = Exchange(exchange, type="topic", durable=True)
        self.publish_to(topic, routing_key, body, headers, message_id=message_id, declare=[topic])

    def publish_to(
        self, exchange: Exchange | str, routing_key: str, body: Any, headers: dict, **options: Any
    ) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):  # an encoded message being re-routed: pass it untouched
            options.update(content_type="application/json", content_encoding="utf-8")
        else:
            options["serializer"] = "json"
        with producers[self.connection].acquire(block=True, timeout=30) as producer:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                delivery_mode=2,
                headers=headers,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                **options,
            )

    def close(self) -> None:
        self.connection.release()


class OutboxRelay:
    def __init__(self, service: str, engine: Engine, table: Table, publisher: ConfirmedPublisher):
        self.service = service
        self.engine = engine
        self.table = table
        self.publisher = publisher

    def publish_pending(
        self, event_ids: list[str] | None = None, grace: timedelta | None = None, limit: int = 500
    ) -> int:
        """Publish unsent rows (those named, or those older than `grace`); returns how many.

        No transaction is held while publishing: under eventlet a yield inside a SQLite write
        transaction would block every other writer of the file.
        """
        t = self.table
        query = select(t.c.event_id, t.c.event_type, t.c.envelope).where(t.c.published_at.is_(None))
        if event_ids is not None:
            query = query.where(t.c.event_id.in_(event_ids))
        if grace is not None:
            query = query.where(t.c.created_at < utcnow() - grace)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.seq).limit(limit)).all()
        sent: list[str] = []
        try:
            for event_id, event_type, body in rows:
                envelope = json.loads(body)
                self.publisher.publish(
                    event_exchange_name(self.service),
                    event_type,
                    envelope,
                    context_headers(envelope),
                    event_id,
                )
                sent.append(event_id)
                metrics.EVENTS_PUBLISHED.labels(self.service, event_type).inc()
        finally:
            if sent:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(t).where(t.c.event_id.in_(sent)).values(published_at=utcnow())
                    )
        return len(sent)

    def backlog(self) -> int:
        t = self.table
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            ).scalar_one()

    def purge(self, older_than: timedelta = RETENTION) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                delete(t).where(
                    t.c.published_at.is_not(None), t.c.published_at < utcnow() - older_than
                )
            )


class EventRecorder:
    """What an entrypoint sees: `record(session, event_type, data)` inside its transaction."""

    def __init__(self, service: str, table: Table, schemas: dict[str, type[Schema]], ctx) -> None:
        self.service = service
        self.table = table
        self.schemas = schemas
        self.ctx = ctx
        self.recorded: list[str] = []

    def record(self, session: Session, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        schema_cls = self.schemas.get(event_type)
        if schema_cls is None:
            raise ValueError(f"{self.service} has no schema for event {event_type!r}")
        problems = schema_cls().validate(data)
        if problems:  # a bug of the producer: the catalogue promises integrators this shape
            raise ValidationFailed.for_fields(
                problems, f"event {event_type} does not fit its schema"
            )
        envelope = new_envelope(self.service, event_type, data, self.ctx)
        session.execute(
            self.table.insert().values(
                event_id=envelope["event_id"],
                event_type=event_type,
                envelope=json.dumps(envelope, ensure_ascii=False),
                created_at=utcnow(),
            )
        )
        self.recorded.append(envelope["event_id"])
        return envelope


class EventOutbox(DependencyProvider):
    """nameko dependency: records events in the worker's transaction and relays them."""

    def __init__(self, service: str, table: Table, schemas: dict[str, type[Schema]]):
        self.service = service
        self.table = table
        self.schemas = schemas
        self._recorders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._wakeups: LightQueue = LightQueue()
        self._relay_thread = None
        self._sweeps = 0

    def setup(self) -> None:
        engine = get_engine(config.database_url(self.service))
        publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        self.relay = OutboxRelay(self.service, engine, self.table, publisher)

    def start(self) -> None:
        self._relay_thread = self.container.spawn_managed_thread(self._run_relay)

    def stop(self) -> None:
        self._drain_wakeups(block=False)
        if self._relay_thread is not None:
            self._relay_thread.kill()
        self.relay.publisher.close()

    def kill(self) -> None:
        if self._relay_thread is not None:
            self._relay_thread.kill()

    def get_dependency(self, worker_ctx) -> EventRecorder:
        recorder = EventRecorder(self.service, self.table, self.schemas, context_of(worker_ctx))
        self._recorders[worker_ctx] = recorder
        return recorder

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        recorder = self._recorders.pop(worker_ctx, None)
        if recorder and recorder.recorded:
            # Rows of a failed worker were rolled back; asking for them finds nothing.
            self._wakeups.put(recorder.recorded)

    def _drain_wakeups(self, block: bool) -> None:
        ids: list[str] = []
        try:
            ids.extend(self._wakeups.get(block=block, timeout=SWEEP_INTERVAL if block else None))
            while True:
                ids.extend(self._wakeups.get_nowait())
        except Empty:
            pass
        if ids:
            for start in range(0, len(ids), 500):
                self.relay.publish_pending(ids[start : start + 500])
        elif block:
            self._sweep()

    def _sweep(self) -> None:
        while self.relay.publish_pending(grace=SWEEP_GRACE) == 500:
            eventlet.sleep(0)
        metrics.OUTBOX_BACKLOG.labels(self.service).set(self.relay.backlog())
        self._sweeps += 1
        if self._sweeps % 720 == 1:  # about hourly
            self.relay.purge()

    def _run_relay(self) -> None:
        while True:
            try:
                self._drain_wakeups(block=True)
            except Exception:  # the sweep retries what failed; the relay must not die
                log.exception("outbox relay of %s failed; retrying", self.service)
                eventlet.sleep(1)
