"""The service desk's SMTP edges: the inbound listener (an entrypoint) and the outgoing transport.

**Listener.** `smtp_intake` makes a service method the handler of every mail an aiosmtpd server
receives; the server runs with the container (started and stopped with it) when
`SERVICE_DESK_SMTP_LISTEN=host:port` is set. aiosmtpd's asyncio loop runs in a thread, which
under eventlet's monkey patching is a green thread like any other. Each mail runs as a nameko
worker (database session, event outbox, metrics as for an RPC) and the server answers only with
its outcome: 250 after the worker committed, 451 (try again later) when it failed — the database
down, a crash of the worker, a timeout — so a mail is either stored or still the sending
server's to retry, never accepted and lost. A process killed mid-mail drops the connection
before any reply, which a sending server also retries. Limits: the message size (SIZE, 552
above it) and recipients per message (452 above it); optionally only some recipient domains.

**Transport.** Sends one message through the relay configured as the rules service's:
CRM_SMTP_HOST (127.0.0.1), CRM_SMTP_PORT (1025), CRM_SMTP_SECURITY (none / starttls / ssl),
CRM_SMTP_USER and CRM_SMTP_PASSWORD, CRM_SMTP_TIMEOUT (10 s); CRM_SMTP_FROM is the From.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any

import eventlet
from eventlet.event import Event
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint

from services.service_desk.usecases.mail_outbox import PermanentFailure, TemporaryFailure
from shared import config

log = logging.getLogger(__name__)

LISTEN_ENV = "SERVICE_DESK_SMTP_LISTEN"
DEFAULT_MAX_MESSAGE_BYTES = 30 * 1024 * 1024
DEFAULT_MAX_RECIPIENTS = 50
WORKER_TIMEOUT = 60.0


def listen_address(value: str | None) -> tuple[str, int] | None:
    """`host:port` (`[::1]:2525` for IPv6) or None when empty; ValueError naming the variable."""
    text = (value or "").strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{LISTEN_ENV}: {value!r} is not host:port")
    return host, int(port)


class _Handler:
    """aiosmtpd's hooks: recipients checked at RCPT, the mail handed to a worker at DATA."""

    def __init__(self, intake: SmtpIntake) -> None:
        self.intake = intake

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.intake.max_recipients:
            return "452 4.5.3 Too many recipients"
        domains = self.intake.domains
        if domains and address.rpartition("@")[2].lower() not in domains:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        # In a (green) thread of the executor: the loop keeps serving other sessions.
        return await loop.run_in_executor(
            None, self.intake.take, bytes(raw), envelope.mail_from or "",
            tuple(envelope.rcpt_tos))


class SmtpIntake(Entrypoint):
    """Entrypoint: the decorated method gets `(raw, mail_from, rcpt_tos)` of every mail and
    returns the outcome dict of usecases/mail.receive."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._controller = None
        self.address: tuple[str, int] | None = None

    def setup(self) -> None:
        self.address = listen_address(config.env(LISTEN_ENV, ""))
        self.max_bytes = int(config.env("SERVICE_DESK_SMTP_MAX_BYTES",
                                        str(DEFAULT_MAX_MESSAGE_BYTES)))
        self.max_recipients = int(config.env("SERVICE_DESK_SMTP_MAX_RECIPIENTS",
                                             str(DEFAULT_MAX_RECIPIENTS)))
        self.domains = {d.strip().lower() for d in
                        config.env("SERVICE_DESK_SMTP_DOMAINS", "").split(",") if d.strip()}

    def start(self) -> None:
        if self.address is None:
            return
        from aiosmtpd.controller import Controller

        host, port = self.address
        controller = Controller(
            _Handler(self), hostname=host, port=port, ready_timeout=10.0,
            server_hostname=config.env("SERVICE_DESK_SMTP_HOSTNAME", socket.gethostname()),
            data_size_limit=self.max_bytes, enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        log.info("service desk SMTP listener on %s:%d", host, port)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def kill(self) -> None:
        self.stop()

    def take(self, raw: bytes, mail_from: str, rcpt_tos: tuple[str, ...]) -> str:
        """Run the worker and wait for it: the SMTP reply to the DATA command."""
        done: Event = Event()

        def handle_result(worker_ctx, result, exc_info):
            done.send((result, exc_info))
            return result, exc_info

        try:
            self.container.spawn_worker(self, (raw, mail_from, rcpt_tos), {},
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            return "421 4.3.2 Service shutting down, try again later"
        try:
            with eventlet.Timeout(WORKER_TIMEOUT):
                result, exc_info = done.wait()
        except eventlet.Timeout:
            return "451 4.3.0 Taking the message took too long, try again later"
        if exc_info is not None:
            log.warning("mail from %s not taken (the sender will retry): %s", mail_from,
                        exc_info[1])
            return "451 4.3.0 Temporarily unable to take the message, try again later"
        number = result.get("number") or ""
        return f"250 2.0.0 OK {result['outcome']} {number}".rstrip()


smtp_intake = SmtpIntake.decorator


class SmtpTransport:
    def __init__(self, host: str, port: int, security: str = "none",
                 username: str | None = None, password: str | None = None,
                 timeout: float = 10.0) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"CRM_SMTP_SECURITY: none, starttls or ssl, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self.local_hostname = socket.gethostname()

    @classmethod
    def from_env(cls) -> SmtpTransport:
        return cls(config.env("CRM_SMTP_HOST", "127.0.0.1"),
                   int(config.env("CRM_SMTP_PORT", "1025")),
                   config.env("CRM_SMTP_SECURITY", "none").strip().lower() or "none",
                   config.env("CRM_SMTP_USER", "") or None,
                   config.env("CRM_SMTP_PASSWORD", "") or None,
                   float(config.env("CRM_SMTP_TIMEOUT", "10")))

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout,
                context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname,
                                timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: EmailMessage, to_address: str) -> None:
        """PermanentFailure for a 5xx refusal, TemporaryFailure for anything else."""
        try:
            smtp = self._connect()
            try:
                smtp.send_message(message, to_addrs=[to_address])
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            failure = PermanentFailure if all(c >= 500 for c in codes) else TemporaryFailure
            raise failure(f"recipient refused: {exc.recipients}") from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPConnectError,
                smtplib.SMTPHeloError) as exc:
            # the relay's configuration or state, not the message's: retried
            raise TemporaryFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from None
        except smtplib.SMTPResponseException as exc:
            failure = PermanentFailure if exc.smtp_code >= 500 else TemporaryFailure
            raise failure(f"{exc.smtp_code} {exc.smtp_error!r}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None


@functools.cache
def transport() -> SmtpTransport:
    return SmtpTransport.from_env()
