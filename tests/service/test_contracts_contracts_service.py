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


def test_plan_receipts_partial_and_receivables(sessions):
    from datetime import date

    from shared.errors import Conflict, ValidationFailed

    contract = create(sessions)  # amount 1000.00
    as_of = date(2027, 2, 15)
    with pytest.raises(ValidationFailed) as err, sessions() as session, session.begin():
        uc.put_payment_plan(session, contract["id"], [
            {"due_date": date(2027, 1, 1), "percentage": "50"},
            {"due_date": date(2027, 3, 1), "amount": "500.01"}], as_of)
    assert list(err.value.errors) == ["instalments"]
    with sessions() as session, session.begin():
        plan = uc.put_payment_plan(session, contract["id"], [
            {"due_date": date(2027, 3, 1), "amount": "600"},
            {"due_date": date(2027, 1, 1), "percentage": "40"}], as_of)
    assert [(p["seq"], p["amount"], p["status"]) for p in plan] == [
        (1, "400.00", "overdue"), (2, "600.00", "pending")]
    with sessions() as session, session.begin():
        receipt = uc.record_receipt(session, contract["id"], {
            "amount": "500", "received_on": date(2027, 2, 10), "method": "bank"}, as_of)
    assert receipt["allocations"] == [{"instalment_id": plan[0]["id"], "amount": "400.00"},
                                      {"instalment_id": plan[1]["id"], "amount": "100.00"}]
    with sessions() as session:
        statuses = [i.status for i in uc._instalments(session, contract["id"])]
        assert statuses == ["paid", "partly_paid"]
        assert uc.receivables(session, contract["id"], date(2027, 3, 5)) == {
            "contract_amount": "1000.00", "received": "500.00", "outstanding": "500.00",
            "overdue": "500.00"}
    with pytest.raises(Conflict), sessions() as session, session.begin():
        uc.put_payment_plan(session, contract["id"], [
            {"due_date": date(2027, 1, 1), "amount": "1"}], as_of)
