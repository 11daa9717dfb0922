"""Service desk e-mail over SMTP and HTTP with the whole system running: a customer's mail to
the service desk's SMTP listener becomes a ticket (requester, attachment downloadable, another
team's rep 404); the rep's reply over HTTP arrives at the test SMTP server threaded under the
customer's mail; the customer's answer to it lands on the same ticket and reopens it; an
auto-reply creates nothing; the same mail delivered twice is one ticket."""

from __future__ import annotations

import smtplib
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

REP, OTHER_REP = "zhangwei", "chenjing"


def listener(system: System) -> tuple[str, int]:
    host, _, port = system.info.spec("service_desk").env["SERVICE_DESK_SMTP_LISTEN"].rpartition(":")
    return host, int(port)


def send(system: System, msg: EmailMessage) -> None:
    host, port = listener(system)
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.send_message(msg, to_addrs=["support@desk.example.cn"])


def customer_mail(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"王芳 <{sender}>"
    msg["To"] = "support@desk.example.cn"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.cn")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def tickets_of(system: System, sender: str) -> list[dict]:
    r = system.get("/tickets", user="admin", params={"limit": 200})
    assert r.status_code == 200, r.text
    return [t for t in r.json()["items"] if t["requester_email"] == sender]


def test_mail_in_reply_out_answer_reopens(system: System, mailbox: SmtpServer) -> None:
    mark = uuid.uuid4().hex[:8]
    sender = f"wang.{mark}@example.cn"
    first = customer_mail(sender, f"发票抬头错了 {mark}", "请帮我改一下发票抬头")
    first.add_attachment("发票内容".encode(), maintype="application", subtype="pdf",
                         filename="发票.pdf")
    send(system, first)
    send(system, first)  # delivered twice: one ticket
    # 250 came after the commit: the ticket is there at once
    found = tickets_of(system, sender)
    assert len(found) == 1
    ticket = found[0]
    assert (ticket["channel"], ticket["status"], ticket["requester_name"]) == \
        ("email", "new", "王芳")
    assert ticket["subject"] == f"发票抬头错了 {mark}"

    # the rep takes it; the attachment is listed and downloads; another team's rep gets 404
    r = system.patch(f"/tickets/{ticket['id']}", user=REP,
                     json={"assignee_id": system.users[REP]})
    assert r.status_code == 200, r.text
    r = system.get(f"/tickets/{ticket['id']}/attachments", user=REP)
    assert r.status_code == 200, r.text
    [attachment] = r.json()["items"]
    assert (attachment["filename"], attachment["size"]) == ("发票.pdf", len("发票内容".encode()))
    r = system.get(f"/tickets/{ticket['id']}/attachments/{attachment['id']}", user=REP)
    assert r.status_code == 200, r.text
    assert r.content == "发票内容".encode()
    assert "filename*=UTF-8''%E5%8F%91%E7%A5%A8.pdf" in r.headers["Content-Disposition"]
    for path in (f"/tickets/{ticket['id']}/attachments",
                 f"/tickets/{ticket['id']}/attachments/{attachment['id']}"):
        assert system.get(path, user=OTHER_REP).status_code == 404

    # an internal note stays in; the public reply goes out threaded
    r = system.post(f"/tickets/{ticket['id']}/replies", user=REP,
                    json={"body": f"内部备注 {mark}", "public": False})
    assert r.status_code == 201, r.text
    r = system.post(f"/tickets/{ticket['id']}/replies", user=REP,
                    json={"body": f"已为您修改 {mark}"})
    assert r.status_code == 201, r.text
    reply = mailbox.wait_for(lambda m: m["To"] == sender, timeout=20)
    ours = reply["Message-ID"].strip()  # a long Message-ID comes folded onto its own line
    assert ours.startswith("<") and ours.endswith("@localhost>")  # of our domain (CRM_SMTP_FROM)
    assert reply["In-Reply-To"] == first["Message-ID"]
    assert first["Message-ID"] in reply["References"]
    assert f"[#{ticket['number']}]" in reply["Subject"]
    assert mark in reply["Subject"]
    assert reply.get_content().strip() == f"已为您修改 {mark}"

    def outgoing():  # the sender stores "sent" just after the server took the message
        r = system.get(f"/tickets/{ticket['id']}/mail", user=REP)
        assert r.status_code == 200, r.text
        found = [(m["status"], m["message_id"]) for m in r.json()["items"]]
        return found if found == [("sent", ours)] else None

    system.wait_for(outgoing, timeout=20, message="the reply's outbox row never read sent")
    assert not [m for m in mailbox.messages if m["To"] == sender and "内部备注" in str(m)]

    r = system.patch(f"/tickets/{ticket['id']}", user=REP, json={"status": "pending"})
    assert r.status_code == 200, r.text

    # the customer answers our reply: same ticket, reopened
    answer = customer_mail(sender, f"Re: {reply['Subject']}", f"谢谢 {mark}",
                           In_Reply_To=ours, References=f"{first['Message-ID']} {ours}")
    send(system, answer)
    r = system.get(f"/tickets/{ticket['id']}", user=REP)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "open"
    replies = [e for e in body["entries"] if e["kind"] == "reply"]
    assert [(e["author_kind"], e["public"], e["body"]) for e in replies][-1] == \
        ("customer", True, f"谢谢 {mark}")
    assert len(tickets_of(system, sender)) == 1

    # an auto-reply (out of office) creates nothing and is not answered
    send(system, customer_mail(sender, f"自动回复: 我在休假 {mark}", "我在休假",
                               Auto_Submitted="auto-replied"))
    assert len(tickets_of(system, sender)) == 1
    r = system.get(f"/tickets/{ticket['id']}", user=REP)
    assert len(r.json()["entries"]) == len(body["entries"])
    time.sleep(1.0)  # a sender tick or two: still the one reply went out
    assert len([m for m in mailbox.messages if m["To"] == sender]) == 1
