"""A lead created behind a lost reply (a 503 after the commit): the client's retry with the
same Idempotency-Key gets the original answer, not a 409 duplicate, and no second lead."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.leads.contract import EVENT_SCHEMAS
from services.leads.models import outbox
from services.leads.service import LeadsService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}

LEAD = {"name": "王芳", "company": "杭州云帆科技有限公司", "email": "wang.fang@yunfan.cn",
        "phone": "139 0013 9000", "source": "website", "region": "华东"}


@pytest.fixture(params=["sqlite", "postgresql"])
def leads(request, tmp_path):
    engine = get_engine(migrated_database(request, tmp_path, "leads"))

    def make() -> LeadsService:
        return service_worker(LeadsService, engine, outbox, EVENT_SCHEMAS,
                              Context(correlation_id="corr-idem", actor="u-admin"))

    make.engine = engine
    return make


def created_events(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope)).scalars().all()
    return [e for e in map(json.loads, rows) if e["event_type"] == "lead_created"]


def test_a_retry_with_the_key_replays_the_creation(leads):
    first = leads().create_lead(LEAD, scope=ALL, idempotency_key="u-1:key-1")
    # the reply was lost; the client retries with the same key
    again = leads().create_lead(LEAD, scope=ALL, idempotency_key="u-1:key-1")
    assert again["outcome"] == "created"
    assert again["lead"]["id"] == first["lead"]["id"]
    assert len(created_events(leads.engine)) == 1, "one lead, one event"


def test_another_key_or_none_is_a_new_request_and_meets_the_duplicate(leads):
    leads().create_lead(LEAD, scope=ALL, idempotency_key="u-1:key-1")
    with pytest.raises(Conflict):
        leads().create_lead(LEAD, scope=ALL, idempotency_key="u-1:key-2")
    with pytest.raises(Conflict):
        leads().create_lead(LEAD, scope=ALL)


def test_a_merge_is_replayed_as_the_merge(leads):
    original = leads().create_lead(LEAD, scope=ALL)["lead"]
    merged = leads().create_lead({**LEAD, "title": "CTO"}, on_duplicate="merge",
                                 scope=ALL, idempotency_key="u-1:key-3")
    again = leads().create_lead({**LEAD, "title": "CTO"}, on_duplicate="merge",
                                scope=ALL, idempotency_key="u-1:key-3")
    assert merged["outcome"] == again["outcome"] == "merged"
    assert again["lead"]["id"] == original["id"]
