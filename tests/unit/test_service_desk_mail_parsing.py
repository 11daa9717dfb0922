"""Parsing inbound mail (services/service_desk/domain/mail.py): Chinese charsets in headers and
bodies, attachments and their limits, threading ids, auto-reply flags, HTML-only mail."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from services.service_desk.domain import mail, threading

GBK_ONLY = "镕"  # in GBK/GB18030, not in GB2312: mail declared gb2312 carries such characters


def encoded_word(text: str, charset: str, codec: str | None = None) -> str:
    return f"=?{charset}?b?{base64.b64encode(text.encode(codec or charset)).decode()}?="


@pytest.mark.parametrize("charset, codec", [("gb2312", "gbk"), ("GBK", "gbk"),
                                            ("utf-8", "utf-8"), ("gb18030", "gb18030")])
def test_chinese_subject_sender_and_body_in_every_charset(charset, codec):
    msg = MIMEMultipart()
    msg["Subject"] = encoded_word(f"发票抬头错了 {GBK_ONLY}", charset, codec)
    msg["From"] = f"{encoded_word('王芳', charset, codec)} <Wang.Fang@Example.CN>"
    msg["Message-ID"] = "<abc@example.cn>"
    body = MIMEText("x", "plain", "utf-8")  # base64; then the payload in the charset
    body.set_payload(base64.b64encode(f"请帮我改一下 {GBK_ONLY}".encode(codec)).decode())
    body.replace_header("Content-Type", f'text/plain; charset="{charset}"')
    msg.attach(body)
    parsed = mail.parse(msg.as_bytes())
    assert parsed.subject == f"发票抬头错了 {GBK_ONLY}"
    assert parsed.from_name == "王芳"
    assert parsed.from_address == "wang.fang@example.cn"
    assert parsed.text == f"请帮我改一下 {GBK_ONLY}"
    assert parsed.message_id == "<abc@example.cn>"


def test_quoted_printable_and_raw_utf8_headers():
    raw = ("From: 李雷 <li@example.cn>\r\nSubject: 退款申请\r\nMessage-ID: <q@x>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           "=E9=80=80=E6=AC=BE\r\n").encode()
    parsed = mail.parse(raw)
    assert parsed.subject == "退款申请"
    assert parsed.from_name == "李雷"
    assert parsed.text == "退款"


def test_a_mislabelled_or_unknown_charset_is_still_read():
    assert mail.decode_bytes("发票".encode("gbk"), "utf-8") == "发票"
    assert mail.decode_bytes("发票".encode(), "x-unknown-charset") == "发票"
    assert mail.decode_bytes(b"\xff\xfe\xfa", "utf-8")  # replaced, not raised


def test_folded_multi_word_subject():
    first, second = (encoded_word(part, "gb2312", "gbk") for part in ("打印机", "不出纸"))
    raw = f"From: a@b.cn\r\nSubject: {first}\r\n {second}\r\n\r\nx\r\n"
    assert mail.parse(raw.encode()).subject == "打印机不出纸"


def test_attachments_kept_within_limits_and_rfc2231_names():
    msg = MIMEMultipart()
    msg["From"] = "a@b.cn"
    msg.attach(MIMEText("见附件", "plain", "utf-8"))
    for name, size in (("发票.pdf", 100), ("big.bin", 2000), ("c.pdf", 600), ("d.pdf", 600)):
        part = MIMEApplication(b"x" * size, "octet-stream")
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", name))
        msg.attach(part)
    limits = mail.MailLimits(attachment_bytes=1000, attachments_total_bytes=1000,
                             attachments_count=5)
    parsed = mail.parse(msg.as_bytes(), limits)
    assert [(a.filename, a.size) for a in parsed.attachments] == [("发票.pdf", 100),
                                                                   ("c.pdf", 600)]
    assert [(s.filename, s.reason) for s in parsed.skipped] == [
        ("big.bin", "too large"), ("d.pdf", "the message's attachments are too large")]
    assert parsed.text == "见附件"
    assert "big.bin" in mail.skipped_note(parsed.skipped)


def test_attachment_count_limit_and_inline_images():
    msg = EmailMessage()
    msg["From"] = "a@b.cn"
    msg.set_content("hi")
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="a.png",
                       disposition="inline")
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="b.png")
    parsed = mail.parse(msg.as_bytes(), mail.MailLimits(attachments_count=1))
    assert [a.filename for a in parsed.attachments] == ["a.png"]
    assert parsed.attachments[0].content_type == "image/png"
    assert parsed.skipped[0].reason == "too many attachments"


def test_html_only_mail_becomes_text():
    msg = EmailMessage()
    msg["From"] = "a@b.cn"
    msg.set_content("<p>您好&nbsp;客服</p><script>x()</script><br>第二行", subtype="html")
    assert mail.parse(msg.as_bytes()).text == "您好\xa0客服\n\n第二行"


def test_threading_ids_auto_reply_and_reply_to():
    raw = (b"From: a@b.cn\r\nReply-To: Real <Real@B.cn>\r\nMessage-ID: <m3@b>\r\n"
           b"In-Reply-To: <m2@b>\r\nReferences: <m1@b> <m2@b>\r\nAuto-Submitted: auto-replied\r\n"
           b"Subject: [T-000042] x\r\n\r\nbody\r\n")
    parsed = mail.parse(raw)
    assert parsed.referenced_ids == ["<m2@b>", "<m1@b>"]
    assert parsed.auto_reply
    assert parsed.from_address == "real@b.cn"
    assert threading.ticket_number_from_subject(parsed.subject) == 42
    assert threading.ticket_number_from_subject("Re: x [#T-000043]") == 43


def test_a_mail_without_message_id_gets_a_stable_one():
    raw = b"From: a@b.cn\r\nSubject: x\r\n\r\nbody\r\n"
    assert mail.parse(raw).message_id == mail.parse(raw).message_id
    assert mail.parse(raw).message_id != mail.parse(raw + b"more").message_id
    assert mail.parse(b"\r\n\r\n").from_address == ""  # no sender: nothing raised
