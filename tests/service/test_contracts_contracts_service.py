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


# -- contracts (RPC: visibility, sign, terminate, payment collection) ----


@pytest.fixture
def rpc(sessions, request, tmp_path):
    """The contracts worker with the real sales worker (its own migrated database) behind
    its `sales` proxy."""
    from services.contracts.contract import EVENT_SCHEMAS
    from services.contracts.models import outbox
    from services.contracts.service import ContractsService
    from services.sales.events import EVENT_SCHEMAS as SALES_EVENTS
    from services.sales.models import outbox as sales_outbox
    from services.sales.service import SalesService
    from shared.context import Context
    from tests.service.test_contracts_quotes_service import SalesWorker
    from tests.service.workers import service_worker

    engine = sessions.kw["bind"]
    backend = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
    sales_url = migrated_database(_Param(backend, request), tmp_path, "sales")
    ctx = Context(correlation_id="c", actor="rep-a")
    sales = service_worker(SalesService, get_engine(sales_url), sales_outbox, SALES_EVENTS, ctx)
    contracts = service_worker(ContractsService, engine, outbox, EVENT_SCHEMAS, ctx,
                               sales=SalesWorker(sales))
    return contracts, sales, engine


class _Param:
    """A request-like object carrying the backend of the contracts database's fixture."""

    def __init__(self, param, request):
        self.param = param
        self._request = request

    def __getattr__(self, name):
        return getattr(self._request, name)


REP_A = {"owner_ids": ["rep-a"]}
REP_B = {"owner_ids": ["rep-b"]}
TEAM = {"owner_ids": ["rep-a", "rep-b"]}
ALL = {"all": True}


def outbox_events(engine) -> list[dict]:
    import json

    from sqlalchemy import select

    from services.contracts.models import outbox

    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [json.loads(r) for r in rows]


def test_create_contract_checks_the_customer_and_opportunity_through_sales(rpc):
    from shared.errors import NotFound, ValidationFailed

    contracts, sales, engine = rpc
    customer = sales.create_customer({"name": "苏州精工机械有限公司"}, scope=REP_A)
    other = sales.create_customer({"name": "无锡某厂"}, scope=REP_A)
    opp = sales.create_opportunity({"customer_id": customer["id"], "name": "MES"}, scope=REP_A)
    with pytest.raises(ValidationFailed) as err:
        contracts.create_contract({"title": "x", "customer_id": customer["id"],
                                   "amount": "abc"}, scope=REP_A)
    assert "amount" in err.value.errors
    with pytest.raises(ValidationFailed) as err:  # rep-b does not see rep-a's customer
        contracts.create_contract({"title": "x", "customer_id": customer["id"],
                                   "amount": "10"}, scope=REP_B)
    assert err.value.errors == {"customer_id": ["no such customer"]}
    with pytest.raises(ValidationFailed) as err:
        contracts.create_contract({"title": "x", "customer_id": other["id"],
                                   "opportunity_id": opp["id"], "amount": "10"}, scope=REP_A)
    assert list(err.value.errors) == ["opportunity_id"]
    created = contracts.create_contract({"title": "MES 合同", "customer_id": customer["id"],
                                         "opportunity_id": opp["id"], "amount": "12.5"},
                                        scope=REP_A)
    assert created["status"] == "draft" and created["amount"] == "12.50"
    assert created["owner_id"] == "rep-a" and created["opportunity_id"] == opp["id"]
    assert [(e["event_type"], e["data"]["contract"]["number"]) for e in outbox_events(engine)
            ] == [("contract_created", created["number"])]
    for scope in (REP_A, TEAM, ALL):
        assert contracts.get_contract(created["id"], scope=scope)["number"] == created["number"]
        assert [c["id"] for c in contracts.list_contracts(scope=scope)["items"]] == [
            created["id"]]
    with pytest.raises(NotFound):
        contracts.get_contract(created["id"], scope=REP_B)
    assert contracts.list_contracts(scope=REP_B)["items"] == []
    for call in (lambda: contracts.sign_contract(created["id"], scope=REP_B),
                 lambda: contracts.terminate_contract(created["id"], {"reason": "x"},
                                                      scope=REP_B),
                 lambda: contracts.set_payment_plan(created["id"], {"instalments": []},
                                                    scope=REP_B),
                 lambda: contracts.record_receipt(created["id"], {
                     "amount": "1", "received_on": "2027-01-01"}, scope=REP_B),
                 lambda: contracts.list_receipts(created["id"], scope=REP_B),
                 lambda: contracts.contract_receivables(created["id"], scope=REP_B)):
        with pytest.raises(NotFound):
            call()


def test_list_contracts_pages_with_a_cursor_and_filters(rpc):
    contracts, sales, _ = rpc
    customer = sales.create_customer({"name": "甲"}, scope=REP_A)
    made = [contracts.create_contract({"title": f"c{i}", "customer_id": customer["id"],
                                       "amount": "1"}, scope=REP_A)["id"] for i in range(3)]
    first = contracts.list_contracts(scope=REP_A, limit=2)
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = contracts.list_contracts(scope=REP_A, cursor=first["next_cursor"], limit=2)
    assert second["next_cursor"] is None
    seen = [c["id"] for c in first["items"] + second["items"]]
    assert sorted(seen) == sorted(made) and len(set(seen)) == 3
    assert contracts.list_contracts({"status": "active"}, scope=REP_A)["items"] == []
    assert len(contracts.list_contracts({"customer_id": customer["id"]},
                                        scope=REP_A)["items"]) == 3


def test_sign_terminate_plan_receipts_and_receivables_over_rpc(rpc):
    from shared.errors import Conflict, ValidationFailed

    contracts, sales, engine = rpc
    customer = sales.create_customer({"name": "乙"}, scope=REP_A)
    c = contracts.create_contract({"title": "t", "customer_id": customer["id"],
                                   "amount": "1000"}, scope=REP_A)
    with pytest.raises(ValidationFailed) as err:
        contracts.set_payment_plan(c["id"], {"instalments": [
            {"due_date": "2099-01-01", "amount": "600"},
            {"due_date": "2099-06-01", "amount": "400.01"}]}, scope=REP_A)
    assert list(err.value.errors) == ["instalments"]
    plan = contracts.set_payment_plan(c["id"], {"instalments": [
        {"due_date": "2099-06-01", "percentage": "40"},
        {"due_date": "2099-01-01", "amount": "600"}]}, scope=REP_A)["items"]
    assert [(p["seq"], p["amount"], p["status"]) for p in plan] == [
        (1, "600.00", "pending"), (2, "400.00", "pending")]
    with pytest.raises(ValidationFailed) as err:
        contracts.terminate_contract(c["id"], {}, scope=REP_A)
    assert list(err.value.errors) == ["reason"]
    with pytest.raises(Conflict):  # a draft is not terminated
        contracts.terminate_contract(c["id"], {"reason": "客户取消"}, scope=REP_A)
    signed = contracts.sign_contract(c["id"], scope=REP_A)
    assert signed["status"] == "active"
    with pytest.raises(Conflict):
        contracts.sign_contract(c["id"], scope=REP_A)
    events = {e["event_type"]: e["data"] for e in outbox_events(engine)}
    assert events["contract_signed"]["contract"].items() >= {
        "id": c["id"], "number": c["number"], "status": "active", "amount": "1000.00",
        "owner_id": "rep-a", "end_date": None}.items()
    assert events["order_created"]["order"] == {
        "number": "SO-" + c["number"][3:], "contract_id": c["id"],
        "contract_number": c["number"], "customer_id": customer["id"],
        "amount": "1000.00", "currency": "CNY", "status": "created",
        "source": {"kind": "contract", "quote_id": None, "quote_version": None},
        "lines": [{"seq": 1, "product_id": None, "product_code": None, "product_name": "t",
                   "unit": None, "quantity": "1", "unit_price": "1000.00",
                   "discount": "0.00", "tax_rate": None, "net": "1000.00", "tax": "0.00",
                   "total": "1000.00"}]}
    receipt = contracts.record_receipt(c["id"], {"amount": "250", "received_on": "2027-01-05",
                                                 "method": "bank"}, scope=REP_A)
    assert receipt["amount"] == "250.00"
    assert receipt["allocations"] == [{"instalment_id": plan[0]["id"], "amount": "250.00"}]
    assert [r["id"] for r in contracts.list_receipts(c["id"], scope=REP_A)["items"]] == [
        receipt["id"]]
    assert contracts.contract_receivables(c["id"], scope=REP_A) == {
        "contract_amount": "1000.00", "received": "250.00", "outstanding": "750.00",
        "overdue": "0.00", "invoiced": "0.00", "uninvoiced": "1000.00"}
    with pytest.raises(Conflict):  # receipts fix the plan
        contracts.set_payment_plan(c["id"], {"instalments": []}, scope=REP_A)
    ended = contracts.terminate_contract(c["id"], {"reason": "客户取消"}, scope=REP_A)
    assert ended["status"] == "terminated"
    assert [e["data"]["reason"] for e in outbox_events(engine)
            if e["event_type"] == "contract_terminated"] == ["客户取消"]
