"""Overdue instalments and renewals end to end: the whole system as processes, over HTTP and
the real broker, with the shipped rules installed and the rules service's controllable clock.

- A signed contract with a payment plan and a partial receipt -> the admin's overdue sweep
  (as of a day after the due date) -> `instalment_overdue` -> the shipped rule's e-mail at the
  test SMTP server, to the owner, naming the contract number and the amount outstanding; a
  second sweep marks nothing. 7 days later (clock advanced) the owner's manager gets the
  escalation; an instalment paid in full in between gets none.
- A renewal over HTTP (another team's rep: 404); the renewal reminder fires 30 days before a
  contract's end date (clock advanced) with a task and an e-mail to the owner, and not for a
  contract that was renewed in between.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.system import ROOT, System

pytestmark = pytest.mark.e2e

DAY = 86400
OVERDUE_RULE = "contract-instalment-overdue"
ESCALATION_RULE = "instalment-overdue-7d-escalation"
RENEWAL_RULE = "contract-renewal-reminder-30d"


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def seeded(system: System) -> Iterator[System]:
    """The shipped rules installed (what `make run` does), the owner and their manager in the
    rules service's directory, and a probe rule recording a (no_match) run for every contracts
    event, so the test knows when the rules service has taken an event in."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env["CRM_DATA_DIR"] = str(system.data_dir)
    subprocess.run([sys.executable, "-m", "services.rules.seed"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    for name in ("zhangwei", "manager"):
        system.wait_for(
            lambda name=name: system.get(f"/assignment/members/{system.users[name]}",
                                         user="admin").status_code == 200,
            timeout=20, message=f"{name} never reached the rules service's directory")
    probe = ok(system.post("/rules", user="admin", json={
        "name": f"probe {tag()}", "trigger": {"type": "event", "event": "contracts.*"},
        "conditions": "False",
        "actions": [{"type": "notify", "to": ["owner"], "channels": ["in_app"],
                     "title": "never"}]}), 201)
    system.probe_rule = probe["id"]
    yield system
    system.post(f"/rules/{probe['id']}/disable", user="admin")


def runs(system: System, rule_id: str, record_key: str) -> list[dict[str, Any]]:
    return ok(system.get("/rule-runs", user="admin",
                         params={"rule_id": rule_id, "record_key": record_key}))["items"]


def taken_in(system: System, record_key: str, count: int) -> None:
    """Wait until the rules service has taken `count` contracts events about the record."""
    system.wait_for(lambda: len(runs(system, system.probe_rule, record_key)) >= count,
                    timeout=30, message=f"the rules service did not take in {record_key}")


def advance(system: System, seconds: float) -> None:
    ok(system.post("/system/clock", user="admin", json={"advance_seconds": seconds}))


def clock_today(system: System) -> date:
    now = datetime.fromisoformat(ok(system.get("/system/clock", user="admin"))["now"])
    return now.astimezone(ZoneInfo("Asia/Shanghai")).date()


def email_of(system: System, username: str) -> str:
    return ok(system.get(f"/users/{system.users[username]}", user="admin"))["email"]


def signed_contract(system: System, amount: str, plan: list[dict] | None = None,
                    **terms: Any) -> dict[str, Any]:
    customer = ok(system.post("/customers", user="zhangwei",
                              json={"name": f"昆山{tag()}电子有限公司"}), 201)
    contract = ok(system.post("/contracts", user="zhangwei", json={
        "title": f"产线改造{tag()}", "customer_id": customer["id"], "amount": amount,
        **terms}), 201)
    if plan:
        contract["plan"] = ok(system.put(f"/contracts/{contract['id']}/payment-plan",
                                         user="zhangwei", json={"instalments": plan}))["items"]
    ok(system.post(f"/contracts/{contract['id']}/sign", user="zhangwei"))
    return contract


def test_overdue_instalment_mails_the_owner_and_escalates_to_the_manager(seeded, mailbox):
    system = seeded
    owner_mail, manager_mail = email_of(system, "zhangwei"), email_of(system, "manager")
    late = signed_contract(system, "100000", [
        {"due_date": "2027-01-31", "amount": "60000"},
        {"due_date": "2099-06-30", "amount": "40000"}])
    paid_later = signed_contract(system, "5000", [
        {"due_date": "2027-01-31", "amount": "5000"}])
    first = late["plan"][0]
    ok(system.post(f"/contracts/{late['id']}/receipts", user="zhangwei", json={
        "amount": "25000", "received_on": "2027-01-20", "method": "bank"}), 201)

    refused = system.post("/contracts/overdue-sweeps", user="zhangwei",
                          json={"as_of": "2027-02-10"})
    assert refused.status_code == 403, refused.text
    swept = ok(system.post("/contracts/overdue-sweeps", user="admin",
                           json={"as_of": "2027-02-10"}))
    assert swept["as_of"] == "2027-02-10"
    mine = {m["id"]: m for m in swept["marked"]
            if m["contract_id"] in (late["id"], paid_later["id"])}
    assert set(mine) == {first["id"], paid_later["plan"][0]["id"]}
    assert (mine[first["id"]]["outstanding"], mine[first["id"]]["days_overdue"]) == (
        "35000.00", 10)
    again = ok(system.post("/contracts/overdue-sweeps", user="admin",
                           json={"as_of": "2027-02-11"}))
    assert not {m["id"] for m in again["marked"]} & set(mine)
    plan = ok(system.get(f"/contracts/{late['id']}/payment-plan", user="zhangwei"))["items"]
    assert [p["status"] for p in plan] == ["overdue", "pending"]
    problem = system.get(f"/contracts/{late['id']}/payment-plan", user="chenjing")
    assert problem.status_code == 404, problem.text

    message = mailbox.wait_for(lambda m: owner_mail in str(m["To"])
                               and late["number"] in str(m["Subject"]), timeout=30)
    assert "回款逾期" in str(message["Subject"])
    body = message.get_body(("plain", "html")).get_content()
    assert late["number"] in body and "35000.00" in body and "2027-01-31" in body
    inbox = ok(system.get("/notifications", user="zhangwei", params={"limit": 200}))["items"]
    assert any(late["number"] in n["title"] for n in inbox)

    # paid in full before the 7 days: instalment_paid cancels its escalation
    ok(system.post(f"/contracts/{paid_later['id']}/receipts", user="zhangwei", json={
        "amount": "5000", "received_on": "2027-02-12"}), 201)
    paid_key = f"instalment:{paid_later['plan'][0]['id']}"
    taken_in(system, paid_key, 2)  # instalment_overdue, instalment_paid
    taken_in(system, f"instalment:{first['id']}", 1)
    advance(system, 7 * DAY + 60)
    escalation = mailbox.wait_for(lambda m: manager_mail in str(m["To"])
                                  and late["number"] in str(m["Subject"]), timeout=30)
    assert "升级" in str(escalation["Subject"])
    fired = system.wait_for(
        lambda: [r for r in runs(system, ESCALATION_RULE, f"instalment:{first['id']}")
                 if r["trigger"] == "timer" and r["status"] == "completed"], timeout=30)
    assert len(fired) == 1
    assert runs(system, ESCALATION_RULE, paid_key) == []
    assert not [m for m in mailbox.messages if paid_later["number"] in str(m["Subject"])
                and "升级" in str(m["Subject"])]


def test_renewal_over_http_and_the_renewal_reminder_30_days_before_the_end(seeded, mailbox):
    system = seeded
    owner_mail = email_of(system, "zhangwei")
    start = clock_today(system)
    end = (start + timedelta(days=35)).isoformat()
    reminded = signed_contract(system, "80000", start_date=start.isoformat(), end_date=end)
    renewed = signed_contract(system, "90000", start_date=start.isoformat(), end_date=end)

    hidden = system.post(f"/contracts/{renewed['id']}/renewals", user="chenjing", json={})
    assert hidden.status_code == 404, hidden.text
    created = system.post(f"/contracts/{renewed['id']}/renewals", user="zhangwei",
                          json={"amount": "95000"})
    renewal = ok(created, 201)
    assert created.headers["Location"] == f"/contracts/{renewal['id']}"
    assert renewal["status"] == "draft" and renewal["renews_id"] == renewed["id"]
    assert renewal["amount"] == "95000.00"
    assert renewal["start_date"] == (date.fromisoformat(end) + timedelta(days=1)).isoformat()
    twice = system.post(f"/contracts/{renewed['id']}/renewals", user="zhangwei", json={})
    assert twice.status_code == 409, twice.text
    ok(system.post(f"/contracts/{renewal['id']}/sign", user="zhangwei"))
    old = ok(system.get(f"/contracts/{renewed['id']}", user="zhangwei"))
    assert old["status"] == "renewed" and old["renewed_by_id"] == renewal["id"]

    taken_in(system, f"contract:{reminded['id']}", 2)  # created, signed
    taken_in(system, f"contract:{renewed['id']}", 3)  # created, signed, renewed
    advance(system, 6 * DAY)  # past 09:00 of the end date - 30 days
    message = mailbox.wait_for(lambda m: owner_mail in str(m["To"])
                               and reminded["number"] in str(m["Subject"])
                               and "续约" in str(m["Subject"]), timeout=30)
    assert end in str(message["Subject"])
    tasks = ok(system.get("/tasks", user="zhangwei",
                          params={"mine": "true", "limit": 200}))["items"]
    assert [t["title"] for t in tasks if t["record_id"] == reminded["id"]] == [
        f"续约跟进：合同 {reminded['number']}"]
    # the renewed contract's timer fired too, and its conditions (status active) held not
    skipped = system.wait_for(
        lambda: [r for r in runs(system, RENEWAL_RULE, f"contract:{renewed['id']}")
                 if r["trigger"] == "timer"], timeout=30)
    assert [r["status"] for r in skipped] == ["no_match"]
    assert not [m for m in mailbox.messages if renewed["number"] in str(m["Subject"])]
    assert not [t for t in tasks if t["record_id"] == renewed["id"]]
