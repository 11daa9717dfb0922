"""The service_desk e-mail part over a migrated SQLite and PostgreSQL database: intake into
tickets (threading, reopening, auto-replies, idempotency, attachments, a failure before commit),
replies out through the mail outbox (threading headers, retries, internal notes), and the real
SMTP listener in a nameko container answering 250 only after commit and 451 on a failure."""

from __future__ import annotations

import base64
import json
import smtplib
import socket
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from nameko.containers import ServiceContainer
from nameko.extensions import DependencyProvider
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services.service_desk.contract import EVENT_SCHEMAS
from services.service_desk.models import MailOutboxRow, TicketRow, outbox
from services.service_desk.service import ServiceDeskService
from services.service_desk.smtp import smtp_intake
from services.service_desk.usecases import mail, mail_outbox, tickets
from shared.context import CallContext, Context
from shared.db import Database, get_engine
from shared.errors import NotFound
from shared.outbox import EventRecorder
from tests.service.workers import migrated_database, service_worker

ADMIN = {"all": True}
REP_B = {"owner_ids": ["rep-b"], "include_pool": False}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return migrated_database(request, tmp_path, "service_desk")


@pytest.fixture(autouse=True)
def _mail_settings(monkeypatch):
    monkeypatch.setenv("CRM_SMTP_FROM", "客服 <support@desk.example.cn>")
    monkeypatch.setenv("SERVICE_DESK_MAIL_MAX_ATTACHMENT_MB", "0.01")  # 10 KB
    mail_outbox.reset_settings()
    yield
    mail_outbox.reset_settings()


@pytest.fixture
def service(database_url):
    engine = get_engine(database_url)
    ctx = Context(correlation_id="corr-mail", actor=None)
    worker = service_worker(ServiceDeskService, engine, outbox, EVENT_SCHEMAS, ctx)
    worker.engine = engine
    return worker


class FakeTransport:
    def __init__(self):
        self.sent: list[tuple[EmailMessage, str]] = []
        self.fail_with: Exception | None = None

    def send(self, message, to_address):
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((message, to_address))


def customer_mail(subject="发票抬头错了", body="请帮我改一下", sender="王芳 <wang@example.cn>",
                  message_id=None, in_reply_to=None, attachments=(), charset="utf-8",
                  **headers) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@desk.example.cn"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.cn")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body, charset=charset)
    for filename, content in attachments:
        msg.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return msg.as_bytes()


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def events_of(engine, event_type):
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e for e in map(json.loads, rows) if e["event_type"] == event_type]


def test_a_mail_becomes_a_ticket_once_with_its_attachments(service):
    raw = customer_mail(attachments=[("发票.pdf", b"%PDF-1.4 small"),
                                     ("big.pdf", b"x" * 20_000)], message_id="<m1@example.cn>")
    result = service.receive_mail(raw, "wang@example.cn", ("support@desk.example.cn",))
    assert result["outcome"] == "created"
    assert result["number"] == "T-000001"
    ticket = service.get_ticket(result["ticket_id"], ADMIN)
    assert ticket["channel"] == "email"
    assert ticket["subject"] == "发票抬头错了"
    assert ticket["requester_email"] == "wang@example.cn"
    assert ticket["requester_name"] == "王芳"
    body = ticket["entries"][0]["body"]
    assert body.startswith("请帮我改一下")
    assert "big.pdf" in body and "not kept" in body  # over the per-attachment limit
    listed = service.list_ticket_attachments(ticket["id"], ADMIN)["items"]
    assert [(a["filename"], a["size"]) for a in listed] == [("发票.pdf", 14)]
    got = service.get_ticket_attachment(ticket["id"], listed[0]["id"], ADMIN)
    assert base64.b64decode(got["content"]) == b"%PDF-1.4 small"
    with pytest.raises(NotFound):  # another team's rep sees neither ticket nor attachment
        service.get_ticket_attachment(ticket["id"], listed[0]["id"], REP_B)
    with pytest.raises(NotFound):
        service.list_ticket_attachments(ticket["id"], REP_B)
    assert [e["data"]["ticket"]["id"] for e in events_of(service.engine, "ticket_created")] \
        == [ticket["id"]]

    again = service.receive_mail(raw, "wang@example.cn", ("support@desk.example.cn",))
    assert again["outcome"] == "duplicate"
    assert again["ticket_id"] == ticket["id"]
    assert count(service.engine, TicketRow) == 1
    assert len(service.list_ticket_attachments(ticket["id"], ADMIN)["items"]) == 1


def test_reply_goes_out_threaded_and_the_answer_reopens_the_ticket(service):
    first = service.receive_mail(customer_mail(message_id="<c1@example.cn>"), "", ())
    ticket_id = first["ticket_id"]
    service.add_ticket_reply(ticket_id, {"body": "内部备注", "public": False}, ADMIN)
    service.add_ticket_reply(ticket_id, {"body": "已为您修改"}, ADMIN)
    service.update_ticket(ticket_id, {"status": "pending"}, ADMIN)
    transport = FakeTransport()
    assert mail_outbox.deliver_due(service.db, transport) == 1  # the note never goes out
    message, to = transport.sent[0]
    assert to == "wang@example.cn"
    assert message["In-Reply-To"] == "<c1@example.cn>"
    assert message["References"] == "<c1@example.cn>"
    assert "[#T-000001]" in message["Subject"] and "发票抬头错了" in message["Subject"]
    ours = message["Message-ID"]
    assert ours.endswith("@desk.example.cn>")
    assert message.get_content().strip() == "已为您修改"
    assert mail_outbox.deliver_due(service.db, transport) == 0  # sent once
    state = service.list_ticket_mail(ticket_id, ADMIN)["items"]
    assert [(m["status"], m["attempts"]) for m in state] == [("sent", 1)]

    answer = service.receive_mail(customer_mail(subject="Re: 发票抬头错了", body="谢谢",
                                                in_reply_to=ours), "", ())
    assert answer["outcome"] == "replied"
    assert answer["ticket_id"] == ticket_id
    ticket = service.get_ticket(ticket_id, ADMIN)
    assert ticket["status"] == "open"  # reopened from pending
    assert ticket["entries"][-2]["kind"] == "reply"
    assert ticket["entries"][-2]["author_kind"] == "customer"
    assert ticket["entries"][-2]["body"] == "谢谢"
    assert count(service.engine, TicketRow) == 1

    # the next reply references the whole thread, In-Reply-To the customer's latest
    service.add_ticket_reply(ticket_id, {"body": "不客气"}, ADMIN)
    mail_outbox.deliver_due(service.db, transport)
    second = transport.sent[1][0]
    assert second["In-Reply-To"] == answer["message_id"]
    assert second["References"].split() == ["<c1@example.cn>", ours, answer["message_id"]]


def test_threading_by_subject_tag_only_for_the_requester(service):
    first = service.receive_mail(customer_mail(), "", ())
    tagged = customer_mail(subject=f"Re: 还有问题 [{first['number']}]", body="补充")
    assert service.receive_mail(tagged, "", ())["ticket_id"] == first["ticket_id"]
    stranger = customer_mail(subject=f"[#{first['number']}] 我也要", sender="x@evil.example")
    other = service.receive_mail(stranger, "", ())
    assert other["outcome"] == "created" and other["ticket_id"] != first["ticket_id"]


def test_a_closed_tickets_mail_opens_a_new_ticket(service):
    first = service.receive_mail(customer_mail(message_id="<c2@example.cn>"), "", ())
    service.update_ticket(first["ticket_id"], {"status": "closed"}, ADMIN)
    later = service.receive_mail(customer_mail(in_reply_to="<c2@example.cn>"), "", ())
    assert later["outcome"] == "created" and later["ticket_id"] != first["ticket_id"]


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"}, {"X_Autoreply": "yes"}, {"Precedence": "bulk"},
    {"X_Auto_Response_Suppress": "All"},
])
def test_auto_replies_create_nothing(service, headers):
    result = service.receive_mail(customer_mail(subject="自动回复: 我在休假", **headers), "", ())
    assert result["outcome"] == "ignored" and result["ticket_id"] is None
    assert count(service.engine, TicketRow) == 0
    assert count(service.engine, MailOutboxRow) == 0


def test_loops_are_recognised(service):
    ours = service.receive_mail(customer_mail(sender="support@desk.example.cn"), "", ())
    assert ours["outcome"] == "ignored" and "loop" in ours["reason"]
    bounced = customer_mail(message_id="<abc.crm-service-desk@desk.example.cn>")
    assert service.receive_mail(bounced, "", ())["outcome"] == "ignored"
    assert count(service.engine, TicketRow) == 0


def test_a_failure_before_commit_stores_nothing_and_the_resend_works(service, monkeypatch):
    raw = customer_mail(attachments=[("a.pdf", b"%PDF")])
    real = tickets._next_number

    def broken(session):
        real(session)
        raise OperationalError("UPDATE ticket_counters", {}, Exception("database is down"))

    monkeypatch.setattr(tickets, "_next_number", broken)
    with pytest.raises(OperationalError):
        service.receive_mail(raw, "", ())
    assert count(service.engine, TicketRow) == 0
    monkeypatch.setattr(tickets, "_next_number", real)
    result = service.receive_mail(raw, "", ())
    assert result["outcome"] == "created" and result["number"] == "T-000001"
    assert len(service.list_ticket_attachments(result["ticket_id"], ADMIN)["items"]) == 1


def test_sending_retries_with_back_off_and_gives_up_on_a_refusal(service):
    ticket = service.receive_mail(customer_mail(), "", ())["ticket_id"]
    service.add_ticket_reply(ticket, {"body": "第一次"}, ADMIN)
    transport = FakeTransport()
    transport.fail_with = mail_outbox.TemporaryFailure("connection refused")
    assert mail_outbox.deliver_due(service.db, transport) == 1
    state = service.list_ticket_mail(ticket, ADMIN)["items"][0]
    assert (state["status"], state["attempts"]) == ("pending", 1)
    assert "connection refused" in state["last_error"]
    assert mail_outbox.deliver_due(service.db, transport) == 0  # not due yet (back-off)
    with service.db.begin() as session:  # the back-off has passed
        session.get(MailOutboxRow, state["id"]).next_attempt_at = mail.utcnow()
    transport.fail_with = None
    assert mail_outbox.deliver_due(service.db, transport) == 1
    assert service.list_ticket_mail(ticket, ADMIN)["items"][0]["status"] == "sent"
    assert len(transport.sent) == 1

    service.add_ticket_reply(ticket, {"body": "第二次"}, ADMIN)
    transport.fail_with = mail_outbox.PermanentFailure("550 no such user")
    mail_outbox.deliver_due(service.db, transport)
    assert service.list_ticket_mail(ticket, ADMIN)["items"][1]["status"] == "failed"


# --------------------------------------------------------------------------- the listener


class _Events(DependencyProvider):
    """The outbox recorder without the relay: the test needs no broker."""

    def get_dependency(self, worker_ctx):
        return EventRecorder("service_desk", outbox, EVENT_SCHEMAS, Context(correlation_id="mail"))


class ListenerService:
    name = "service_desk"
    db = Database("service_desk")
    events = _Events()
    context = CallContext()

    @smtp_intake
    def receive_mail(self, raw, mail_from, rcpt_tos):
        return mail.receive(self, raw, mail_from, rcpt_tos)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def listener(database_url, monkeypatch):
    port = _free_port()
    monkeypatch.setenv("SERVICE_DESK_DATABASE_URL", database_url)
    monkeypatch.setenv("SERVICE_DESK_SMTP_LISTEN", f"127.0.0.1:{port}")
    monkeypatch.setenv("SERVICE_DESK_SMTP_MAX_BYTES", "200000")
    monkeypatch.setenv("SERVICE_DESK_SMTP_MAX_RECIPIENTS", "2")
    container = ServiceContainer(ListenerService, {"AMQP_URI": "memory://"})
    container.start()
    try:
        yield port, get_engine(database_url)
    finally:
        container.stop()


def test_the_listener_answers_250_after_commit_and_451_on_a_failure(listener, monkeypatch):
    port, engine = listener
    raw = customer_mail(subject="=?gb2312?b?" + base64.b64encode("打印机坏了".encode("gbk"))
                        .decode() + "?=", body="打印机不出纸", message_id="<l1@example.cn>")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.sendmail("wang@example.cn", ["support@desk.example.cn"], raw)
    assert count(engine, TicketRow) == 1
    with engine.connect() as conn:
        assert conn.execute(select(TicketRow.subject)).scalar_one() == "打印机坏了"

    real = tickets._next_number

    def broken(session):
        raise OperationalError("UPDATE ticket_counters", {}, Exception("database is down"))

    monkeypatch.setattr(tickets, "_next_number", broken)
    second = customer_mail(message_id="<l2@example.cn>")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("wang@example.cn", ["support@desk.example.cn"], second)
        assert refused.value.smtp_code == 451
    assert count(engine, TicketRow) == 1
    monkeypatch.setattr(tickets, "_next_number", real)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:  # the sender's retry
        smtp.sendmail("wang@example.cn", ["support@desk.example.cn"], second)
        smtp.sendmail("wang@example.cn", ["support@desk.example.cn"], second)  # and again
    assert count(engine, TicketRow) == 2

    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:  # at most 2 recipients
        refused = smtp.sendmail("wang@example.cn",
                                [f"s{i}@desk.example.cn" for i in range(3)], raw)
    assert list(refused) == ["s2@desk.example.cn"] and refused["s2@desk.example.cn"][0] == 452
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused,
                            smtplib.SMTPServerDisconnected)):
            smtp.sendmail("wang@example.cn", ["support@desk.example.cn"],
                          customer_mail(body="长" * 300_000))
    assert count(engine, TicketRow) == 2


def test_a_mail_without_from_takes_the_envelope_sender(service):
    raw = b"Subject: =?utf-8?b?5rWL6K+V?=\r\nMessage-ID: <nofrom@x>\r\n\r\nbody\r\n"
    result = service.receive_mail(raw, "Envelope@Example.cn", ("support@desk.example.cn",))
    ticket = service.get_ticket(result["ticket_id"], ADMIN)
    assert (ticket["requester_email"], ticket["subject"]) == ("envelope@example.cn", "测试")
    assert service.receive_mail(b"Subject: x\r\n\r\nbody\r\n", "", ())["outcome"] == "ignored"
