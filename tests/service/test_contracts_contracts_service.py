"""Contract numbering on SQLite and PostgreSQL: HT-<year>-<6 digits>, no gaps and no duplicates
under concurrent creations, and a rolled-back creation gives its number back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import sessionmaker

from services.contracts.domain.contracts import parse_number
from services.contracts.usecases import contracts as uc
from shared.db import get_engine
from shared.envelope import utcnow
from tests.service.workers import migrated_database

DATA = {"title": "Supply", "customer_id": "cust-1", "amount": "1000"}


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    return sessionmaker(get_engine(migrated_database(request, tmp_path, "contracts")),
                        expire_on_commit=False)


def create(sessions) -> dict:
    with sessions() as session, session.begin():
        return uc.create_contract(session, DATA, "rep")


def test_sequential_numbers_and_rollback_gives_number_back(sessions):
    first = create(sessions)
    year = utcnow().year
    assert first["number"] == f"HT-{year}-000001"
    assert first["status"] == "draft" and first["amount"] == "1000.00"
    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        uc.create_contract(session, DATA, "rep")
        raise RuntimeError("abort")
    assert create(sessions)["number"] == f"HT-{year}-000002"


def test_concurrent_creations_have_no_gaps_or_duplicates(sessions):
    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(lambda _: create(sessions), range(30)))
    with sessions() as session:
        stored = uc.numbers(session)
    seqs = sorted(parse_number(c["number"])[1] for c in created)
    assert seqs == list(range(1, 31))
    assert sorted(stored) == sorted(c["number"] for c in created)


def test_create_contract_rpc_validates_and_publishes(sessions):
    import json

    from sqlalchemy import select

    from services.contracts.contract import EVENT_SCHEMAS
    from services.contracts.models import outbox
    from services.contracts.service import ContractsService
    from shared.context import Context
    from shared.errors import ValidationFailed
    from tests.service.workers import service_worker

    engine = sessions.kw["bind"]
    worker = service_worker(ContractsService, engine, outbox, EVENT_SCHEMAS,
                            Context(correlation_id="c", actor="rep"))
    with pytest.raises(ValidationFailed) as err:
        worker.create_contract({"title": "x", "customer_id": "c1", "amount": "abc"}, "rep")
    assert "amount" in err.value.errors
    created = worker.create_contract({"title": "x", "customer_id": "c1", "amount": "12.5"},
                                     "rep")
    assert created["status"] == "draft" and created["amount"] == "12.50"
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope)).scalars().all()
    events = [json.loads(r) for r in rows]
    assert [(e["event_type"], e["data"]["contract"]["number"]) for e in events] == [
        ("contract_created", created["number"])]
