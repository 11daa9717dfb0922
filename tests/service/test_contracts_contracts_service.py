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
