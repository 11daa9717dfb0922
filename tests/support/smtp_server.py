"""A real SMTP server for tests (aiosmtpd), in this process, on 127.0.0.1 and a free port.

    server = SmtpServer(refuse={"nobody@example.com"})
    server.start()
    ...send to server.host:server.port...
    message = server.wait_for(lambda m: m["Subject"] == "Hello")
    server.stop()

It also works under eventlet's monkey patching (the root conftest applies it): aiosmtpd's
asyncio loop runs in a (green) thread and yields like any other. But every green thread shares
one OS thread, and asyncio allows one running loop per OS thread: another aiosmtpd loop in this
process (a service's SMTP listener started in-process by a test) needs the servers paused,
`with paused_servers(): ...` (they start again on the same port, keeping what arrived).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Envelope", "SmtpServer", "paused_servers"]

_RUNNING: set[SmtpServer] = set()


@dataclass(frozen=True)
class Envelope:
    """What the SMTP transaction said, beside the message's own headers."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.server._condition:
            self.server.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.server._rcpt_reply(address)
        if reply is None:
            envelope.rcpt_tos.append(address)
            return "250 OK"
        return reply

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        self.server._record(Envelope(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpServer:
    """`messages`: parsed messages in arrival order (`email.message.EmailMessage`, policy
    default, so `message["Subject"]` is decoded text); `envelopes`: the same with MAIL FROM and
    RCPT TO. `refuse` (addresses, case-insensitive) answers RCPT with 550 (permanent) and
    `defer` with 450 (temporary); both are sets you may change while it runs. `sessions` counts
    the SMTP sessions opened (EHLOs)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        refuse: Iterable[str] = (),
        defer: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.port = port or 0
        self.refuse = {address.lower() for address in refuse}
        self.defer = {address.lower() for address in defer}
        self._envelopes: list[Envelope] = []
        self.sessions = 0  # EHLOs received: one per SMTP session
        self._condition = threading.Condition()
        self._controller: Controller | None = None

    # ---- lifecycle

    def start(self) -> SmtpServer:
        if self._controller is not None:
            return self
        if not self.port:
            # aiosmtpd checks readiness by connecting to the port it was given, so it needs a
            # real one rather than 0.
            self.port = _free_port(self.host)
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="crm-test-smtp",  # else aiosmtpd resolves this machine's FQDN
            ready_timeout=10.0,
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        _RUNNING.add(self)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        _RUNNING.discard(self)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- what arrived

    @property
    def messages(self) -> list[EmailMessage]:
        with self._condition:
            return [envelope.message for envelope in self._envelopes]

    @property
    def envelopes(self) -> list[Envelope]:
        with self._condition:
            return list(self._envelopes)

    def clear(self) -> None:
        with self._condition:
            self._envelopes.clear()

    def wait_for(
        self, predicate: Callable[[EmailMessage], object], timeout: float = 10
    ) -> EmailMessage:
        """The first message (arrived or arriving within `timeout` s) for which `predicate` is
        true; AssertionError listing what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for envelope in self._envelopes:
                    if predicate(envelope.message):
                        return envelope.message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    arrived = "\n".join(
                        f"  to={e.message['To']!s} subject={e.message['Subject']!s}"
                        for e in self._envelopes
                    ) or "  (nothing)"
                    raise AssertionError(
                        f"no matching message within {timeout} s; arrived:\n{arrived}"
                    )
                # Short waits: a predicate may also depend on state outside this server.
                self._condition.wait(min(remaining, 0.2))

    # ---- called from the server's loop

    def _rcpt_reply(self, address: str) -> str | None:
        key = address.lower()
        if key in self.refuse:
            return f"550 5.1.1 <{address}>: recipient refused"
        if key in self.defer:
            return f"450 4.2.1 <{address}>: mailbox busy, try later"
        return None

    def _record(self, envelope: Envelope) -> None:
        with self._condition:
            self._envelopes.append(envelope)
            self._condition.notify_all()


@contextmanager
def paused_servers() -> Iterator[None]:
    """Stop the running test SMTP servers of this process for the block (see the module)."""
    paused = list(_RUNNING)
    for server in paused:
        server.stop()
    try:
        yield
    finally:
        for server in paused:
            server.start()
