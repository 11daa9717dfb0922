"""Satisfaction surveys over HTTP and SMTP with the whole system running: a rep solves a
ticket; the requester gets the survey's e-mail (threaded under the ticket, the link in it) at the
test SMTP server; the link answers without credentials, once; the answer is in the ticket's
history and in the figures and drill-down of the rep and their manager, not in another team's
rep's."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

REP, OTHER_REP, MANAGER = "zhangwei", "chenjing", "manager"
LINK = re.compile(r"(https?://\S+/surveys/([A-Za-z0-9_-]+))")


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def figures(system: System, user: str, **params) -> dict:
    r = system.get("/reports/csat", user=user, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_solved_ticket_is_surveyed_and_the_answer_counted(system: System,
                                                            mailbox: SmtpServer) -> None:
    mark = uuid.uuid4().hex[:8]
    requester = f"csat.{mark}@example.cn"
    rep_id = system.users[REP]
    before = figures(system, MANAGER, assignee_id=rep_id)["total"]
    r = system.post("/tickets", user=REP, json={
        "subject": f"退款没到账 {mark}", "requester_email": requester, "requester_name": "李雷",
        "assignee_id": rep_id})
    assert r.status_code == 201, r.text
    ticket = r.json()
    r = system.patch(f"/tickets/{ticket['id']}", user=REP, json={"status": "solved"})
    assert r.status_code == 200, r.text

    mail = mailbox.wait_for(lambda m: m["To"] == requester, timeout=30)
    assert f"[#{ticket['number']}]" in mail["Subject"]
    body = text_of(mail)
    assert ticket["number"] in body and "李雷" in body
    url, token = LINK.search(body).groups()
    assert url.startswith(system.url)  # the gateway as the outside reaches it

    # the link works without credentials; it tells nothing about the agent
    r = system.get(f"/surveys/{token}")
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["ticket_number"], page["status"], page["rating"]) == \
        (ticket["number"], "open", None)
    assert rep_id not in r.text
    r = system.get(f"/surveys/{token[:-2]}xx")
    assert r.status_code == 404, r.text
    r = system.post(f"/surveys/{token}/answer", json={"rating": "bad"})
    assert r.status_code == 422, r.text
    assert "reason" in r.json()["errors"]
    r = system.post(f"/surveys/{token}/answer",
                    json={"rating": "bad", "reason": "slow", "comment": "等了三天才回复"})
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["rating"]) == ("answered", "bad")
    r = system.post(f"/surveys/{token}/answer", json={"rating": "good"})
    assert r.status_code == 409, r.text  # one answer per ticket

    # the ticket's history has it
    r = system.get(f"/tickets/{ticket['id']}", user=REP)
    assert r.status_code == 200, r.text
    last = r.json()["entries"][-1]
    assert (last["kind"], last["to"], last["from"], last["body"]) == \
        ("csat_answered", "bad", "slow", "等了三天才回复")

    # figures: the manager's and the rep's count it; another team's rep's do not
    after = figures(system, MANAGER, assignee_id=rep_id)["total"]
    assert after["sent"] == before["sent"] + 1
    assert after["answered"] == before["answered"] + 1
    assert after["bad"] == before["bad"] + 1
    assert after["reasons"].get("slow", 0) == before["reasons"].get("slow", 0) + 1
    by_agent = {row["key"]: row for row in figures(system, REP)["items"]}
    assert set(by_agent) - {None} == {rep_id}  # None: unassigned tickets' surveys (the pool)
    assert rep_id not in {row["key"] for row in figures(system, OTHER_REP)["items"]}
    assert figures(system, OTHER_REP, assignee_id=rep_id)["total"]["sent"] == 0

    # the drill-down lists the survey for the manager, not for the other team's rep
    r = system.get("/csat-surveys", user=MANAGER, params={"rating": "bad", "reason": "slow",
                                                          "limit": 200})
    assert r.status_code == 200, r.text
    mine = [s for s in r.json()["items"] if s["ticket_id"] == ticket["id"]]
    assert [(s["rating"], s["comment"], s["assignee_id"]) for s in mine] == \
        [("bad", "等了三天才回复", rep_id)]
    assert "token" not in mine[0]
    r = system.get("/csat-surveys", user=OTHER_REP, params={"limit": 200})
    assert r.status_code == 200, r.text
    assert ticket["id"] not in {s["ticket_id"] for s in r.json()["items"]}
    r = system.get("/reports/csat", user=MANAGER, params={"group_by": "weekday"})
    assert r.status_code == 422, r.text
    assert "group_by" in r.json()["errors"]
