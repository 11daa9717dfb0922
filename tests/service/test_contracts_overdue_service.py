"""Overdue instalments and renewals on SQLite and PostgreSQL, over the contracts worker's RPC
(with the real sales worker behind it): `mark_overdue` marks each instalment once with one
`instalment_overdue` (also when sweeps run at once), a receipt paying it in full publishes
`instalment_paid`, the receivables' overdue agrees; renewals link the old and the new contract
and signing the renewal makes the old one `renewed`."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import outbox
from services.contracts.usecases import contracts as contracts_uc
from services.contracts.usecases import overdue as overdue_uc
from services.contracts.usecases.pricing import today
from shared.context import Context
from shared.db import DatabaseAccess
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.outbox import EventRecorder
from tests.service import test_contracts_contracts_service as contracts_tests
from tests.service.test_contracts_contracts_service import REP_A, REP_B

# The contracts module's fixtures: `sessions` (SQLite and PostgreSQL), `rpc` (the workers).
sessions = contracts_tests.sessions
rpc = contracts_tests.rpc

AS_OF = "2027-03-05"


def events_of(engine, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).where(outbox.c.event_type == event_type)
                            .order_by(outbox.c.seq)).scalars().all()
    return [json.loads(r)["data"] for r in rows]


def signed_contract_with_plan(contracts, sales, **extra) -> tuple[dict, list[dict]]:
    customer = sales.create_customer({"name": f"无锡回款{time.monotonic_ns()}"}, scope=REP_A)
    c = contracts.create_contract({"title": "MES 实施", "customer_id": customer["id"],
                                   "amount": "1000", **extra}, scope=REP_A)
    plan = contracts.set_payment_plan(c["id"], {"instalments": [
        {"due_date": "2027-01-31", "amount": "300"},
        {"due_date": "2027-02-28", "amount": "300"},
        {"due_date": "2027-06-30", "amount": "400"}]}, scope=REP_A)["items"]
    contracts.sign_contract(c["id"], scope=REP_A)
    return c, plan


def test_mark_overdue_once_per_instalment_and_paid_later(rpc):
    contracts, sales, engine = rpc
    c, plan = signed_contract_with_plan(contracts, sales)
    draft_customer = sales.create_customer({"name": "草稿客户"}, scope=REP_A)
    draft = contracts.create_contract({"title": "未签", "customer_id": draft_customer["id"],
                                       "amount": "10"}, scope=REP_A)
    contracts.set_payment_plan(draft["id"], {"instalments": [
        {"due_date": "2027-01-01", "amount": "10"}]}, scope=REP_A)
    contracts.record_receipt(c["id"], {"amount": "100", "received_on": "2027-01-20"},
                             scope=REP_A)  # the first instalment partly paid

    swept = contracts.mark_overdue(AS_OF)
    assert swept["as_of"] == AS_OF
    assert [(m["id"], m["outstanding"], m["days_overdue"]) for m in swept["marked"]] == [
        (plan[0]["id"], "200.00", 33), (plan[1]["id"], "300.00", 5)]  # not the draft's
    overdue = events_of(engine, "instalment_overdue")
    assert [e["instalment"]["id"] for e in overdue] == [plan[0]["id"], plan[1]["id"]]
    first = overdue[0]
    assert first["contract_id"] == c["id"] and first["contract_number"] == c["number"]
    assert first["days_overdue"] == 33
    assert first["instalment"].items() >= {
        "seq": 1, "contract_id": c["id"], "contract_number": c["number"],
        "due_date": "2027-01-31", "amount": "300.00", "paid": "100.00",
        "outstanding": "200.00", "status": "overdue", "owner_id": "rep-a",
        "customer_id": c["customer_id"], "days_overdue": 33}.items()
    assert "team_id" in first["instalment"]

    # idempotent: again (and a later day) marks nothing more, publishes nothing more
    assert contracts.mark_overdue(AS_OF)["marked"] == []
    assert contracts.mark_overdue("2027-03-20")["marked"] == []
    assert len(events_of(engine, "instalment_overdue")) == 2
    statuses = [i["status"] for i in contracts.get_payment_plan(c["id"], scope=REP_A)["items"]]
    assert statuses == ["overdue", "overdue", "pending"]

    # the receivables' overdue agrees with the instalments marked overdue
    with sessions_of(engine)() as session:
        figures = contracts_uc.receivables(session, c["id"], date.fromisoformat(AS_OF))
        assert figures["overdue"] == "500.00"
        assert str(overdue_uc.overdue_amount(session, c["id"])) == figures["overdue"]

    # a partial receipt leaves it overdue; one that pays it in full makes it paid
    contracts.record_receipt(c["id"], {"amount": "50", "received_on": "2027-03-06",
                                       "instalment_id": plan[1]["id"]}, scope=REP_A)
    assert [i["status"] for i in contracts.get_payment_plan(c["id"], scope=REP_A)["items"]
            ][1] == "overdue"
    assert events_of(engine, "instalment_paid") == []
    contracts.record_receipt(c["id"], {"amount": "450", "received_on": "2027-03-07"},
                             scope=REP_A)  # 200 to the first, 250 to the second
    paid = events_of(engine, "instalment_paid")
    assert [(e["instalment"]["id"], e["instalment"]["status"], e["was_overdue"])
            for e in paid] == [(plan[0]["id"], "paid", True), (plan[1]["id"], "paid", True)]
    assert paid[0]["contract_number"] == c["number"]
    assert [i["status"] for i in contracts.get_payment_plan(c["id"], scope=REP_A)["items"]
            ] == ["paid", "paid", "pending"]
    assert contracts.mark_overdue(AS_OF)["marked"] == []

    # the draft's instalment falls overdue once its contract is signed
    contracts.sign_contract(draft["id"], scope=REP_A)
    assert [m["contract_id"] for m in contracts.mark_overdue(AS_OF)["marked"]] == [draft["id"]]
    with pytest.raises(ValidationFailed) as err:
        contracts.mark_overdue("not-a-date")
    assert list(err.value.errors) == ["as_of"]


def sessions_of(engine):
    return sessionmaker(engine, expire_on_commit=False)


def sweeper(engine):
    return (DatabaseAccess(sessions_of(engine)),
            EventRecorder("contracts", outbox, EVENT_SCHEMAS, Context(correlation_id="s")))


def test_two_sweeps_that_read_the_same_candidates_publish_once(rpc):
    contracts, sales, engine = rpc
    c, plan = signed_contract_with_plan(contracts, sales)
    day = date.fromisoformat(AS_OF)
    db_a, events_a = sweeper(engine)
    db_b, events_b = sweeper(engine)
    with db_a.read() as session:
        seen_a = overdue_uc._candidates(session, day, 100)
    with db_b.read() as session:
        seen_b = overdue_uc._candidates(session, day, 100)
    assert seen_a == seen_b == [plan[0]["id"], plan[1]["id"]]
    results = []
    for inst_id in seen_a:  # interleaved: a marks, then b tries the same one
        for db, events in ((db_a, events_a), (db_b, events_b)):
            with db.begin() as session:
                results.append(overdue_uc._mark_one(session, events, inst_id, day,
                                                    contracts_uc.utcnow()))
    assert [r is not None for r in results] == [True, False, True, False]
    assert len(events_of(engine, "instalment_overdue")) == 2


def test_concurrent_sweeps_mark_each_instalment_once(rpc):
    contracts, sales, engine = rpc
    made = [signed_contract_with_plan(contracts, sales)[1] for _ in range(5)]
    expected = sorted(p["id"] for plan in made for p in plan[:2])

    def sweep(_):
        db, events = sweeper(engine)
        return overdue_uc.mark_overdue(db, events, date.fromisoformat(AS_OF))["marked"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(sweep, range(4)))
    db, events = sweeper(engine)
    assert overdue_uc.mark_overdue(db, events, date.fromisoformat(AS_OF), limit=3)[
        "marked"] == []
    marked = sorted(m["id"] for result in results for m in result)
    assert marked == expected  # each once over all sweeps
    published = sorted(e["instalment"]["id"] for e in events_of(engine, "instalment_overdue"))
    assert published == expected


def test_a_sweep_goes_on_in_batches_until_none_is_left(rpc):
    contracts, sales, engine = rpc
    made = [signed_contract_with_plan(contracts, sales)[1] for _ in range(3)]
    db, events = sweeper(engine)
    marked = overdue_uc.mark_overdue(db, events, date.fromisoformat(AS_OF), limit=2)["marked"]
    assert sorted(m["id"] for m in marked) == sorted(p["id"] for plan in made
                                                     for p in plan[:2])


def test_a_sweep_waiting_on_the_row_lock_marks_nothing(rpc):
    """PostgreSQL: sweep b's UPDATE waits for a's uncommitted one, then matches nothing."""
    contracts, sales, engine = rpc
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers on the single pooled connection")
    c, plan = signed_contract_with_plan(contracts, sales)
    day = date.fromisoformat(AS_OF)
    db_a, events_a = sweeper(engine)
    db_b, events_b = sweeper(engine)
    a_marked = threading.Event()
    outcome: dict[str, object] = {}

    def sweep_a():
        with db_a.begin() as session:
            outcome["a"] = overdue_uc._mark_one(session, events_a, plan[0]["id"], day,
                                                contracts_uc.utcnow())
            a_marked.set()
            time.sleep(0.3)  # b is waiting on the row lock meanwhile

    def sweep_b():
        a_marked.wait(10)
        with db_b.begin() as session:
            outcome["b"] = overdue_uc._mark_one(session, events_b, plan[0]["id"], day,
                                                contracts_uc.utcnow())

    threads = [threading.Thread(target=sweep_a), threading.Thread(target=sweep_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcome["a"] is not None and outcome["b"] is None
    assert len(events_of(engine, "instalment_overdue")) == 1


def test_renew_contract_links_copies_and_renews_on_signing(rpc):
    contracts, sales, engine = rpc
    customer = sales.create_customer({"name": "续约客户"}, scope=REP_A)
    parties = [{"role": "甲方", "name": "续约客户"}, {"role": "乙方", "name": "示例软件"}]
    clauses = [{"code": "confidentiality", "title": "保密", "text": "双方保密"}]
    old = contracts.create_contract({
        "title": "年度维保", "customer_id": customer["id"], "amount": "120000",
        "start_date": "2027-01-01", "end_date": "2027-12-31", "parties": parties,
        "clauses": clauses}, scope=REP_A)
    assert (old["start_date"], old["end_date"]) == ("2027-01-01", "2027-12-31")
    with pytest.raises(Conflict):  # a draft is not renewed
        contracts.renew_contract(old["id"], {}, scope=REP_A)
    contracts.sign_contract(old["id"], scope=REP_A)
    signed = events_of(engine, "contract_signed")[-1]["contract"]
    assert signed["end_date"] == "2027-12-31" and signed["owner_id"] == "rep-a"
    with pytest.raises(NotFound):  # another team's rep: like a missing contract
        contracts.renew_contract(old["id"], {}, scope=REP_B)
    with pytest.raises(ValidationFailed) as err:
        contracts.renew_contract(old["id"], {"end_date": "2027-06-01"}, scope=REP_A)
    assert list(err.value.errors) == ["end_date"]

    renewal = contracts.renew_contract(old["id"], {}, scope=REP_A)
    assert renewal["status"] == "draft" and renewal["renews_id"] == old["id"]
    assert renewal["number"] != old["number"] and renewal["owner_id"] == "rep-a"
    assert (renewal["start_date"], renewal["end_date"]) == ("2028-01-01", "2028-12-31")
    assert renewal["amount"] == "120000.00" and renewal["customer_id"] == customer["id"]
    assert renewal["parties"] == parties and renewal["clauses"] == clauses
    assert contracts.get_contract(old["id"], scope=REP_A)["renewed_by_id"] == renewal["id"]
    with pytest.raises(Conflict) as twice:
        contracts.renew_contract(old["id"], {}, scope=REP_A)
    assert twice.value.extra["reason"] == "already_renewed"
    assert events_of(engine, "contract_renewed") == []

    contracts.sign_contract(renewal["id"], scope=REP_A)
    assert contracts.get_contract(old["id"], scope=REP_A)["status"] == "renewed"
    assert contracts.get_contract(renewal["id"], scope=REP_A)["status"] == "active"
    renewed = events_of(engine, "contract_renewed")
    assert len(renewed) == 1
    assert renewed[0]["contract"]["id"] == old["id"]
    assert renewed[0]["contract"]["status"] == "renewed"
    assert renewed[0]["contract"]["renewed_by_id"] == renewal["id"]
    assert renewed[0]["renewal"]["id"] == renewal["id"]
    assert renewed[0]["renewal"]["end_date"] == "2028-12-31"
    with pytest.raises(Conflict):  # renewed is final
        contracts.renew_contract(old["id"], {}, scope=REP_A)


def test_an_active_contract_past_its_end_reads_expired_and_renews(rpc):
    contracts, sales, _ = rpc
    customer = sales.create_customer({"name": "过期客户"}, scope=REP_A)
    ended = (today() - timedelta(days=1)).isoformat()
    c = contracts.create_contract({"title": "旧合同", "customer_id": customer["id"],
                                   "amount": "500", "start_date": "2025-01-01",
                                   "end_date": ended}, scope=REP_A)
    signed = contracts.sign_contract(c["id"], scope=REP_A)
    assert signed["status"] == "expired"
    assert [x["id"] for x in contracts.list_contracts({"status": "expired"},
                                                      scope=REP_A)["items"]] == [c["id"]]
    assert contracts.list_contracts({"status": "active"}, scope=REP_A)["items"] == []
    renewal = contracts.renew_contract(c["id"], {"amount": "600"}, scope=REP_A)
    assert renewal["amount"] == "600.00" and renewal["start_date"] == today().isoformat()
    contracts.sign_contract(renewal["id"], scope=REP_A)
    assert contracts.get_contract(c["id"], scope=REP_A)["status"] == "renewed"
