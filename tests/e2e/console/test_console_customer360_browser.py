"""The customer 360's later parts in headless Chromium against the whole system: a rep's
customer with a signed contract part paid and two tickets, one unassigned (in the pool everyone
sees) and one assigned to a service agent (not the rep's to see). The rep's 360 shows the
receivables and only the unassigned ticket, with its SLA state, and opens its desk page.
Screenshots go to var/test-artefacts/console/ (120-121)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.e2e.console.browser import ARTEFACTS, run_scenario
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, AGENT = "zhangwei", "liuyang"


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:500])
    return response.json()


def test_the_reps_360_shows_receivables_and_the_tickets_the_rep_may_see(
        system: System, chromium: str) -> None:
    tag = secrets.token_hex(3)
    customer = _ok(system.post("/customers", user=REP,
                               json={"name": f"嘉兴{tag}工单客户有限公司"}), 201)
    contract = _ok(system.post("/contracts", user=REP, json={
        "title": f"工单客户合同{tag}", "customer_id": customer["id"], "amount": "80000"}), 201)
    _ok(system.put(f"/contracts/{contract['id']}/payment-plan", user=REP, json={
        "instalments": [{"due_date": "2099-03-31", "amount": "80000"}]}))
    _ok(system.post(f"/contracts/{contract['id']}/sign", user=REP))
    _ok(system.post(f"/contracts/{contract['id']}/receipts", user=REP, json={
        "amount": "30000", "received_on": "2027-01-20", "method": "bank"}), 201)
    visible = _ok(system.post("/tickets", user="admin", json={
        "subject": f"发票抬头错误 {tag}", "requester_email": f"wang.{tag}@example.cn",
        "description": "请重开发票", "priority": "urgent", "customer_id": customer["id"],
        "channel": "api"}), 201)
    hidden = _ok(system.post("/tickets", user="admin", json={
        "subject": f"设备维修 {tag}", "requester_email": f"zhao.{tag}@example.cn",
        "description": "设备无法启动", "priority": "normal", "customer_id": customer["id"],
        "channel": "api", "assignee_id": system.users[AGENT]}), 201)
    # what the API says the rep sees, which the screen must show
    view = _ok(system.get(f"/customers/{customer['id']}/360", user=REP))
    assert view["receivables"]["outstanding"] == "50000.00", view["receivables"]
    assert [t["id"] for t in view["tickets"]["recent"]] == [visible["id"]], view["tickets"]
    assert system.get(f"/tickets/{hidden['id']}", user=REP).status_code == 404

    run_scenario("rep_360_tickets", {
        "url": system.url, "artefacts": str(ARTEFACTS), "rep": REP,
        "customer_id": customer["id"], "visible_ticket_id": visible["id"],
        "visible_subject": visible["subject"], "hidden_subject": hidden["subject"],
        "outstanding": "50000.00"})
    for shot in ("120-customer-360-tickets", "121-ticket-from-360"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0, shot
