"""Tickets domain: transitions, threading, auto-reply and loop detection on RFC 5322 mail."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message

import pytest

from services.service_desk.domain import threading as th
from services.service_desk.domain import tickets as tk
from shared.errors import PreconditionFailed, ValidationFailed


def parse(raw: str) -> Message:
    return message_from_bytes(raw.replace("\n", "\r\n").encode(), policy=policy.default)


FIRST = """From: =?utf-8?b?5byg5LiJ?= <Zhang.San@Example.CN>
To: support@desk.example
Subject: Printer broken
Date: Thu, 03 Dec 2026 08:00:00 +0000
Message-ID: <c1@example.cn>
Content-Type: text/plain; charset=utf-8

It does not print.
"""

REPLY = """From: Zhang San <zhang.san@example.cn>
To: support@desk.example
Subject: Re: Printer broken [#T-000042]
Message-ID: <c2@example.cn>
In-Reply-To: <a1.crm-service-desk@desk.example>
References: <c1@example.cn> <a1.crm-service-desk@desk.example>

Still broken.
"""

TAG_ONLY = """From: zhang.san@example.cn
To: support@desk.example
Subject: Re: Printer broken [#T-000042]
Message-ID: <c3@example.cn>

Any news?
"""


def test_transitions_enforced() -> None:
    tk.check_transition("new", "open")
    tk.check_transition("solved", "open")
    tk.check_transition("open", "open")
    with pytest.raises(PreconditionFailed):
        tk.check_transition("closed", "open")
    with pytest.raises(PreconditionFailed):
        tk.check_transition("solved", "pending")
    with pytest.raises(ValidationFailed) as err:
        tk.check_transition("open", "deleted")
    assert "status" in err.value.errors


def test_priority_checked() -> None:
    tk.check_priority("urgent")
    with pytest.raises(ValidationFailed) as err:
        tk.check_priority("critical")
    assert "priority" in err.value.errors


@pytest.mark.parametrize(("current", "author", "public", "expected"), [
    ("pending", "customer", True, "open"),
    ("solved", "customer", True, "open"),
    ("on_hold", "customer", True, "on_hold"),
    ("pending", "agent", True, "pending"),
    ("solved", "customer", False, "solved"),
])
def test_customer_reply_reopens(current: str, author: str, public: bool, expected: str) -> None:
    assert tk.status_after_reply(current, author=author, public=public) == expected


def test_closed_takes_no_reply() -> None:
    with pytest.raises(PreconditionFailed):
        tk.status_after_reply("closed", author="customer", public=True)


def test_event_entries_match_sla_log_format() -> None:
    assert tk.status_event("t", "new", "open") == {
        "at": "t", "kind": "status_changed", "from": "new", "to": "open"}
    assert tk.reply_event("t", author="agent", public=False) == {
        "at": "t", "kind": "reply", "public": False, "author": "agent"}
    with pytest.raises(ValidationFailed):
        tk.reply_event("t", author="robot", public=True)
    assert tk.ticket_tag(42) == "[#T-000042]"


def test_first_message_is_new_ticket_with_decoded_sender() -> None:
    msg = parse(FIRST)
    assert th.find_ticket(msg, lambda mid: None, lambda n: None) is None
    assert th.sender(msg) == ("张三", "zhang.san@example.cn")
    assert not th.is_auto_reply(msg)


def test_reply_threads_by_in_reply_to_before_tag() -> None:
    known = {"<a1.crm-service-desk@desk.example>": 7}
    msg = parse(REPLY)
    assert th.referenced_ids(msg) == ["<a1.crm-service-desk@desk.example>", "<c1@example.cn>"]
    assert th.find_ticket(msg, known.get, lambda n: 99) == 7


def test_reply_threads_by_references_when_in_reply_to_unknown() -> None:
    msg = parse(REPLY)
    assert th.find_ticket(msg, {"<c1@example.cn>": 5}.get, lambda n: None) == 5


def test_subject_tag_threads_without_headers() -> None:
    msg = parse(TAG_ONLY)
    assert th.ticket_number_from_subject(str(msg["Subject"])) == 42
    assert th.find_ticket(msg, lambda mid: None, {42: 3}.get) == 3


@pytest.mark.parametrize("header", [
    "Auto-Submitted: auto-replied", "X-Autoreply: yes",
    "Precedence: bulk", "Precedence: auto_reply",
])
def test_auto_replies_recognised(header: str) -> None:
    assert th.is_auto_reply(parse(FIRST.replace("Subject:", header + "\nSubject:")))


def test_auto_submitted_no_is_not_auto() -> None:
    assert not th.is_auto_reply(parse(FIRST.replace("Subject:", "Auto-Submitted: no\nSubject:")))


def test_own_message_id_is_a_loop() -> None:
    own = th.new_message_id("desk.example")
    assert th.is_own_message_id(own, "desk.example")
    assert not th.is_own_message_id("<c1@example.cn>", "desk.example")


def test_sender_rate_limit_per_minute() -> None:
    limit = th.SenderRateLimit(limit=3, window=60)
    assert [limit.allow("a@x", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.allow("b@x", 3)
    assert limit.allow("a@x", 61)


def test_outgoing_reply_is_threaded_and_tagged() -> None:
    out = th.build_reply(
        42, "Re: Printer broken [#T-000042]", ["<c1@example.cn>", "<c2@example.cn>"],
        "desk.example", "support@desk.example", "zhang.san@example.cn", "Fixed.")
    back = parse(out.as_string().replace("\r\n", "\n"))
    assert back["Subject"] == "Re: Printer broken [#T-000042]"
    assert back["In-Reply-To"] == "<c2@example.cn>"
    assert back["References"] == "<c1@example.cn> <c2@example.cn>"
    assert th.is_own_message_id(back["Message-ID"], "desk.example")
    assert not th.is_auto_reply(back)
    # The customer's answer to it threads back by In-Reply-To.
    ours = th.normalise_id(back["Message-ID"])
    answer = parse(f"From: zhang.san@example.cn\nSubject: {back['Subject']}\n"
                   f"In-Reply-To: {ours}\n\nok\n")
    assert th.find_ticket(answer, {ours: 11}.get, lambda n: None) == 11
