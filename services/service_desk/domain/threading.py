"""E-mail threading, auto-reply and loop detection for ticket intake. Pure Python (email package).

A message threads into a ticket by, in order: In-Reply-To / References naming a Message-ID we
know (ours or an earlier inbound one), then the ticket tag in the subject ([#T-000123] or
[T-000123]).
Auto-replies (RFC 3834 Auto-Submitted, X-Autoreply, Precedence bulk/auto_reply/junk/list) and
loops (a Message-ID of ours coming back, too many messages from one sender in a window) are
recognised so they do not become tickets.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from email.message import EmailMessage, Message
from email.utils import getaddresses, make_msgid

TAG_RE = re.compile(r"\[#?T-(\d{1,12})\]")
MSGID_RE = re.compile(r"<[^<>\s]+>")
OWN_DOMAIN_MARK = "crm-service-desk"


def ticket_number_from_subject(subject: str | None) -> int | None:
    match = TAG_RE.search(subject or "")
    return int(match.group(1)) if match else None


def referenced_ids(msg: Message) -> list[str]:
    """Message-IDs this message answers, nearest first (In-Reply-To, then newest References)."""
    ids: list[str] = []
    for header, reverse in (("In-Reply-To", False), ("References", True)):
        found = MSGID_RE.findall(str(msg.get(header, "") or ""))
        for mid in reversed(found) if reverse else found:
            if mid not in ids:
                ids.append(mid)
    return ids


def find_ticket(msg: Message, lookup_message_id: Callable[[str], int | None],
                lookup_number: Callable[[int], int | None]) -> int | None:
    """The ticket id a message belongs to, or None for a new ticket."""
    for mid in referenced_ids(msg):
        ticket_id = lookup_message_id(mid)
        if ticket_id is not None:
            return ticket_id
    number = ticket_number_from_subject(str(msg.get("Subject", "") or ""))
    return lookup_number(number) if number is not None else None


def is_auto_reply(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    precedence = str(msg.get("Precedence", "") or "").strip().lower()
    if precedence in {"bulk", "auto_reply", "junk", "list"}:
        return True
    return str(msg.get("X-Auto-Response-Suppress", "") or "").strip().lower() in {"all", "oof"}


def normalise_id(message_id: str | None) -> str | None:
    """The `<id@host>` part of a header value (folded headers come back with whitespace)."""
    found = MSGID_RE.findall(str(message_id or ""))
    return found[0] if found else None


def is_own_message_id(message_id: str | None, domain: str) -> bool:
    mid = normalise_id(message_id)
    return bool(mid) and mid.endswith(f"@{domain}>") and OWN_DOMAIN_MARK in mid


def new_message_id(domain: str) -> str:
    return make_msgid(idstring=OWN_DOMAIN_MARK, domain=domain)


def sender(msg: Message) -> tuple[str, str]:
    """(name, lower-cased address) of Reply-To or From."""
    for header in ("Reply-To", "From"):
        pairs = [p for p in getaddresses([str(v) for v in msg.get_all(header, [])]) if p[1]]
        if pairs:
            return pairs[0][0], pairs[0][1].lower()
    return "", ""


class SenderRateLimit:
    """At most `limit` messages per sender in `window` seconds; more is treated as a loop."""

    def __init__(self, limit: int = 10, window: float = 60.0):
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str, now: float) -> bool:
        times = self._seen.setdefault(address, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


def reply_headers(
    ticket_number: int, subject: str, thread_ids: Iterable[str], domain: str
) -> dict[str, str]:
    """Headers of an outgoing public reply: our Message-ID, In-Reply-To, References, subject tag."""
    ids = [i for i in thread_ids if i]
    tag = f"[#T-{ticket_number:06d}]"
    clean = re.sub(r"^(re:\s*)+", "", TAG_RE.sub("", subject).strip(), flags=re.I)
    # An agent's reply is written by a person: no Auto-Submitted, so customers' systems answer it.
    headers = {"Message-ID": new_message_id(domain), "Subject": f"Re: {clean} {tag}"}
    if ids:
        headers["In-Reply-To"] = ids[-1]
        headers["References"] = " ".join(ids)
    return headers


def build_reply(ticket_number: int, subject: str, thread_ids: Iterable[str], domain: str,
                from_addr: str, to_addr: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in reply_headers(ticket_number, subject, thread_ids, domain).items():
        msg[name] = value
    msg["From"], msg["To"] = from_addr, to_addr
    msg.set_content(body)
    return msg
