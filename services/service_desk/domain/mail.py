"""Parsing an inbound e-mail into what ticket intake needs. Pure Python (the email package).

Chinese mail comes in every charset: RFC 2047 encoded words and bodies declared GB2312 or GBK
are decoded as GB18030 (a superset of both: mail declared GB2312 routinely carries GBK-only
characters, which the strict gb2312 codec would refuse), raw 8-bit headers as UTF-8 and then
GB18030, an unknown charset as UTF-8 with replacement characters. Nothing here raises on a
malformed message: intake takes what it can read.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesParser

from services.service_desk.domain import threading

# Declared charset -> the codec that reads what such mail really carries.
CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
                   "euc-cn": "gb18030", "gb_2312-80": "gb18030", "chinese": "gb18030",
                   "big5": "big5hkscs", "ks_c_5601-1987": "cp949", "unknown-8bit": "utf-8"}


@dataclass(frozen=True)
class MailLimits:
    """Per attachment and per message (attachments together); the message's own size is the
    SMTP listener's limit (SIZE)."""

    attachment_bytes: int = 10 * 1024 * 1024
    attachments_total_bytes: int = 20 * 1024 * 1024
    attachments_count: int = 20


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class SkippedAttachment:
    filename: str
    size: int
    reason: str


@dataclass
class InboundMail:
    message_id: str  # `<id@host>`; made from the content's hash when the mail has none
    subject: str
    from_name: str
    from_address: str  # lower-cased; Reply-To before From
    text: str
    referenced_ids: list[str]
    auto_reply: bool
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[SkippedAttachment] = field(default_factory=list)
    message: Message | None = None


def codec_for(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def decode_bytes(data: bytes, charset: str | None) -> str:
    codec = codec_for(charset)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        # A mislabelled part: try the usual suspects before replacing what cannot be read.
        for fallback in ("utf-8", "gb18030"):
            if fallback != codec:
                try:
                    return data.decode(fallback)
                except UnicodeDecodeError:
                    pass
        return data.decode(codec, errors="replace")


def decode_header_text(raw: str | None) -> str:
    """A header value as text: RFC 2047 encoded words in any charset, raw 8-bit bytes (which
    the parser keeps as surrogate escapes) as UTF-8 or GB18030; folding removed."""
    if not raw:
        return ""
    text = re.sub(r"\r?\n(?=[ \t])", "", str(raw))  # unfolded
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), "utf-8")
    parts = []
    try:
        chunks = decode_header(text)
    except Exception:  # noqa: BLE001 - a malformed encoded word: keep the text as it is
        chunks = [(text, None)]
    for chunk, charset in chunks:
        parts.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return re.sub(r"\s*\r?\n\s*", " ", "".join(parts)).strip()


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return value
    return None


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<br\s*/?>|</p>|<[^>]+>", re.I | re.S)


def html_to_text(markup: str) -> str:
    def replace(match: re.Match) -> str:
        token = match.group(0).lower()
        return "\n" if token.startswith(("<br", "</p")) else ""

    text = html.unescape(_TAG.sub(replace, markup))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    return decode_bytes(payload, part.get_content_charset())


def _filename(part: Message) -> str | None:
    raw = part.get_param("filename", header="content-disposition") or part.get_param("name")
    if raw is None:
        return None
    if isinstance(raw, tuple):  # RFC 2231: (charset, language, value)
        charset, _, value = raw
        return decode_bytes(value.encode("latin-1", "replace") if isinstance(value, str)
                            else value, charset)
    return decode_header_text(str(raw)) or None


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart"):
        return False
    return _filename(part) is not None or disposition == "inline"


def parse(raw: bytes, limits: MailLimits | None = None) -> InboundMail:
    limits = limits or MailLimits()
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    subject = decode_header_text(_raw_header(msg, "Subject"))
    reply_to = _raw_header(msg, "Reply-To")
    from_raw = _raw_header(msg, "From")
    name, address = threading.sender(_addresses_only(reply_to, from_raw))
    from_name = decode_header_text(name) if name else ""
    message_id = threading.normalise_id(_raw_header(msg, "Message-ID")) or (
        f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id>")
    plain: list[str] = []
    markup: list[str] = []
    attachments: list[Attachment] = []
    skipped: list[SkippedAttachment] = []
    total = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        if _is_attachment(part):
            content = part.get_payload(decode=True) or b""
            filename = _filename(part) or f"attachment-{len(attachments) + len(skipped) + 1}"
            if len(content) > limits.attachment_bytes:
                skipped.append(SkippedAttachment(filename, len(content), "too large"))
            elif total + len(content) > limits.attachments_total_bytes:
                skipped.append(SkippedAttachment(filename, len(content),
                                                 "the message's attachments are too large"))
            elif len(attachments) >= limits.attachments_count:
                skipped.append(SkippedAttachment(filename, len(content), "too many attachments"))
            else:
                total += len(content)
                attachments.append(Attachment(filename[:255], part.get_content_type(), content))
        elif part.get_content_type() == "text/plain":
            plain.append(_part_text(part))
        elif part.get_content_type() == "text/html":
            markup.append(_part_text(part))
    text = "\n\n".join(p.strip() for p in plain if p.strip()) or "\n\n".join(
        html_to_text(m) for m in markup)
    return InboundMail(
        message_id=message_id, subject=subject, from_name=from_name, from_address=address,
        text=text.replace("\r\n", "\n"), referenced_ids=threading.referenced_ids(msg),
        auto_reply=threading.is_auto_reply(msg), attachments=attachments, skipped=skipped,
        message=msg,
    )


def _addresses_only(reply_to: str | None, from_raw: str | None) -> EmailMessage:
    """A message holding only the address headers, for `threading.sender` (names decoded
    afterwards: encoded words stay intact through address parsing)."""
    holder = EmailMessage(policy=policy.compat32)
    for name, value in (("Reply-To", reply_to), ("From", from_raw)):
        if value:
            holder[name] = _ascii_safe(value)
    return holder


def _ascii_safe(value: str) -> str:
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        return decode_bytes(value.encode("ascii", "surrogateescape"), "utf-8")
    return value


def skipped_note(skipped: list[SkippedAttachment]) -> str:
    return "\n".join(f"[attachment {s.filename} ({s.size} bytes) not kept: {s.reason}]"
                     for s in skipped)
