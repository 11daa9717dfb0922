"""Notification building blocks without servers: webhook signing (against the Standard Webhooks
reference vector), verification, the retry schedule, outcome classification, templates, and
the email message as it would go on the wire."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest

from services.rules.notify import (
    RETRY_SCHEDULE,
    DeliveryFailed,
    EmailSender,
    TemplateError,
    WebhookVerificationError,
    check_template,
    generate_secret,
    next_attempt_delay,
    render,
    sign,
    verify,
)
from services.rules.notify.webhooks import RETRY_JITTER, _retry_after, classify

# The test vector of the Standard Webhooks reference libraries (test_sign_function in
# standard-webhooks/libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(timestamp: int = SPEC_TIMESTAMP, signature: str = SPEC_SIGNATURE) -> dict:
    return {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


SPEC_NOW = datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)


# --------------------------------------------------------------------------- signing


def test_sign_matches_the_standard_webhooks_reference_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_a_secret_without_the_prefix_signs_the_same() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_generated_secrets_are_whsec_base64_of_at_least_24_bytes_and_differ() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) >= 24
    body = '{"客户": "苏州精工"}'.encode()
    assert sign(first, "msg_1", 1, body) != sign(second, "msg_1", 1, body)


def test_sign_refuses_a_bad_secret_and_a_msg_id_with_a_dot() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("whsec_not base64!", "msg_1", 1, b"{}")
    with pytest.raises(ValueError, match="msg_id"):
        sign(SPEC_SECRET, "msg.1", 1, b"{}")


# --------------------------------------------------------------------------- verification


def test_verify_accepts_the_reference_vector_within_tolerance() -> None:
    verify(SPEC_SECRET, spec_headers(), SPEC_PAYLOAD, now=SPEC_NOW + timedelta(seconds=299))
    verify(SPEC_SECRET, spec_headers(), SPEC_PAYLOAD, now=SPEC_TIMESTAMP - 299)


def test_verify_matches_header_names_case_insensitively_and_any_of_several_signatures() -> None:
    headers = {
        "Webhook-Id": SPEC_MSG_ID,
        "WEBHOOK-TIMESTAMP": str(SPEC_TIMESTAMP),
        "webhook-signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        "v1a,AAAA " + SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_NOW)


@pytest.mark.parametrize(
    "body",
    [b'{"test": 2432232315}', b'{"test": 2432232314} ', b""],
    ids=["changed digit", "trailing space", "empty"],
)
def test_verify_rejects_a_tampered_body(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(SPEC_SECRET, spec_headers(), body, now=SPEC_NOW)


def test_verify_rejects_another_secret_id_or_timestamp() -> None:
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(generate_secret(), spec_headers(), SPEC_PAYLOAD, now=SPEC_NOW)
    other_id = spec_headers() | {"webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(SPEC_SECRET, other_id, SPEC_PAYLOAD, now=SPEC_NOW)
    shifted = spec_headers(timestamp=SPEC_TIMESTAMP + 1)
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(SPEC_SECRET, shifted, SPEC_PAYLOAD, now=SPEC_NOW)
    wrong_version = spec_headers(signature="v2," + SPEC_SIGNATURE.partition(",")[2])
    with pytest.raises(WebhookVerificationError, match="bad signature"):
        verify(SPEC_SECRET, wrong_version, SPEC_PAYLOAD, now=SPEC_NOW)


def test_verify_rejects_stale_and_future_timestamps() -> None:
    with pytest.raises(WebhookVerificationError, match="stale timestamp"):
        verify(SPEC_SECRET, spec_headers(), SPEC_PAYLOAD, now=SPEC_NOW + timedelta(seconds=301))
    with pytest.raises(WebhookVerificationError, match="future"):
        verify(SPEC_SECRET, spec_headers(), SPEC_PAYLOAD, now=SPEC_NOW - timedelta(seconds=301))
    # a wider tolerance accepts the same message
    verify(SPEC_SECRET, spec_headers(), SPEC_PAYLOAD, tolerance=3600,
           now=SPEC_NOW + timedelta(seconds=301))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_names_a_missing_header(missing: str) -> None:
    headers = spec_headers()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=f"missing header {missing}"):
        verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_NOW)


def test_verify_rejects_a_timestamp_that_is_not_an_integer() -> None:
    headers = spec_headers() | {"webhook-timestamp": "hello"}
    with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
        verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_NOW)


# --------------------------------------------------------------------------- retries


def test_retry_schedule_spans_more_than_a_day_even_with_the_shortest_jitter() -> None:
    assert sum(RETRY_SCHEDULE, timedelta()) * (1 - RETRY_JITTER) > timedelta(hours=24)
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)  # never shorter than the one before


def test_next_attempt_delay_follows_the_schedule_with_jitter_then_ends() -> None:
    total = timedelta()
    for attempt, base in enumerate(RETRY_SCHEDULE, start=1):
        delay = next_attempt_delay(attempt)
        assert delay is not None
        assert base * (1 - RETRY_JITTER) <= delay <= base * (1 + RETRY_JITTER)
        total += delay
    assert total > timedelta(hours=24)
    assert next_attempt_delay(len(RETRY_SCHEDULE) + 1) is None
    assert next_attempt_delay(100) is None
    with pytest.raises(ValueError, match="attempt"):
        next_attempt_delay(0)


def test_next_attempt_delay_is_jittered() -> None:
    delays = {next_attempt_delay(8) for _ in range(20)}
    assert len(delays) > 1


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("status", "ok", "retry", "disable"),
    [
        (200, True, False, False),
        (201, True, False, False),
        (204, True, False, False),
        (301, False, False, False),
        (302, False, False, False),
        (400, False, False, False),
        (401, False, False, False),
        (404, False, False, False),
        (408, False, True, False),
        (410, False, False, True),
        (413, False, False, False),
        (429, False, True, False),
        (500, False, True, False),
        (502, False, True, False),
        (503, False, True, False),
        (504, False, True, False),
    ],
)
def test_outcome_classification(status: int, ok: bool, retry: bool, disable: bool) -> None:
    assert classify(status) == (ok, retry, disable)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC).timestamp()
    assert _retry_after("120", now) == 120.0
    assert _retry_after("Sun, 01 Mar 2026 08:02:30 GMT", now) == 150.0
    assert _retry_after("Sun, 01 Mar 2026 07:00:00 GMT", now) == 0.0
    assert _retry_after("soon", now) is None
    assert _retry_after(None, now) is None


# --------------------------------------------------------------------------- templates


def test_templates_render_chinese_and_blank_for_missing_values() -> None:
    context = {"lead": {"name": "李雷", "company": "苏州精工机械有限公司", "owner": None}}
    assert render("立即联系 {{ lead.name }}（{{ lead.company }}）", context) == (
        "立即联系 李雷（苏州精工机械有限公司）"
    )
    assert render("负责人：{{ lead.owner.name }}|{{ customer.contact.phone }}", context) == (
        "负责人：|"
    )
    assert render("{{ lead.region | default('未知地区') }}", context) == "未知地区"


def test_templates_do_not_escape_html() -> None:
    assert render("{{ note }}", {"note": "<b>A&B</b>"}) == "<b>A&B</b>"


def test_templates_run_in_a_sandbox() -> None:
    assert render("{{ ''.__class__.__mro__ }}", {}) == ""
    with pytest.raises(TemplateError, match="not allowed"):
        render("{{ lead.__class__.__subclasses__() }}", {"lead": object()})


def test_check_template_accepts_a_good_template() -> None:
    template = "你好 {{ user.display_name }}\n{% if score > 80 %}高分{% endif %}"
    assert check_template(template) is None


@pytest.mark.parametrize(
    ("template", "line"),
    [
        ("第一行\n{{ lead.name }\n", 2),
        ("a\nb\n{% if lead.score > 80 %}高分", 3),
        ("{{ lead.name | nosuchfilter }}", 1),
        ("ok\n\n\n{% for x in %}{% endfor %}", 4),
    ],
)
def test_check_template_reports_syntax_errors_with_the_line(template: str, line: int) -> None:
    problem = check_template(template)
    assert problem is not None
    assert problem.startswith(f"line {line}: ")


def test_render_raises_a_template_error_for_bad_templates_and_failing_expressions() -> None:
    with pytest.raises(TemplateError, match="line 1"):
        render("{{ x }", {})
    with pytest.raises(TemplateError, match="line 2: cannot render"):
        render("a\n{{ 1 / zero }}", {"zero": 0})
    with pytest.raises(TemplateError, match="string"):
        render(None, {})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- email messages


def sender() -> EmailSender:
    return EmailSender("127.0.0.1", 1025, "客户管理系统 <crm@demo.crm.local>")


def test_email_message_encodes_chinese_headers_and_utf8_bodies() -> None:
    message, recipients = sender().build(
        ["ZhangWei@Demo.CRM.local", "zhangwei@demo.crm.local", "lina@example.cn"],
        "新线索：苏州精工机械有限公司",
        "立即联系 李雷",
        html="<p>立即联系 <b>李雷</b></p>",
        headers={"X-CRM-Rule": "rule-1", "Reply-To": "manager@demo.crm.local"},
    )
    # the domain is case-insensitive, the local part is not
    assert recipients == ["ZhangWei@demo.crm.local", "zhangwei@demo.crm.local",
                          "lina@example.cn"]
    wire = message.as_bytes()
    assert wire.isascii()  # everything non-ASCII is encoded (no SMTPUTF8 needed)
    parsed = BytesParser(policy=policy.default).parsebytes(wire)
    assert parsed["Subject"] == "新线索：苏州精工机械有限公司"
    assert parsed["From"].addresses[0].display_name == "客户管理系统"
    assert parsed["X-CRM-Rule"] == "rule-1"
    assert parsed.get_body(("plain",)).get_content().strip() == "立即联系 李雷"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>立即联系 <b>李雷</b></p>"
    assert parsed["Message-ID"].endswith("@demo.crm.local>")


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@", "@example.com", "a b@example.com", "a@exa_mple.com",
                "a@-example.com", ""],
)
def test_email_bad_addresses_fail_permanently_naming_the_address(address: str) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        sender().send(["ok@example.com", address], "s", "t")
    assert failure.value.permanent
    assert "invalid recipient address" in failure.value.reason
    assert repr(address) in failure.value.reason


def test_email_without_recipients_or_with_header_injection_fails_permanently() -> None:
    with pytest.raises(DeliveryFailed, match="no recipients") as failure:
        sender().send([], "s", "t")
    assert failure.value.permanent
    with pytest.raises(DeliveryFailed, match="line breaks") as failure:
        sender().send(["a@example.com"], "hi\r\nBcc: evil@example.com", "t")
    assert failure.value.permanent
    with pytest.raises(DeliveryFailed, match="'From'") as failure:
        sender().send(["a@example.com"], "s", "t", headers={"From": "ceo@example.com"})


def test_email_sender_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="security"):
        EmailSender("h", 25, "crm@example.com", security="tls")
    with pytest.raises(ValueError, match="sender"):
        EmailSender("h", 25, "nobody")
    with pytest.raises(ValueError, match="username and password"):
        EmailSender("h", 25, "crm@example.com", username="crm")


def test_email_sender_from_env_defaults_and_errors() -> None:
    default = EmailSender.from_env({})
    assert (default.host, default.port, default.security) == ("127.0.0.1", 1025, "none")
    assert default.sender_address == "crm@localhost"
    configured = EmailSender.from_env({
        "CRM_SMTP_HOST": "smtp.example.cn", "CRM_SMTP_PORT": "465",
        "CRM_SMTP_FROM": "销售助手 <sales@example.cn>", "CRM_SMTP_USER": "sales",
        "CRM_SMTP_PASSWORD": "secret", "CRM_SMTP_SECURITY": "SSL",
    })
    assert (configured.host, configured.port, configured.security) == ("smtp.example.cn", 465,
                                                                       "ssl")
    assert (configured.username, configured.password) == ("sales", "secret")
    with pytest.raises(ValueError, match="CRM_SMTP_PORT"):
        EmailSender.from_env({"CRM_SMTP_PORT": "smtp"})
    with pytest.raises(ValueError, match="CRM_SMTP_SECURITY"):
        EmailSender.from_env({"CRM_SMTP_SECURITY": "tls"})
    with pytest.raises(ValueError, match="CRM_SMTP_FROM"):
        EmailSender.from_env({"CRM_SMTP_FROM": "crm"})
    with pytest.raises(ValueError, match="CRM_SMTP_PASSWORD"):
        EmailSender.from_env({"CRM_SMTP_USER": "crm"})


def test_a_delivery_keyed_message_id_is_the_same_at_every_attempt():
    from services.rules.notify import EmailSender

    sender = EmailSender("127.0.0.1", 1025, "CRM <crm@例子.cn>")
    first, _ = sender.build(["a@b.cn"], "s", "t", message_key="d-1")
    again, _ = sender.build(["a@b.cn"], "s", "t", message_key="d-1")
    other, _ = sender.build(["a@b.cn"], "s", "t")
    assert str(first["Message-ID"]) == str(again["Message-ID"]) == "<d-1@xn--fsqu00a.cn>"
    assert str(other["Message-ID"]) != str(first["Message-ID"])
    with pytest.raises(ValueError):
        sender.message_id_for("a>b")
