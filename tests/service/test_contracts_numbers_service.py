"""The contracts' numbers through the service's RPC entrypoints (nameko's worker_factory) on a
migrated SQLite and PostgreSQL database: collection by month, aging, DSO, quote win rate and
discount, approval cycle times, the drill-down behind each figure, scope, and the customer
360's summary. Rows are written with the contracts' own use cases (plan, receipts) or as the
quote and approval use cases store them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import (
    ApprovalInstance,
    Contract,
    Instalment,
    Quote,
    QuoteVersion,
    outbox,
)
from services.contracts.service import ContractsService
from services.contracts.usecases import contracts as uc
from shared.context import Context
from shared.db import get_engine
from shared.errors import ValidationFailed
from tests.service.workers import migrated_database, service_worker

REP_A = {"owner_ids": ["rep-a"]}
REP_B = {"owner_ids": ["rep-b"]}
TEAM_A = {"owner_ids": ["rep-a", "rep-a2"]}
ALL = {"all": True}
AS_OF = date(2027, 6, 30)
YEAR = {"date_from": "2027-01-01", "date_to": "2027-12-31"}


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    engine = get_engine(migrated_database(request, tmp_path, "contracts"))
    sessions = sessionmaker(engine, expire_on_commit=False)
    service = service_worker(ContractsService, engine, outbox, EVENT_SCHEMAS,
                             Context(correlation_id="corr-n", actor="rep-a"))
    return service, sessions


def contract(sessions, owner: str, amount: str, plan: list[tuple[str, str]],
             receipts: list[tuple[str, str]], customer: str = "cust-1",
             status: str = "active") -> dict[str, Any]:
    with sessions() as session, session.begin():
        created = uc.create_contract(session, {"title": "t", "customer_id": customer,
                                               "amount": amount}, owner)
        session.get(Contract, created["id"]).status = status
        items = uc.put_payment_plan(session, created["id"], [
            {"due_date": date.fromisoformat(d), "amount": a} for d, a in plan], AS_OF)
        for day, value in receipts:
            uc.record_receipt(session, created["id"], {
                "amount": value, "received_on": date.fromisoformat(day)}, AS_OF)
    return {**created, "instalments": [i["id"] for i in items]}


@pytest.fixture
def booked(world):
    service, sessions = world
    a = contract(sessions, "rep-a", "1000", [("2027-01-15", "400"), ("2027-04-10", "600")],
                 [("2027-01-20", "250")])
    # rep-a2 (rep-a's team): one instalment 100 days overdue at AS_OF, one 20 days
    a2 = contract(sessions, "rep-a2", "300", [("2027-03-22", "100"), ("2027-06-10", "200")],
                  [])
    b = contract(sessions, "rep-b", "5000", [("2027-02-01", "5000")], [("2027-02-03", "1000")],
                 customer="cust-2")
    draft = contract(sessions, "rep-a", "999", [("2027-01-15", "999")], [], status="draft")
    return service, sessions, {"a": a, "a2": a2, "b": b, "draft": draft}


def test_collection_by_month_planned_vs_received_with_scope(booked):
    service, _, _ = booked
    report = service.collection_report(
        {"date_from": "2027-01-01", "date_to": "2027-04-30"}, ALL)
    by_month = {m["month"]: (m["planned"], m["received"]) for m in report["months"]}
    # the draft's 999 is no money due
    assert by_month == {"2027-01": ("400.00", "250.00"), "2027-02": ("5000.00", "1000.00"),
                        "2027-03": ("100.00", "0.00"), "2027-04": ("600.00", "0.00")}
    assert report["total"] == {"planned": "6100.00", "received": "1250.00", "gap": "4850.00"}
    rep = service.collection_report({"date_from": "2027-01-01", "date_to": "2027-04-30"},
                                    REP_A)
    assert rep["total"] == {"planned": "1000.00", "received": "250.00", "gap": "750.00"}
    team = service.collection_report({"date_from": "2027-01-01", "date_to": "2027-04-30"},
                                     TEAM_A)
    assert team["total"]["planned"] == "1100.00"
    # a filter never widens the scope: rep-a asking for rep-b's owners sees nothing
    other = service.collection_report({**YEAR, "owner_ids": ["rep-b"]}, REP_A)
    assert other["total"] == {"planned": "0.00", "received": "0.00", "gap": "0.00"}


def test_aging_buckets_as_of_a_day(booked):
    service, _, ids = booked
    report = service.aging_report({"as_of": AS_OF.isoformat()}, ALL)
    buckets = {b["bucket"]: (b["count"], b["outstanding"]) for b in report["buckets"]}
    # a: 150 left of the January instalment (166 days) and 600 due 2027-04-10 (81 days);
    # a2: 100 due 2027-03-22 (100 days), 200 due 2027-06-10 (20 days); b: 4000 (149 days)
    assert buckets == {"0-30": (1, "200.00"), "31-60": (0, "0.00"), "61-90": (1, "600.00"),
                       ">90": (3, "4250.00")}
    assert report["total"] == {"count": 5, "outstanding": "5050.00"}
    rep_b = service.aging_report({"as_of": AS_OF.isoformat()}, REP_B)
    assert rep_b["total"] == {"count": 1, "outstanding": "4000.00"}
    drill = service.numbers_drill_down("aging", {"as_of": AS_OF.isoformat()}, TEAM_A,
                                       {"bucket": ">90"})
    assert [(r["contract_id"], r["outstanding"], r["days_overdue"]) for r in drill["items"]] == [
        (ids["a"]["id"], "150.00", 166), (ids["a2"]["id"], "100.00", 100)]
    # the receipt's instalment-level outstanding: what the bucket sums
    assert sum(float(r["outstanding"]) for r in drill["items"]) == 250.0
    early = service.aging_report({"as_of": "2027-01-16"}, ALL)
    assert early["total"] == {"count": 1, "outstanding": "150.00"}


def test_dso(booked):
    service, _, _ = booked
    report = service.dso_report({"date_from": "2027-01-01", "date_to": "2027-03-31"}, ALL)
    # billed in Q1: 400 + 5000 + 100 = 5500; unpaid of those due by 03-31: 150 + 4000 + 100
    assert (report["billed"], report["receivables"], report["days"]) == (
        "5500.00", "4250.00", 90)
    assert report["dso_days"] == "69.5"  # 4250 / 5500 x 90
    drill = service.numbers_drill_down("dso", {"date_from": "2027-01-01",
                                               "date_to": "2027-03-31"}, ALL, {})
    assert sorted(r["amount"] for r in drill["items"]) == ["100.00", "400.00", "5000.00"]
    nothing = service.dso_report({"date_from": "2030-01-01", "date_to": "2030-03-31"}, ALL)
    assert nothing["dso_days"] is None


def test_collection_drill_down_pages_exactly_the_records(booked):
    service, _, ids = booked
    planned = service.numbers_drill_down("collection", YEAR, ALL, {"month": "2027-01"})
    assert [r["instalment_id"] for r in planned["items"]] == [ids["a"]["instalments"][0]]
    received = service.numbers_drill_down("collection", YEAR, ALL,
                                          {"month": "2027-02", "kind": "received"})
    assert [(r["contract_id"], r["amount"]) for r in received["items"]] == [
        (ids["b"]["id"], "1000.00")]
    hidden = service.numbers_drill_down("collection", YEAR, REP_A,
                                        {"month": "2027-02", "kind": "received"})
    assert hidden["items"] == []
    # paging: every instalment of the year, two at a time, each once
    seen, cursor = [], None
    for _ in range(5):
        page = service.numbers_drill_down("dso", YEAR, ALL, {}, cursor=cursor, limit=2)
        seen += [r["instalment_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(ValidationFailed) as err:
        service.numbers_drill_down("collection", YEAR, ALL, {})
    assert list(err.value.errors) == ["month"]
    with pytest.raises(ValidationFailed) as err:
        service.numbers_drill_down("nope", YEAR, ALL, {})
    assert list(err.value.errors) == ["figure"]
    with pytest.raises(ValidationFailed) as err:
        service.numbers_drill_down("dso", YEAR, ALL, {}, cursor="garbage!")
    assert list(err.value.errors) == ["cursor"]


def quote(sessions, owner: str, team: str, status: str, gross: str, net: str,
          valid_until: date | None = None, customer: str = "cust-1") -> str:
    now = datetime.now(UTC)
    qid = str(uuid.uuid4())
    terms = {"title": "报价", "currency": "CNY",
             "lines": [{"gross": gross}, {"gross": "1000.00", "optional": True}],
             "totals": {"net_total": net, "grand_total": net}}
    with sessions() as session, session.begin():
        session.add(Quote(id=qid, opportunity_id="opp", customer_id=customer, owner_id=owner,
                          team_id=team, status=status, version=1, created_at=now,
                          updated_at=now))
        session.add(QuoteVersion(quote_id=qid, number=1, valid_until=valid_until, terms=terms,
                                 created_at=now))
    return qid


def test_quote_win_rate_and_discount_by_owner_and_team(world):
    service, sessions = world
    past = date.today() - timedelta(days=10)
    won1 = quote(sessions, "rep-a", "team-a", "accepted", "1000.00", "900.00")  # 10 %
    quote(sessions, "rep-a", "team-a", "accepted", "1000.00", "800.00")  # 20 %
    quote(sessions, "rep-a", "team-a", "rejected", "100.00", "100.00")
    expired = quote(sessions, "rep-a2", "team-a", "sent", "100.00", "100.00", past)
    quote(sessions, "rep-a2", "team-a", "draft", "100.00", "100.00")  # open: not counted
    quote(sessions, "rep-b", "team-b", "accepted", "200.00", "150.00")  # 25 %
    report = service.quote_win_rate({}, ALL)
    owners = {r["owner_id"]: r for r in report["by_owner"]}
    assert (owners["rep-a"]["win_rate_percent"], owners["rep-a"]["average_discount_percent"]
            ) == ("66.67", "15.00")
    assert (owners["rep-a2"]["expired"], owners["rep-a2"]["open"],
            owners["rep-a2"]["win_rate_percent"]) == (1, 1, "0.00")
    teams = {r["team_id"]: r for r in report["by_team"]}
    assert teams["team-a"]["win_rate_percent"] == "50.00"  # 2 / (2 + 1 + 1)
    assert teams["team-b"]["average_discount_percent"] == "25.00"
    assert report["total"]["win_rate_percent"] == "60.00"
    rep = service.quote_win_rate({}, REP_A)
    assert [r["owner_id"] for r in rep["by_owner"]] == ["rep-a"]
    drill = service.numbers_drill_down("win_rate", {}, TEAM_A, {"outcome": "expired"})
    assert [r["quote_id"] for r in drill["items"]] == [expired]
    accepted = service.numbers_drill_down("win_rate", {}, ALL,
                                          {"outcome": "accepted", "owner_id": "rep-a"})
    assert won1 in {r["quote_id"] for r in accepted["items"]} and len(accepted["items"]) == 2


def instance(sessions, submitter: str, flow_id: str, trail: list[tuple[str, str, int | None]],
             status: str = "approved") -> str:
    iid = str(uuid.uuid4())
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    state = {"id": iid, "flow_id": flow_id, "flow_name": "报价审批",
             "steps": [{"index": 0, "name": "经理"}, {"index": 1, "name": "总监"}],
             "trail": [{"at": (base + timedelta(hours=float(h))).isoformat(), "action": a,
                        "step": s} for h, a, s in trail]}
    with sessions() as session, session.begin():
        session.add(ApprovalInstance(
            id=iid, record_type="quote", record_id=iid, open_key=None, status=status,
            flow_id=flow_id, submitter_id=submitter, terms_hash="h", terms_version=1,
            state=state, submitted_at=base, updated_at=base))
    return iid


def test_approval_cycle_times_per_step(world):
    service, sessions = world
    first = instance(sessions, "rep-a", "flow-1", [
        ("0", "submitted", None), ("2", "approve", 0), ("3", "approve", 1),
        ("3", "approved", None)])
    instance(sessions, "rep-a", "flow-1", [
        ("0", "submitted", None), ("4", "approve", 0), ("10", "approve", 1),
        ("10", "approved", None)])
    instance(sessions, "rep-b", "flow-1", [
        ("0", "submitted", None), ("6", "approve", 0), ("6.5", "reject", 1),
        ("6.5", "rejected_instance", 1)], status="rejected")
    report = service.approval_cycle_times({}, ALL)
    steps = {(s["flow_id"], s["step"]): s for s in report["steps"]}
    assert (steps[("flow-1", 0)]["decisions"], steps[("flow-1", 0)]["median_hours"],
            steps[("flow-1", 0)]["p90_hours"]) == (3, 4.0, 6.0)
    assert (steps[("flow-1", 1)]["median_hours"], steps[("flow-1", 1)]["p90_hours"]) == (
        1.0, 6.0)
    assert steps[("flow-1", 1)]["step_name"] == "总监"
    mine = service.approval_cycle_times({}, REP_A)
    assert {s["decisions"] for s in mine["steps"]} == {2}
    drill = service.numbers_drill_down("approval_cycle", {}, REP_A,
                                       {"flow_id": "flow-1", "step": 0}, limit=1)
    assert len(drill["items"]) == 1 and drill["next_cursor"]
    rest = service.numbers_drill_down("approval_cycle", {}, REP_A,
                                      {"flow_id": "flow-1", "step": 0},
                                      cursor=drill["next_cursor"], limit=1)
    assert {drill["items"][0]["approval_id"], rest["items"][0]["approval_id"]} >= {first}
    assert rest["next_cursor"] is None


def test_customer_summary_quotes_contracts_receivables(booked):
    service, sessions, ids = booked
    q = quote(sessions, "rep-a", "team-a", "sent", "100.00", "100.00")
    late = contract(sessions, "rep-a", "100", [("2026-01-05", "100")], [])  # due last year
    quote(sessions, "rep-b", "team-b", "sent", "100.00", "100.00")  # hidden from rep-a
    summary = service.customer_summary("cust-1", REP_A)
    assert [x["id"] for x in summary["quotes"]] == [q]
    by_id = {c["id"]: c for c in summary["contracts"]}
    assert set(by_id) == {ids["a"]["id"], ids["draft"]["id"], late["id"]}
    assert by_id[ids["a"]["id"]]["receivables"] == {  # due in 2027: not overdue today
        "received": "250.00", "outstanding": "750.00", "overdue": "0.00"}
    assert by_id[late["id"]]["receivables"] == {
        "received": "0.00", "outstanding": "100.00", "overdue": "100.00"}
    assert by_id[ids["draft"]["id"]]["receivables"] == {
        "received": "0.00", "outstanding": "0.00", "overdue": "0.00"}
    assert summary["receivables"] == {"received": "250.00", "outstanding": "850.00",
                                      "overdue": "100.00"}
    team = service.customer_summary("cust-1", TEAM_A)
    assert team["receivables"]["outstanding"] == "1150.00"
    assert service.customer_summary("cust-2", REP_A)["contracts"] == []
    with pytest.raises(ValidationFailed):
        service.customer_summary("", REP_A)


def test_bad_filters_name_the_field(world):
    service, _ = world
    for filters, field in (({"date_from": "2027-02-01", "date_to": "2027-01-01"}, "date_to"),
                           ({"date_from": "1066-10-14"}, "date_from"),
                           ({"as_of": "not a day"}, "as_of"),
                           ({"colour": "red"}, "colour")):
        with pytest.raises(ValidationFailed) as err:
            service.collection_report(filters, ALL) if field != "as_of" else \
                service.aging_report(filters, ALL)
        assert field in err.value.errors, (filters, err.value.errors)
    with pytest.raises(ValidationFailed) as err:
        service.numbers_drill_down("aging", {}, ALL, {"bucket": "7-8"})
    assert "bucket" in err.value.errors


# The amounts are stored as numbers (models.Money, migration 0010r) and summed in SQL: the
# figures are exact to the fen, and follow every plan and receipt change at once.


def test_amounts_with_two_decimals_are_summed_exactly(world):
    service, sessions = world
    # 0.10 + 0.20 is not 0.30 in binary floats; 99999999999999.99 has more digits than a
    # double keeps (the cents of it are past 2^53)
    contract(sessions, "rep-a", "100000000000000.30",
             [("2027-01-05", "0.10"), ("2027-01-06", "0.20"),
              ("2027-02-01", "99999999999999.99"), ("2027-02-02", "0.01")],
             [("2027-01-07", "0.10"), ("2027-01-08", "0.10"), ("2027-01-09", "0.10")])
    report = service.collection_report({"date_from": "2027-01-01", "date_to": "2027-02-28"},
                                       ALL)
    by_month = {m["month"]: (m["planned"], m["received"], m["gap"]) for m in report["months"]}
    assert by_month == {"2027-01": ("0.30", "0.30", "0.00"),
                        "2027-02": ("100000000000000.00", "0.00", "100000000000000.00")}
    assert report["total"] == {"planned": "100000000000000.30", "received": "0.30",
                               "gap": "100000000000000.00"}
    aging = service.aging_report({"as_of": AS_OF.isoformat()}, ALL)
    assert aging["total"] == {"count": 2, "outstanding": "100000000000000.00"}
    dso = service.dso_report({"date_from": "2027-01-01", "date_to": "2027-02-28"}, ALL)
    assert (dso["billed"], dso["receivables"]) == ("100000000000000.30", "100000000000000.00")


def test_the_figures_follow_plan_and_receipt_changes(world):
    service, sessions = world
    made = contract(sessions, "rep-a", "1000.00", [("2027-03-01", "1000.00")], [])
    window = {"date_from": "2027-03-01", "date_to": "2027-04-30"}
    as_of = {"as_of": AS_OF.isoformat()}
    assert service.collection_report(window, ALL)["total"]["planned"] == "1000.00"
    # the plan is replaced (no receipt yet): the new instalments count, the old ones are gone
    with sessions() as session, session.begin():
        uc.put_payment_plan(session, made["id"], [
            {"due_date": date(2027, 3, 15), "amount": "333.33"},
            {"due_date": date(2027, 4, 15), "amount": "666.67"}], AS_OF)
    months = {m["month"]: m["planned"]
              for m in service.collection_report(window, ALL)["months"]}
    assert months == {"2027-03": "333.33", "2027-04": "666.67"}
    assert service.aging_report(as_of, ALL)["total"] == {"count": 2, "outstanding": "1000.00"}
    # a receipt: received in its month, and the instalments' paid amounts (numbers now) make
    # the aging's outstanding at once
    with sessions() as session, session.begin():
        uc.record_receipt(session, made["id"], {"amount": "400.01",
                                                "received_on": date(2027, 4, 20)}, AS_OF)
    report = service.collection_report(window, ALL)
    assert report["total"] == {"planned": "1000.00", "received": "400.01", "gap": "599.99"}
    aging = service.aging_report(as_of, ALL)
    assert aging["total"] == {"count": 1, "outstanding": "599.99"}
    drill = service.numbers_drill_down("aging", as_of, ALL, {"bucket": "61-90"})
    assert [(r["amount"], r["paid"], r["outstanding"]) for r in drill["items"]] == [
        ("666.67", "66.68", "599.99")]
    with sessions() as session:  # stored as exact numbers, read back as Decimals
        paid = sorted(i.paid for i in session.query(Instalment).filter_by(
            contract_id=made["id"]))
    assert paid == [Decimal("66.68"), Decimal("333.33")]
    # the plan and the receipts read as the strings they always were
    listed = service.list_receipts(made["id"], ALL)["items"]
    assert [r["amount"] for r in listed] == ["400.01"]
    plan = service.get_payment_plan(made["id"], ALL)["items"]
    assert [(i["amount"], i["paid"]) for i in plan] == [("333.33", "333.33"),
                                                        ("666.67", "66.68")]


def _stored_overdue(sessions) -> set[str]:
    with sessions() as session:
        return {i.id for i in session.query(Instalment).filter_by(status="overdue")}


def _aging_ids(service, day: str) -> set[str]:
    ids: set[str] = set()
    for bucket in ("0-30", "31-60", "61-90", ">90"):
        page = service.numbers_drill_down("aging", {"as_of": day}, ALL, {"bucket": bucket})
        ids |= {r["instalment_id"] for r in page["items"]}
    return ids


def test_the_aging_and_the_stored_overdue_status_agree_after_the_days_sweep(world):
    """The aging computes overdue from the due dates (any `as_of`, no wait for the sweep);
    the sweep stores it (status `overdue`, once, with its event). After the sweep of a day
    they name the same instalments of the signed contracts (README, "Two notions")."""
    service, sessions = world
    with sessions() as session, session.begin():
        signed = uc.create_contract(session, {"title": "t", "customer_id": "cust-1",
                                              "amount": "300"}, "rep-a")
        session.get(Contract, signed["id"]).status = "active"
        draft = uc.create_contract(session, {"title": "t", "customer_id": "cust-1",
                                             "amount": "50"}, "rep-a")
        early = date(2027, 1, 1)  # the plans were written when nothing was due yet
        plan = uc.put_payment_plan(session, signed["id"], [
            {"due_date": date(2027, 2, 1), "amount": "100"},
            {"due_date": date(2027, 6, 1), "amount": "100"},
            {"due_date": date(2027, 9, 1), "amount": "100"}], early)
        uc.put_payment_plan(session, draft["id"], [
            {"due_date": date(2027, 2, 1), "amount": "50"}], early)
    day = AS_OF.isoformat()
    due = {plan[0]["id"], plan[1]["id"]}
    # before the day's sweep: the report counts them already, the stored status does not
    assert _aging_ids(service, day) == due
    assert _stored_overdue(sessions) == set()
    service.mark_overdue(day)
    assert _stored_overdue(sessions) == due == _aging_ids(service, day)
    # a day in the past is computed for that day; the stored status is today's
    assert _aging_ids(service, "2027-03-01") == {plan[0]["id"]}
