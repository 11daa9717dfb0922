"""The service desk's mail edges under a kill -9: the SMTP listener while mail comes in, and the
mail outbox's sender while replies go out. The supervisor restarts the service; nobody else
touches anything.

Intake: `mails` customer mails at `concurrency`, each client behaving as a sending mail server
does: whatever is not a 250 (a 4xx, a dropped connection, a refused connection while the
service is down) is sent again, the same mail with the same Message-ID, until it gets its 250.
The service desk is killed when a third of them have been taken. Then every mail must be
exactly one ticket of its sender.

Replies: an agent's public reply to each of those tickets over HTTP (no fault while they are
written), then the service desk is killed when a third of the replies have reached the SMTP
server. Every reply must arrive, with one Message-ID each: a copy with the same Message-ID is
the message in flight at the kill, sent again (at most one per kill); a second Message-ID for
one reply would be a duplicate.
"""

from __future__ import annotations

import signal
import smtplib
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage

import requests

from tests.chaos.harness import RECOVERY_LIMIT, ChaosSystem

SERVICE = "service_desk"
# generous: a killed sender's claims expire after SERVICE_DESK_MAIL_SEND_LEASE (15 s here)
DELIVERY_WAIT = 300.0


@dataclass
class MailOutcome:
    mails: int
    lost: int = 0
    duplicated: int = 0
    smtp_retries: int = 0
    replies: int = 0
    replies_lost: int = 0
    replies_duplicated: int = 0
    replies_resent: int = 0
    resent_allowed: int = 1
    recovery_seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.replies_lost
                    or self.replies_duplicated or self.replies_resent > self.resent_allowed)

    def summary(self) -> str:
        return (f"mail intake: {self.mails} mails, lost {self.lost}, duplicated "
                f"{self.duplicated}, sent again after a non-250 {self.smtp_retries}; replies: "
                f"{self.replies}, lost {self.replies_lost}, duplicated "
                f"{self.replies_duplicated}, resent {self.replies_resent} "
                f"(allowed {self.resent_allowed}); recovered in {self.recovery_seconds:.1f}s")


def _listener(chaos: ChaosSystem) -> tuple[str, int]:
    host, _, port = chaos.system.info.spec(SERVICE).env["SERVICE_DESK_SMTP_LISTEN"].rpartition(":")
    return host, int(port)


def _mail(sender: str, n: int, stamp: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"客户{n} <{sender}>"
    msg["To"] = "support@chaos.example.cn"
    msg["Subject"] = f"混沌邮件 {stamp}-{n}"
    msg["Message-ID"] = f"<{stamp}-{n}@chaos.example.cn>"
    msg.set_content("打印机不出纸，请尽快处理。")
    return msg.as_bytes()


class MailLoad:
    def __init__(self, chaos: ChaosSystem, total: int, concurrency: int) -> None:
        self.chaos = chaos
        self.concurrency = concurrency
        self.stamp = uuid.uuid4().hex[:8]
        self.senders = [f"c{i}.{self.stamp}@chaos.example.cn" for i in range(total)]
        self.taken = 0
        self.retries = 0
        self.problems: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._next = 0

    def _send(self, n: int) -> None:
        host, port = _listener(self.chaos)
        raw = _mail(self.senders[n], n, self.stamp)
        deadline = time.monotonic() + RECOVERY_LIMIT * 2
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP(host, port, timeout=60) as smtp:
                    smtp.sendmail(self.senders[n], ["support@chaos.example.cn"], raw)
                return
            except (smtplib.SMTPException, OSError) as exc:
                with self._lock:
                    self.retries += 1
                    self.problems[type(exc).__name__] += 1
                time.sleep(0.5)
        with self._lock:
            self.problems["gave up"] += 1

    def _worker(self) -> None:
        while True:
            with self._lock:
                if self._next >= len(self.senders):
                    return
                n, self._next = self._next, self._next + 1
            self._send(n)
            with self._lock:
                self.taken += 1

    def run(self) -> None:
        threads = [threading.Thread(target=self._worker, daemon=True)
                   for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _all_tickets(chaos: ChaosSystem) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = chaos.system.get("/tickets", user="admin", params=params, timeout=30)
        r.raise_for_status()
        page = r.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _kill_when(chaos: ChaosSystem, ready, outcome: MailOutcome) -> threading.Thread:
    def inject() -> None:
        deadline = time.monotonic() + DELIVERY_WAIT
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        chaos.signal_process(SERVICE, signal.SIGKILL)
        outcome.recovery_seconds = max(outcome.recovery_seconds,
                                       chaos.wait_recovered(time.monotonic()))

    thread = threading.Thread(target=inject, daemon=True)
    thread.start()
    return thread


def _reply(chaos: ChaosSystem, ticket_id: str, body: str) -> None:
    headers = {"Authorization": "Bearer " + chaos.system.keys["admin"],
               "Idempotency-Key": str(uuid.uuid4())}
    for _ in range(60):
        try:
            r = requests.post(f"{chaos.system.url}/tickets/{ticket_id}/replies", json={
                "body": body}, headers=headers, timeout=30)
        except requests.RequestException:
            time.sleep(1)
            continue
        if r.status_code == 201:
            return
        if r.status_code < 500 and r.status_code != 409:
            raise AssertionError(f"reply refused: {r.status_code} {r.text[:200]}")
        time.sleep(1)
    raise AssertionError(f"reply to {ticket_id} never accepted")


def run_mail_cycle(chaos: ChaosSystem, mails: int, concurrency: int) -> MailOutcome:
    outcome = MailOutcome(mails=mails, resent_allowed=1)
    load = MailLoad(chaos, mails, concurrency)
    killer = _kill_when(chaos, lambda: load.taken >= mails // 3, outcome)
    load.run()
    killer.join()
    outcome.smtp_retries = load.retries
    if load.problems:
        outcome.details.append(f"non-250 answers the senders retried: {dict(load.problems)}")
    senders = set(load.senders)
    mine = [t for t in _all_tickets(chaos) if t["requester_email"] in senders]
    per_sender = Counter(t["requester_email"] for t in mine)
    tickets = {t["requester_email"]: t for t in mine}
    outcome.lost = sum(1 for s in load.senders if per_sender[s] == 0)
    outcome.duplicated = sum(1 for s in load.senders if per_sender[s] > 1)
    if outcome.lost or outcome.duplicated:
        outcome.details.append(f"tickets per sender: {dict(Counter(per_sender.values()))}, "
                               f"{outcome.lost} senders without one")

    # replies out: written first, the sender killed while it delivers them
    def arrived() -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for message in chaos.smtp.messages:
            to = str(message["To"] or "")
            if to in tickets:
                found.setdefault(to, Counter())[str(message["Message-ID"]).strip()] += 1
        return found

    marker = f"回复 {load.stamp}"
    for sender, ticket in tickets.items():
        _reply(chaos, ticket["id"], f"{marker} {sender}")
    outcome.replies = len(tickets)
    killer = _kill_when(chaos, lambda: len(arrived()) >= len(tickets) // 3, outcome)
    killer.join()
    deadline = time.monotonic() + DELIVERY_WAIT
    while len(arrived()) < len(tickets) and time.monotonic() < deadline:
        time.sleep(0.5)
    got = arrived()
    outcome.replies_lost = len(tickets) - len(got)
    outcome.replies_duplicated = sum(1 for ids in got.values() if len(ids) > 1)
    outcome.replies_resent = sum(count - 1 for ids in got.values() for count in ids.values())
    if outcome.replies_lost:
        outcome.details.append(f"{outcome.replies_lost} replies never arrived")
    return outcome
