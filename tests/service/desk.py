"""What the service desk's service tests share: its database on SQLite and PostgreSQL, a worker
of the service over it (nameko's worker_factory, the real outbox recorder) and the events the
worker recorded.

    database_url = desk.database_url        # the parametrised fixture, in the test module

    @pytest.fixture
    def service(database_url):
        return desk.worker(database_url, actor="rep-a")
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from services.service_desk.contract import EVENT_SCHEMAS
from services.service_desk.models import outbox
from services.service_desk.service import ServiceDeskService
from shared.context import Context
from shared.db import get_engine
from tests.service.workers import migrated_database, service_worker


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    return migrated_database(request, tmp_path, "service_desk")


def worker(database_url: str, actor: str | None, **dependencies: Any) -> Any:
    """The service's worker as `actor`; `.engine` is its database."""
    engine = get_engine(database_url)
    found = service_worker(ServiceDeskService, engine, outbox, EVENT_SCHEMAS,
                           Context(correlation_id=f"corr-{actor}", actor=actor), **dependencies)
    found.engine = engine
    return found


def envelopes(engine, event_type: str) -> list[dict]:
    """The events of `event_type` the worker recorded, in order (whole envelopes)."""
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e for e in map(json.loads, rows) if e["event_type"] == event_type]
