"""Email and webhook delivery against real servers: aiosmtpd (tests/support/smtp_server.py) and an
http.server endpoint (tests/support/webhook_receiver.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.rules.notify import (
    DeliveryFailed,
    EmailSender,
    deliver,
    generate_secret,
    verify,
)
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import Reply, WebhookReceiver

REFUSED = "gone@example.cn"
DEFERRED = "busy@example.cn"


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    smtp_server.refuse.add(REFUSED)
    smtp_server.defer.add(DEFERRED)
    yield smtp_server
    smtp_server.refuse.discard(REFUSED)
    smtp_server.defer.discard(DEFERRED)


@pytest.fixture
def mailbox(smtp: SmtpServer) -> SmtpServer:
    smtp.clear()
    return smtp


@pytest.fixture
def sender(mailbox: SmtpServer) -> EmailSender:
    return EmailSender(mailbox.host, mailbox.port, "客户管理系统 <crm@demo.crm.local>", timeout=5)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- email


def test_chinese_subject_and_body_arrive_intact(sender: EmailSender, mailbox: SmtpServer) -> None:
    subject = "新线索：苏州精工机械有限公司（高意向）"
    text = "立即联系 李雷（苏州精工机械有限公司）\n电话：+8613800138000\n"
    message_id = sender.send(
        ["zhangwei@demo.crm.local"], subject, text, html="<p>立即联系 <b>李雷</b></p>",
        headers={"X-CRM-Rule": "rule-42"},
    )

    message = mailbox.wait_for(lambda m: m["Message-ID"] == message_id)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "客户管理系统"
    assert message["From"].addresses[0].addr_spec == "crm@demo.crm.local"
    assert message["To"].addresses[0].addr_spec == "zhangwei@demo.crm.local"
    assert message["X-CRM-Rule"] == "rule-42"
    # MIME text travels with CRLF line ends (its canonical form)
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert "<b>李雷</b>" in message.get_body(("html",)).get_content()
    envelope = mailbox.envelopes[-1]
    assert envelope.mail_from == "crm@demo.crm.local"
    assert envelope.rcpt_tos == ("zhangwei@demo.crm.local",)


def test_one_message_reaches_several_recipients(sender: EmailSender, mailbox: SmtpServer) -> None:
    to = ["zhangwei@demo.crm.local", "lina@demo.crm.local", "manager@demo.crm.local"]
    message_id = sender.send(to, "本周待办", "3 项跟进到期")

    message = mailbox.wait_for(lambda m: m["Message-ID"] == message_id)
    assert [a.addr_spec for a in message["To"].addresses] == to
    assert set(mailbox.envelopes[-1].rcpt_tos) == set(to)
    assert len(mailbox.messages) == 1  # one message, not one per recipient


def test_a_refused_recipient_fails_permanently(sender: EmailSender, mailbox: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        sender.send([REFUSED], "提醒", "内容")
    assert failure.value.permanent
    assert REFUSED in failure.value.reason and "550" in failure.value.reason
    assert mailbox.messages == []


def test_a_deferred_recipient_fails_temporarily(sender: EmailSender, mailbox: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        sender.send([DEFERRED], "提醒", "内容")
    assert not failure.value.permanent
    assert "450" in failure.value.reason


def test_some_recipients_refused_names_them_and_keeps_the_message_id(
    sender: EmailSender, mailbox: SmtpServer
) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        sender.send(["lina@demo.crm.local", REFUSED], "提醒", "内容")
    assert failure.value.permanent
    assert list(failure.value.refused) == [REFUSED]
    delivered = mailbox.wait_for(lambda m: m["Message-ID"] == failure.value.message_id)
    assert mailbox.envelopes[-1].rcpt_tos == ("lina@demo.crm.local",)
    assert delivered["Subject"] == "提醒"


def test_a_shared_connection_sends_several_messages_in_one_session(
    sender: EmailSender, mailbox: SmtpServer
) -> None:
    before = mailbox.sessions
    with sender.connection() as connection:
        first = sender.send(["zhangwei@demo.crm.local"], "提醒一", "内容", connection=connection)
        with pytest.raises(DeliveryFailed) as refused:  # a refused address leaves it usable
            sender.send([REFUSED], "提醒二", "内容", connection=connection)
        assert refused.value.permanent
        connection.smtp.sock.shutdown(socket.SHUT_RDWR)  # as if the relay had dropped it
        third = sender.send(["lina@demo.crm.local"], "提醒三", "内容", connection=connection)
    assert {m["Message-ID"] for m in mailbox.messages} == {first, third}
    assert mailbox.sessions - before == 2  # the second session replaced the dropped one


def test_no_server_listening_fails_temporarily() -> None:
    sender = EmailSender("127.0.0.1", closed_port(), "crm@demo.crm.local", timeout=2)
    with pytest.raises(DeliveryFailed) as failure:
        sender.send(["zhangwei@demo.crm.local"], "提醒", "内容")
    assert not failure.value.permanent
    assert "cannot reach SMTP server" in failure.value.reason


def test_from_env_sends_to_the_configured_server(
    mailbox: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SMTP_HOST", mailbox.host)
    monkeypatch.setenv("CRM_SMTP_PORT", str(mailbox.port))
    monkeypatch.setenv("CRM_SMTP_FROM", "销售助手 <sales@demo.crm.local>")
    message_id = EmailSender.from_env().send(["chenjing@demo.crm.local"], "生日提醒", "明天生日")
    message = mailbox.wait_for(lambda m: m["Message-ID"] == message_id)
    assert message["From"].addresses[0].display_name == "销售助手"


# --------------------------------------------------------------------------- webhooks


BODY = json.dumps(
    {"type": "lead.created", "data": {"name": "李雷", "company": "苏州精工"}},
    ensure_ascii=False, separators=(",", ":"),
).encode()


def test_a_delivered_webhook_verifies_with_the_secret(receiver: WebhookReceiver) -> None:
    secret = generate_secret()
    receiver.responses = [Reply(200, body="收到")]
    outcome = deliver(receiver.url, secret, "msg_1", BODY)

    assert outcome.ok and outcome.status_code == 200
    assert not outcome.retry and not outcome.disable and outcome.error is None
    assert outcome.response_excerpt == "收到"
    assert outcome.duration_ms > 0
    headers, body, received_at = receiver.wait_for_count(1)[0]
    assert body == BODY
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "crm-webhooks/1"
    assert headers["webhook-id"] == "msg_1"
    verify(secret, headers, body, now=received_at)
    with pytest.raises(ValueError, match="bad signature"):
        verify(generate_secret(), headers, body, now=received_at)


def test_the_timestamp_is_the_attempts_now(receiver: WebhookReceiver) -> None:
    secret = generate_secret()
    then = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    deliver(receiver.url, secret, "msg_2", BODY, now=then)
    headers, body, _ = receiver.wait_for_count(1)[0]
    assert headers["webhook-timestamp"] == str(int(then.timestamp()))
    verify(secret, headers, body, now=then)


def test_server_errors_are_retried_until_one_succeeds(receiver: WebhookReceiver) -> None:
    secret = generate_secret()
    receiver.responses = [500, Reply(503, headers={"Retry-After": "120"}), 200]
    first = deliver(receiver.url, secret, "msg_3", BODY)
    second = deliver(receiver.url, secret, "msg_3", BODY)
    third = deliver(receiver.url, secret, "msg_3", BODY)

    assert (first.ok, first.status_code, first.retry, first.disable) == (False, 500, True, False)
    assert first.error is not None and "500" in first.error
    assert (second.status_code, second.retry, second.retry_after_seconds) == (503, True, 120.0)
    assert third.ok and not third.retry
    requests = receiver.wait_for_count(3)
    assert {headers["webhook-id"] for headers, _, _ in requests} == {"msg_3"}


def test_gone_disables_the_endpoint(receiver: WebhookReceiver) -> None:
    receiver.responses = [410]
    outcome = deliver(receiver.url, generate_secret(), "msg_4", BODY)
    assert (outcome.ok, outcome.status_code, outcome.retry, outcome.disable) == (
        False, 410, False, True
    )


def test_client_errors_are_not_retried(receiver: WebhookReceiver) -> None:
    receiver.responses = [Reply(400, body="bad payload " * 100), 429]
    rejected = deliver(receiver.url, generate_secret(), "msg_5", BODY)
    assert (rejected.ok, rejected.retry, rejected.disable) == (False, False, False)
    assert len(rejected.response_excerpt) == 500
    throttled = deliver(receiver.url, generate_secret(), "msg_5", BODY)
    assert throttled.retry


def test_a_slow_endpoint_times_out_and_is_retried(receiver: WebhookReceiver) -> None:
    receiver.responses = [Reply(200, delay=3)]
    outcome = deliver(receiver.url, generate_secret(), "msg_6", BODY, timeout=0.5)
    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, None, True)
    assert outcome.error is not None and "timed out" in outcome.error


def test_nothing_listening_is_retried() -> None:
    outcome = deliver(f"http://127.0.0.1:{closed_port()}/hook", generate_secret(), "msg_7", BODY)
    assert (outcome.ok, outcome.status_code, outcome.retry, outcome.disable) == (
        False, None, True, False
    )
    assert outcome.error is not None and outcome.error.startswith("network error")


def test_redirects_are_not_followed(receiver: WebhookReceiver) -> None:
    receiver.responses = [Reply(302, headers={"Location": receiver.base_url + "/elsewhere"})]
    outcome = deliver(receiver.url, generate_secret(), "msg_8", BODY)

    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, 302, False)
    assert outcome.error is not None and "/elsewhere" in outcome.error
    receiver.wait_for_count(1)
    assert receiver.paths == ["POST /hook"]


def test_an_invalid_url_is_not_retried() -> None:
    outcome = deliver("not a url", generate_secret(), "msg_9", BODY)
    assert (outcome.ok, outcome.status_code, outcome.retry) == (False, None, False)
    assert outcome.error is not None and "invalid webhook URL" in outcome.error
