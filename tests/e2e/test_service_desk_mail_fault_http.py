"""A crash of the service desk between taking a mail's DATA and committing its ticket loses
nothing: the sender gets no 250 (the connection drops), so it still holds the mail; sent again
after the restart it becomes one ticket, and sent once more it is still one.

The ticket's commit is held back by the test holding the service desk's SQLite write lock, so
the kill falls exactly between the two."""

from __future__ import annotations

import smtplib
import sqlite3
import threading
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def listener(system: System) -> tuple[str, int]:
    host, _, port = system.info.spec("service_desk").env["SERVICE_DESK_SMTP_LISTEN"].rpartition(":")
    return host, int(port)


def tickets_of(system: System, sender: str) -> list[dict]:
    r = system.get("/tickets", user="admin", params={"limit": 200})
    assert r.status_code == 200, r.text
    return [t for t in r.json()["items"] if t["requester_email"] == sender]


def test_a_crash_before_commit_loses_nothing(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    sender = f"crash.{mark}@example.cn"
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "support@desk.example.cn"
    msg["Subject"], msg["Message-ID"] = f"服务器宕机了 {mark}", make_msgid(domain="example.cn")
    msg.set_content("请尽快处理")
    raw = msg.as_bytes()
    host, port = listener(system)

    lock = sqlite3.connect(system.data_dir / "service_desk.db", timeout=30,
                           isolation_level=None)
    outcome: dict[str, object] = {}
    smtp = smtplib.SMTP(host, port, timeout=60)
    try:
        smtp.ehlo()
        assert smtp.mail(sender)[0] == 250
        assert smtp.rcpt("support@desk.example.cn")[0] == 250
        lock.execute("BEGIN IMMEDIATE")  # the intake's transaction cannot commit now

        def data() -> None:
            try:
                outcome["reply"] = smtp.data(raw)
            except (smtplib.SMTPException, OSError) as exc:
                outcome["error"] = exc

        client = threading.Thread(target=data)
        client.start()
        client.join(2.0)
        assert client.is_alive(), f"answered without committing: {outcome}"
        system.kill_service("service_desk")
        client.join(30)
        assert not client.is_alive()
        assert "reply" not in outcome, outcome  # never a 250 for what was not committed
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
        smtp.close()

    system.start_service("service_desk")
    # healthy, but its RPC queue may come a moment later (the gateway says 503 until then)
    system.wait_for(lambda: system.get("/tickets", user="admin").status_code == 200,
                    timeout=30, message="the restarted service desk never answered RPC")
    assert tickets_of(system, sender) == []
    for _ in range(2):  # the sender's retry, and one more delivery of the same mail
        with smtplib.SMTP(host, port, timeout=60) as retry:
            assert retry.sendmail(sender, ["support@desk.example.cn"], raw) == {}
    found = tickets_of(system, sender)
    assert [t["subject"] for t in found] == [f"服务器宕机了 {mark}"]
