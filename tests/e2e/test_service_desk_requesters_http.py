"""A ticket knows its customer with the whole system running: a customer and its contact made
over HTTP in sales reach the service desk by events; a mail from the contact's address to the
SMTP listener and a ticket made over HTTP both carry the customer, the contact and the tier; the
customer's new tier reaches the open ticket; naming a customer over HTTP needs sight of it."""

from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, OTHER_REP = "zhangwei", "chenjing"


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def mail_from(system: System, sender: str, subject: str) -> None:
    listen = system.info.spec("service_desk").env["SERVICE_DESK_SMTP_LISTEN"]
    host, _, port = listen.rpartition(":")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@desk.example.cn", subject
    msg["Message-ID"] = make_msgid(domain="example.cn")
    msg.set_content("打印机又卡纸了")
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.send_message(msg)


def ticket_by_subject(system: System, subject: str) -> dict:
    r = system.get("/tickets", user="admin", params={"limit": 200})
    assert r.status_code == 200, r.text
    found = [t for t in r.json()["items"] if t["subject"] == subject]
    assert len(found) == 1, found
    return found[0]


def test_requesters_are_known_by_their_address(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    address = f"buyer.{mark}@example.cn"
    customer = created(system.post("/customers", user=REP, json={
        "name": f"苏州{mark}精密机械有限公司", "tier": "B"}))
    contact = created(system.post("/contacts", user=REP, json={
        "customer_id": customer["id"], "name": "赵敏", "email": address.upper()}))

    # by mail: the projection catches up with the sales events within moments
    def linked_ticket_by_mail():
        subject = f"卡纸 {uuid.uuid4().hex[:6]}"
        mail_from(system, address, subject)
        ticket = ticket_by_subject(system, subject)
        return ticket if ticket["customer_id"] else None

    ticket = system.wait_for(linked_ticket_by_mail, timeout=20, interval=0.5,
                             message="the mail's ticket never knew its customer")
    assert (ticket["customer_id"], ticket["contact_id"], ticket["customer_tier"]) == \
        (customer["id"], contact["id"], "B")

    # over HTTP, by address
    by_api = created(system.post("/tickets", user=REP, json={
        "subject": f"发票 {mark}", "requester_email": address}))
    assert (by_api["customer_id"], by_api["customer_tier"]) == (customer["id"], "B")

    # the new tier reaches the open tickets, as an entry of their history
    r = system.patch(f"/customers/{customer['id']}", user=REP, json={"tier": "A"})
    assert r.status_code == 200, r.text
    system.wait_for(lambda: system.get(f"/tickets/{by_api['id']}",
                                       user="admin").json()["customer_tier"] == "A",
                    timeout=20, message="the new tier never reached the ticket")
    entries = system.get(f"/tickets/{by_api['id']}", user="admin").json()["entries"]
    assert [(e["kind"], e["from"], e["to"]) for e in entries if e["kind"] == "tier_changed"] \
        == [("tier_changed", "B", "A")]

    # naming the customer: the rep who sees it may; another team's rep gets a 422 like for
    # a customer that does not exist
    named = created(system.post("/tickets", user=REP, json={
        "subject": f"上门 {mark}", "requester_email": f"x.{mark}@example.cn",
        "customer_id": customer["id"]}))
    assert (named["customer_id"], named["customer_tier"]) == (customer["id"], "A")
    for customer_id in (customer["id"], str(uuid.uuid4())):
        r = system.post("/tickets", user=OTHER_REP, json={
            "subject": "x", "requester_email": "y@example.cn", "customer_id": customer_id})
        assert r.status_code == 422, r.text
        assert list(r.json()["errors"]) == ["customer_id"]
        # checked by the service desk itself (sd-misc), the same problem as before
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["errors"] == {"customer_id": ["no such customer among those you see"]}
        assert r.json()["status"] == 422
