"""Transactional outbox: events are rows written in the transaction of the state change.

A relay greenlet publishes them with publisher confirms right after the worker commits and
marks them sent; a periodic sweep publishes what a dead process left behind and purges old rows.
A rolled-back change leaves no row, so nothing is published for it; a crash after commit leaves
the row, so nothing is lost. Consumers must be idempotent (at least once).

A confirm says the broker has the message, not that a consumer got it. When the relay's broker
connection breaks, the sweep publishes again what was sent in the REPLAY_WINDOW before the break:
a broker that comes back without what it held (killed before its queues reached the disk, a node
restored empty, a binding only declared again by the reconnection) would otherwise lose events
that no consumer had taken yet. Consumers take an event once by its id, so the copies are free.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Producer
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
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from shared import config, fastpaths, metrics
from shared.amqp_frames import PERSISTENT, PublishEncoder
from shared.context import context_of
from shared.db import UTCDateTime, defer_insert, get_engine, insert_row
from shared.envelope import context_headers, event_exchange_name, new_envelope, utcnow
from shared.errors import ValidationFailed
from shared.schema_check import Check, quick_check

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0
SWEEP_GRACE = timedelta(seconds=5)
RELAY_LINGER = float(config.env("CRM_RELAY_LINGER", "0.005"))
# Confirmed events are marked sent by one UPDATE per this interval rather than one per batch.
MARK_DELAY = float(config.env("CRM_RELAY_MARK_DELAY", "0.5"))
RETENTION = timedelta(days=7)
ALL_EVENTS_EXCHANGE = "crm.events"
# After a broken broker connection: what was sent this long before the last confirm is sent
# again (at most REPLAY_LIMIT events, the latest), once the broker answers again.
REPLAY_WINDOW = timedelta(seconds=float(config.env("CRM_RELAY_REPLAY_SECONDS", "600")))
REPLAY_LIMIT = int(config.env("CRM_RELAY_REPLAY_LIMIT", "5000"))


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


class BatchPublisher:
    """Publishes a batch of persistent messages, written at once, and then waits once for the
    broker's confirms of all of them: one round trip per batch instead of one per event.

    That is the `relay_frames` fast path (`shared.fastpaths`). With it off, each message goes
    through kombu's `Producer.publish` on a confirming channel and waits for its own confirm:
    the same messages, one round trip each."""

    CONFIRM_TIMEOUT = 30.0

    def __init__(self, amqp_uri: str, into_all_events: bool = True,
                 own_frames: bool | None = None):
        self.amqp_uri = amqp_uri
        self.into_all_events = into_all_events
        self.own_frames = (fastpaths.enabled("relay_frames") if own_frames is None
                           else own_frames)
        self._connection: Connection | None = None
        self._channel = None
        self._producer: Producer | None = None
        self._encoder: PublishEncoder | None = None
        self._declared: set[str] = set()
        self._unconfirmed: set[int] = set()
        self._nacked: set[int] = set()
        self._next_tag = 1

    def _ready_channel(self):
        if self._channel is None and not self.own_frames:
            self._connection = Connection(self.amqp_uri, connect_timeout=10,
                                          transport_options={"confirm_publish": True})
            self._channel = self._connection.channel()
            self._producer = Producer(self._channel)
            self._declared.clear()
        if self._channel is None:
            self._connection = Connection(self.amqp_uri, connect_timeout=10)
            self._channel = self._connection.connection.channel()  # the py-amqp channel
            self._channel.confirm_select()
            self._channel.events["basic_ack"].add(self._on_ack)
            self._channel.events["basic_nack"].add(self._on_nack)
            self._encoder = PublishEncoder(self._channel.channel_id,
                                           self._connection.connection.frame_max)
            self._declared.clear()
            self._next_tag = 1
        return self._channel

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        settled = {t for t in self._unconfirmed if t <= tag} if multiple else {tag}
        self._unconfirmed -= settled
        return settled

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool, *_: Any) -> None:
        self._nacked |= self._settle(delivery_tag, multiple)

    def _declare(self, channel, exchange: str) -> None:
        """Declare the service's exchange and bind it into `crm.events`, the exchange of every
        event of every service: a subscriber to everything (the rules service, integrators)
        binds one queue there and needs no list of services, including ones started later."""
        channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        if (
            self.into_all_events
            and exchange.endswith(".events")
            and exchange != ALL_EVENTS_EXCHANGE
        ):
            channel.exchange_declare(
                ALL_EVENTS_EXCHANGE, "topic", durable=True, auto_delete=False
            )
            channel.exchange_bind(
                destination=ALL_EVENTS_EXCHANGE, source=exchange, routing_key="#"
            )
        self._declared.add(exchange)

    def publish_batch(self, messages: list[tuple[str, str, str, dict, str]]) -> None:
        """`messages`: (exchange, routing_key, JSON body, headers, message_id). Raises unless
        the broker confirmed every one; the caller then retries the whole batch later."""
        if not self.own_frames:
            return self._publish_each(messages)
        try:
            channel = self._ready_channel()
            self._nacked.clear()
            frames = []
            for exchange, routing_key, body, headers, message_id in messages:
                if exchange not in self._declared:
                    self._declare(channel, exchange)
                frames.append(self._encoder.encode(exchange, routing_key, body.encode("utf-8"),
                                                   headers, message_id))
                self._unconfirmed.add(self._next_tag)
                self._next_tag += 1
            self._connection.connection.transport.write(b"".join(frames))
            deadline = time.monotonic() + self.CONFIRM_TIMEOUT
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._unconfirmed)} publishes not confirmed")
                self._connection.connection.drain_events(timeout=remaining)
            if self._nacked:
                raise RuntimeError(f"the broker refused {len(self._nacked)} messages")
        except BaseException:
            self.close()
            raise

    def _publish_each(self, messages: list[tuple[str, str, str, dict, str]]) -> None:
        """The library's path: kombu publishes and py-amqp waits for each confirm (a nack
        raises `MessageNacked`)."""
        try:
            channel = self._ready_channel()
            for exchange, routing_key, body, headers, message_id in messages:
                if exchange not in self._declared:
                    self._declare(channel, exchange)
                self._producer.publish(
                    body.encode("utf-8"), exchange=exchange, routing_key=routing_key,
                    headers=headers, message_id=message_id, delivery_mode=PERSISTENT,
                    content_type="application/json", content_encoding="utf-8",
                    priority=None,  # as the fast path: no priority property at all
                    retry=False, confirm_timeout=self.CONFIRM_TIMEOUT,
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("closing the relay's connection failed", exc_info=True)
        self._connection = self._channel = self._encoder = self._producer = None
        self._unconfirmed.clear()


class OutboxRelay:
    def __init__(self, service: str, engine: Engine, table: Table, publisher: BatchPublisher,
                 mark_delay: float = 0.0, replay_window: timedelta = REPLAY_WINDOW,
                 replay_limit: int = REPLAY_LIMIT):
        """`mark_delay`: how long confirmed rows may wait to be marked sent, so that one UPDATE
        marks several batches (0: at once). `replay_window`, `replay_limit`: what is sent again
        after a broken broker connection (see the module's docstring)."""
        self.service = service
        self.engine = engine
        self.table = table
        self.publisher = publisher
        self.mark_delay = mark_delay
        self.replay_window = replay_window
        self.replay_limit = replay_limit
        self._sent: list[str] = []
        self._sent_since = 0.0
        self._confirmed_at: datetime | None = None  # the last confirmed batch
        self._replay_since: datetime | None = None  # set by a broken connection

    def publish_rows(self, rows: list[tuple]) -> int:
        """Publish (event_id, event_type, envelope JSON[, its context headers]) rows in one
        confirmed batch; they are marked sent within `mark_delay`.

        No transaction is held while publishing: under eventlet a yield inside a SQLite write
        transaction would block every other writer of the file.
        """
        if not rows:
            return 0
        self._publish(rows)
        if not self._sent:
            self._sent_since = time.monotonic()
        self._sent.extend(row[0] for row in rows)
        if len(self._sent) >= 500 or time.monotonic() - self._sent_since >= self.mark_delay:
            self.mark_sent()
        for event_type, count in Counter(row[1] for row in rows).items():
            metrics.EVENTS_PUBLISHED.labels(self.service, event_type).inc(count)
        return len(rows)

    def _publish(self, rows: list[tuple]) -> None:
        exchange = event_exchange_name(self.service)
        try:
            self.publisher.publish_batch([
                (exchange, row[1], row[2],
                 row[3] if len(row) > 3 else context_headers(json.loads(row[2])), row[0])
                for row in rows
            ])
        except BaseException:
            self._connection_broke()
            raise
        self._confirmed_at = utcnow()

    def _connection_broke(self) -> None:
        """The publisher gave up its connection: what the broker confirmed before may be gone
        with it. Sent again by the next sweeps, from REPLAY_WINDOW before the last confirm."""
        if self._replay_since is None and self._confirmed_at is not None:
            self._replay_since = self._confirmed_at - self.replay_window

    def replay(self) -> int:
        """After a broken connection: publish again the rows marked sent since
        `_replay_since` (the latest `replay_limit`), in their order; returns how many. Once
        they are confirmed, until the next break, nothing more is replayed."""
        since = self._replay_since
        if since is None:
            return 0
        t = self.table
        query = (
            select(t.c.seq, t.c.event_id, t.c.event_type, t.c.envelope)
            .where(t.c.published_at.is_not(None), t.c.published_at >= since)
            .order_by(t.c.seq.desc())
            .limit(self.replay_limit)
        )
        with self.engine.connect() as conn:
            rows = sorted(tuple(row) for row in conn.execute(query))
        for start in range(0, len(rows), 500):
            self._publish([row[1:] for row in rows[start : start + 500]])
        if self._replay_since == since:
            self._replay_since = None
        if rows:
            log.warning("the broker connection of the %s relay broke: %d events sent since %s "
                        "published again (consumers take each once)", self.service, len(rows),
                        since.isoformat())
            metrics.EVENTS_REPLAYED.labels(self.service).inc(len(rows))
        return len(rows)

    @property
    def replay_pending(self) -> bool:
        return self._replay_since is not None

    @property
    def marks_pending(self) -> bool:
        return bool(self._sent)

    def mark_sent(self) -> None:
        """Mark sent what the broker confirmed. A row a crash left unmarked is published again
        by a later sweep: delivery is at least once, and consumers take an event once by id."""
        sent, self._sent = self._sent, []
        if not sent:
            return
        t = self.table
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(t).where(t.c.event_id.in_(sent)).values(published_at=utcnow())
                )
        except BaseException:
            self._sent = sent + self._sent
            raise

    def publish_pending(self, grace: timedelta, limit: int = 500) -> int:
        """Publish unsent rows older than `grace` (left by a process that died, or whose
        publish failed), after what a broken connection may have lost (`replay`); returns how
        many unsent rows."""
        self.mark_sent()  # what is only waiting to be marked is not pending
        self.replay()
        t = self.table
        query = (
            select(t.c.event_id, t.c.event_type, t.c.envelope)
            .where(t.c.published_at.is_(None), t.c.created_at < utcnow() - grace)
            .order_by(t.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        return self.publish_rows(rows)

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

    def __init__(self, service: str, table: Table, schemas: dict[str, type[Schema]], ctx,
                 quick_checks: bool | None = None) -> None:
        """`quick_checks`: whether `schema_check` may answer first (None: the
        `event_quick_check` fast path decides)."""
        self.service = service
        self.table = table
        self.schemas = schemas
        self.ctx = ctx
        self.quick_checks = (fastpaths.enabled("event_quick_check") if quick_checks is None
                             else quick_checks)
        self._uncommitted: list[tuple[str, str, str, dict]] = []
        self.committed: list[tuple[str, str, str, dict]] = []  # what the relay may publish

    # Per schema class and fast path setting: an instance (building one costs more than using
    # it) and its quick check (None: marshmallow validates every event).
    _instances: dict[tuple[type[Schema], bool], tuple[Schema, Check | None]] = {}

    def _schema(self, event_type: str) -> tuple[Schema, Check | None]:
        schema_cls = self.schemas.get(event_type)
        if schema_cls is None:
            raise ValueError(f"{self.service} has no schema for event {event_type!r}")
        key = (schema_cls, self.quick_checks)
        if key not in self._instances:
            schema = schema_cls()
            self._instances[key] = (schema, quick_check(schema) if key[1] else None)
        return self._instances[key]

    def record(
        self, session: Session, event_type: str, data: dict[str, Any], defer: bool = False
    ) -> dict[str, Any]:
        """Write the event row in the session's transaction. `defer=True` (many events in one
        transaction) inserts the rows together, in one statement, just before the commit."""
        schema, quick = self._schema(event_type)
        problems = schema.validate(data) if quick is None or not quick(data) else None
        if problems:  # a bug of the producer: the catalogue promises integrators this shape
            raise ValidationFailed.for_fields(
                problems, f"event {event_type} does not fit its schema"
            )
        envelope = new_envelope(self.service, event_type, data, self.ctx)
        body = json.dumps(envelope, ensure_ascii=False)
        row = {
            "event_id": envelope["event_id"],
            "event_type": event_type,
            "envelope": body,
            "created_at": utcnow(),
        }
        self._follow(session)
        if defer:
            defer_insert(session, self.table, row)
        else:
            insert_row(session, self.table, row)
        self._uncommitted.append((envelope["event_id"], event_type, body,
                                  context_headers(envelope)))
        return envelope

    def _follow(self, session: Session) -> None:
        """Only what the transaction commits goes to the relay; a rollback forgets it."""
        recorders = session.info.setdefault(_RECORDERS, [])
        if self not in recorders:
            recorders.append(self)

    def _on_commit(self) -> None:
        self.committed.extend(self._uncommitted)
        self._uncommitted.clear()

    def _on_rollback(self) -> None:
        self._uncommitted.clear()


# The recorders following a session, in `session.info`. The listeners are registered once for
# every session: registering them per session cost more than the insert of an event.
_RECORDERS = "crm_event_recorders"


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for recorder in session.info.get(_RECORDERS, ()):
        recorder._on_commit()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    for recorder in session.info.get(_RECORDERS, ()):
        recorder._on_rollback()


class EventOutbox(DependencyProvider):
    """nameko dependency: records events in the worker's transaction and relays them."""

    def __init__(
        self,
        service: str,
        table: Table,
        schemas: dict[str, type[Schema]],
        into_all_events: bool = True,
    ):
        """`into_all_events=False` keeps the service's events out of `crm.events` (the rules
        service, which consumes `crm.events` and need not read its own events back)."""
        self.service = service
        self.table = table
        self.schemas = schemas
        self.into_all_events = into_all_events
        self._recorders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._wakeups: LightQueue = LightQueue()
        self._relay_thread = None
        self._sweeps = 0
        self._swept_at = 0.0

    def setup(self) -> None:
        self.quick_checks = fastpaths.enabled("event_quick_check")  # once, not per worker
        engine = get_engine(config.database_url(self.service))
        publisher = BatchPublisher(self.container.config["AMQP_URI"], self.into_all_events)
        self.relay = OutboxRelay(self.service, engine, self.table, publisher,
                                 mark_delay=MARK_DELAY)

    def start(self) -> None:
        self._relay_thread = self.container.spawn_managed_thread(self._run_relay)

    def stop(self) -> None:
        self._drain_wakeups(block=False)
        self.relay.mark_sent()
        if self._relay_thread is not None:
            self._relay_thread.kill()
        self.relay.publisher.close()

    def kill(self) -> None:
        if self._relay_thread is not None:
            self._relay_thread.kill()

    def get_dependency(self, worker_ctx) -> EventRecorder:
        recorder = EventRecorder(self.service, self.table, self.schemas, context_of(worker_ctx),
                                 self.quick_checks)
        self._recorders[worker_ctx] = recorder
        return recorder

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        recorder = self._recorders.pop(worker_ctx, None)
        if recorder and recorder.committed:
            self._wakeups.put(recorder.committed)

    def _drain_wakeups(self, block: bool) -> None:
        rows: list[tuple] = []
        idle = SWEEP_INTERVAL if not self.relay.marks_pending else MARK_DELAY
        try:
            rows.extend(self._wakeups.get(block=block, timeout=idle if block else None))
            if block:
                # Linger a moment so that events committed by concurrent workers share one
                # batch: one confirm round trip for all of them.
                eventlet.sleep(RELAY_LINGER)
            while True:
                rows.extend(self._wakeups.get_nowait())
        except Empty:
            pass
        if rows:
            for start in range(0, len(rows), 500):
                self.relay.publish_rows(rows[start : start + 500])
        elif block:
            self.relay.mark_sent()
        # Also under steady load, which never leaves the relay idle for a whole interval.
        if block and time.monotonic() - self._swept_at >= SWEEP_INTERVAL:
            self._sweep()

    def _sweep(self) -> None:
        self._swept_at = time.monotonic()
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
