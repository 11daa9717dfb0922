"""Directory events: written to the gateway's outbox in the transaction that changes a user
or a team, published with publisher confirms right after the commit, and swept by a background
thread when the broker was away (the rows stay until they are published)."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.gateway.events import EVENT_SCHEMAS
from services.gateway.identity.models import Team, User
from services.gateway.models import outbox
from shared import config as shared_config
from shared.context import Context, current_correlation_id
from shared.outbox import BatchPublisher, EventRecorder, OutboxRelay

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0
SWEEP_GRACE = timedelta(seconds=5)


def user_fields(user: User) -> dict[str, Any]:
    """What other services know of a user (events) and what GET /users shows, less dates."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "team_id": user.team_id,
        "active": bool(user.active),
    }


def user_event(user: User) -> dict[str, Any]:
    return {"user": user_fields(user)}


def team_event(team: Team) -> dict[str, Any]:
    return {"team": {"id": team.id, "name": team.name, "manager_id": team.manager_id}}


class DirectoryEvents:
    """`record_user` / `record_team` inside a store transaction, `publish(recorder)` after it.

    The publisher is one AMQP channel per process, shared by gunicorn's threads under a lock;
    directory changes are rare, so the lock costs nothing that matters.
    """

    def __init__(self, store: Any, amqp_uri: str | None = None) -> None:
        self.relay = OutboxRelay(
            "gateway", store.engine, outbox,
            BatchPublisher(amqp_uri or shared_config.amqp_uri()),
        )
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sweeper: threading.Thread | None = None

    @staticmethod
    def recorder(actor: str | None) -> EventRecorder:
        ctx = Context(correlation_id=current_correlation_id.get() or str(uuid.uuid4()),
                      actor=actor)
        return EventRecorder("gateway", outbox, EVENT_SCHEMAS, ctx)

    @staticmethod
    def record_user(recorder: EventRecorder, session: Session, user: User) -> None:
        recorder.record(session, "user_changed", user_event(user))

    @staticmethod
    def record_team(recorder: EventRecorder, session: Session, team: Team) -> None:
        recorder.record(session, "team_changed", team_event(team))

    def publish(self, recorder: EventRecorder) -> None:
        """Publish what the transaction committed; on failure the sweep publishes it later."""
        rows, recorder.committed = recorder.committed, []
        if not rows:
            return
        try:
            with self._lock:
                self.relay.publish_rows(rows)
        except Exception:  # noqa: BLE001 - the rows are stored; the sweep retries
            log.warning("directory events not published yet (%d); the sweep will retry",
                        len(rows), exc_info=True)

    def sweep(self) -> int:
        with self._lock:
            return self.relay.publish_pending(grace=SWEEP_GRACE)

    def start_sweeper(self) -> None:
        if self._sweeper is not None:
            return

        def run() -> None:
            while not self._stopped.wait(SWEEP_INTERVAL):
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the broker may be away; try again later
                    log.debug("directory sweep failed", exc_info=True)

        self._sweeper = threading.Thread(target=run, name="directory-sweeper", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            self.relay.publisher.close()
