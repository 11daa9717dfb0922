"""Email notifications over SMTP (stdlib `smtplib` + `email.message.EmailMessage`).

`send()` alone uses a connection of its own; inside `with sender.connection() as c:` several
`send(..., connection=c)` share one (the delivery loop sends the emails due together), and a
connection the relay closed while idle is reopened once. Under eventlet's monkey patching
smtplib's sockets are green, so a slow relay blocks only the calling greenlet.

Subjects and bodies may be Chinese: headers are RFC 2047 encoded and bodies are UTF-8 (the
`email` package picks base64 or quoted-printable). Addresses with a non-ASCII local part need a
relay that offers SMTPUTF8; smtplib asks for it only then.
"""

from __future__ import annotations

import functools
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import idna
from email_validator import EmailNotValidError, validate_email

from services.rules.notify.failures import DeliveryFailed

__all__ = ["SECURITY_MODES", "EmailSender", "InvalidAddress", "SmtpConnection",
           "normalize_address"]

SECURITY_MODES = ("none", "starttls", "ssl")

# Headers this module owns; letting a caller set them would produce a malformed message.
_RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
     "content-type", "content-transfer-encoding"}
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable ASCII but ':'
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# email-validator checks the local part; the domain is checked here instead, because the
# library refuses special-use domains (.local, localhost) that intranet relays do deliver to
# (the demo organisation's users are @demo.crm.local).
_STAND_IN_DOMAIN = "example.com"


class InvalidAddress(ValueError):
    """An email address that cannot be sent to; the message says why."""


def _normalize_domain(address: str, domain: str) -> str:
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidAddress(f"{address!r}: the domain {domain!r} is not valid ({error})") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise InvalidAddress(f"{address!r}: the domain {domain!r} is not a valid host name")
    return idna.decode(ascii_domain)


def normalize_address(address: object) -> str:
    """The address as it is sent (local part as given, domain lower-cased and in Unicode), or
    `InvalidAddress` naming the problem."""
    if not isinstance(address, str):
        raise InvalidAddress(f"{address!r}: an address must be a string")
    return _normalize_text_address(address)


@functools.lru_cache(maxsize=4096)  # the same owners and managers are written to all day
def _normalize_text_address(address: str) -> str:
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{address!r}: an address needs a local part, an @-sign and a domain")
    try:
        checked = validate_email(f"{local}@{_STAND_IN_DOMAIN}", check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(f"{address!r}: {error}") from None
    return f"{checked.local_part}@{_normalize_domain(address, domain)}"


def _header_value(value: object) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        # A line break in a header would let a template inject headers (or a second message).
        raise ValueError("header values may not contain line breaks")
    return text


class SmtpConnection:
    """One SMTP session shared by several `EmailSender.send` calls; opened at the first send,
    closed with QUIT by `EmailSender.connection()` or at the first error."""

    def __init__(self) -> None:
        self.smtp: smtplib.SMTP | None = None

    @property
    def open(self) -> bool:
        """False before the first send and after an error that ended the session."""
        return self.smtp is not None

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            _quit_quietly(smtp)


class EmailSender:
    """Sends messages through an SMTP relay, one per `send()`.

    `security`: "none" (plain, e.g. a local relay or a test server), "starttls" (upgrade on the
    submission port, usually 587) or "ssl" (implicit TLS, usually 465). Certificates are
    verified against the system's CA store.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: str = "none",
        timeout: float = 10.0,
        *,
        local_hostname: str | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(
                f"security: must be one of {', '.join(SECURITY_MODES)}, not {security!r}"
            )
        if (username is None) != (password is None):
            raise ValueError("username and password: give both or neither")
        name, sender_address = parseaddr(sender)
        if not sender_address:
            raise ValueError(f"sender: {sender!r} is not an address")
        try:
            sender_address = normalize_address(sender_address)
        except InvalidAddress as error:
            raise ValueError(f"sender: {error}") from None
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.security = security
        # Built once and only for TLS: a default context costs about 20 ms of CPU to make.
        self._tls_context = ssl.create_default_context() if security != "none" else None
        self.timeout = float(timeout)
        self.sender_address = sender_address
        local, _, domain = sender_address.rpartition("@")
        self.sender = str(Address(display_name=name, username=local, domain=domain))
        self._message_id_domain = idna.encode(domain, uts46=True).decode("ascii")
        # smtplib would otherwise resolve this machine's FQDN on every connection, which can
        # take seconds where reverse DNS is missing.
        self.local_hostname = local_hostname or socket.gethostname()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmailSender:
        """CRM_SMTP_HOST (127.0.0.1), CRM_SMTP_PORT (1025), CRM_SMTP_FROM ("CRM
        <crm@localhost>"), CRM_SMTP_USER, CRM_SMTP_PASSWORD, CRM_SMTP_SECURITY (none | starttls
        | ssl), CRM_SMTP_TIMEOUT (10 seconds)."""
        env = os.environ if environ is None else environ
        port_text = env.get("CRM_SMTP_PORT", "1025")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"CRM_SMTP_PORT: {port_text!r} is not a port number") from None
        if not 0 < port < 65536:
            raise ValueError(f"CRM_SMTP_PORT: {port} is not a port number")
        timeout_text = env.get("CRM_SMTP_TIMEOUT", "10")
        try:
            timeout = float(timeout_text)
        except ValueError:
            raise ValueError(f"CRM_SMTP_TIMEOUT: {timeout_text!r} is not a number") from None
        security = env.get("CRM_SMTP_SECURITY", "none").strip().lower() or "none"
        if security not in SECURITY_MODES:
            raise ValueError(
                f"CRM_SMTP_SECURITY: must be one of {', '.join(SECURITY_MODES)}, "
                f"not {security!r}"
            )
        username = env.get("CRM_SMTP_USER") or None
        password = env.get("CRM_SMTP_PASSWORD")
        if username is not None and password is None:
            raise ValueError("CRM_SMTP_PASSWORD: required when CRM_SMTP_USER is set")
        if username is None:
            password = None
        try:
            return cls(
                env.get("CRM_SMTP_HOST", "127.0.0.1"),
                port,
                env.get("CRM_SMTP_FROM", "CRM <crm@localhost>"),
                username=username,
                password=password,
                security=security,
                timeout=timeout,
            )
        except ValueError as error:
            if str(error).startswith("sender:"):
                raise ValueError("CRM_SMTP_FROM" + str(error)[len("sender"):]) from None
            raise

    def __repr__(self) -> str:
        return f"EmailSender({self.host}:{self.port}, security={self.security})"

    def message_id_for(self, key: str) -> str:
        """The Message-ID of the delivery `key` (its stored id): the same at every attempt,
        so that a message sent again after a crash is recognisably the same message (mail
        clients and relays drop the copy)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", key):
            raise ValueError(f"message key {key!r}: letters, digits, '.', '_' and '-' only")
        return f"<{key}@{self._message_id_domain}>"

    # ---------------------------------------------------------------- building the message

    def build(
        self,
        to: Iterable[str],
        subject: str,
        text: str,
        html: str | None = None,
        headers: Mapping[str, object] | None = None,
        message_key: str | None = None,
    ) -> tuple[EmailMessage, list[str]]:
        """The message and its normalised recipients; `DeliveryFailed(permanent=True)` for input
        no retry can fix (bad addresses, header injection)."""
        if isinstance(to, str):
            to = [to]
        recipients: list[str] = []
        problems: list[str] = []
        for address in to:
            try:
                normalized = normalize_address(address)
            except InvalidAddress as error:
                problems.append(str(error))
                continue
            if normalized not in recipients:
                recipients.append(normalized)
        if problems:
            raise DeliveryFailed("invalid recipient address " + "; ".join(problems), permanent=True)
        if not recipients:
            raise DeliveryFailed("no recipients", permanent=True)

        message = EmailMessage(policy=policy.SMTP)
        try:
            message["From"] = self.sender
            message["To"] = ", ".join(recipients)
            message["Subject"] = _header_value(subject)
            message["Date"] = format_datetime(datetime.now(UTC))
            message["Message-ID"] = (self.message_id_for(message_key) if message_key
                                     else make_msgid(domain=self._message_id_domain))
            for name, value in (headers or {}).items():
                if not isinstance(name, str) or not _HEADER_NAME.match(name):
                    raise ValueError(f"header {name!r}: not a valid header name")
                if name.lower() in _RESERVED_HEADERS:
                    raise ValueError(f"header {name!r}: set by the sender, not by the caller")
                message[name] = _header_value(value)
        except ValueError as error:
            raise DeliveryFailed(f"cannot build the message: {error}", permanent=True) from None
        text = text if text is not None else ""
        message.set_content(text, charset="utf-8", cte=_transfer_encoding(text))
        if html is not None:
            message.add_alternative(
                html, subtype="html", charset="utf-8", cte=_transfer_encoding(html)
            )
        return message, recipients

    # ---------------------------------------------------------------- sending

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        headers: dict | None = None,
        connection: SmtpConnection | None = None,
        message_key: str | None = None,
    ) -> str:
        """Send one message to every address of `to`; returns its Message-ID. With
        `connection` (from `connection()`), over that shared session. With `message_key` (a
        delivery's id) the Message-ID is `message_id_for(message_key)`, the same at every
        attempt; without it, a new one.

        Raises `DeliveryFailed`: permanent for bad addresses and 5xx refusals of the sender,
        recipients or content; temporary for connection errors, timeouts, TLS problems,
        authentication failures (a configuration matter, not the message's) and 4xx replies.
        """
        message, recipients = self.build(to, subject, text, html, headers, message_key)
        message_id = str(message["Message-ID"])
        try:
            refused = self._transmit(message, recipients, connection)
        except smtplib.SMTPRecipientsRefused as error:
            replies = {addr: _reply(code, text) for addr, (code, text) in error.recipients.items()}
            permanent = all(code >= 500 for code, _ in error.recipients.values())
            raise DeliveryFailed(
                "every recipient was refused: " + _describe(replies), permanent=permanent,
                refused=replies,
            ) from None
        except smtplib.SMTPSenderRefused as error:
            reply = _reply(error.smtp_code, error.smtp_error)
            raise DeliveryFailed(
                f"sender {self.sender_address} refused: {reply}",
                permanent=error.smtp_code >= 500,
            ) from None
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryFailed(
                f"SMTP authentication failed: {_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as error:
            # The relay turning this client away says nothing about the message.
            raise DeliveryFailed(
                f"SMTP server {self.host}:{self.port} refused the session: "
                f"{_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPResponseException as error:
            # DATA refused, HELO refused, or an unexpected reply
            raise DeliveryFailed(
                f"SMTP server refused the message: {_reply(error.smtp_code, error.smtp_error)}",
                permanent=error.smtp_code >= 500,
            ) from None
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryFailed(f"SMTP server lacks a needed extension: {error}",
                                 permanent=_needs_smtputf8(recipients)) from None
        except smtplib.SMTPServerDisconnected as error:
            raise DeliveryFailed(f"SMTP connection lost: {error}") from None
        except smtplib.SMTPException as error:
            raise DeliveryFailed(f"SMTP error: {error}") from None
        except TimeoutError:
            raise DeliveryFailed(
                f"SMTP server {self.host}:{self.port} did not answer within {self.timeout:g} s"
            ) from None
        except ssl.SSLError as error:
            raise DeliveryFailed(f"TLS with {self.host}:{self.port} failed: {error}") from None
        except OSError as error:
            raise DeliveryFailed(
                f"cannot reach SMTP server {self.host}:{self.port}: {error}"
            ) from None
        if refused:
            replies = {addr: _reply(code, text) for addr, (code, text) in refused.items()}
            raise DeliveryFailed(
                "some recipients were refused (the others received the message): "
                + _describe(replies),
                permanent=all(code >= 500 for code, _ in refused.values()),
                refused=replies,
                message_id=message_id,
            )
        return message_id

    @contextmanager
    def connection(self) -> Iterator[SmtpConnection]:
        """A connection for several `send(..., connection=...)` calls."""
        held = SmtpConnection()
        try:
            yield held
        finally:
            held.close()

    def _transmit(
        self, message: EmailMessage, recipients: list[str], connection: SmtpConnection | None
    ) -> dict:
        def over(smtp: smtplib.SMTP) -> dict:
            return smtp.send_message(message, from_addr=self.sender_address,
                                     to_addrs=recipients)

        if connection is None:
            smtp = self._connect()
            try:
                return over(smtp)
            finally:
                _quit_quietly(smtp)
        reused = connection.smtp is not None
        try:
            if connection.smtp is None:
                connection.smtp = self._connect()
            return over(connection.smtp)
        except smtplib.SMTPServerDisconnected:
            connection.close()
            if not reused:
                raise
            connection.smtp = self._connect()  # the relay closed it while idle: once more
            try:
                return over(connection.smtp)
            except BaseException:
                connection.close()
                raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPDataError):
            raise  # the session is still good: smtplib reset it
        except BaseException:
            connection.close()
            raise

    def _connect(self) -> smtplib.SMTP:
        context = self._tls_context
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, local_hostname=self.local_hostname,
                timeout=self.timeout, context=context,
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username is not None:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _transfer_encoding(body: str) -> str:
    # base64 rather than 8bit keeps the message 7-bit clean, so relays without 8BITMIME pass
    # Chinese text through unchanged.
    seven_bit = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    return "7bit" if seven_bit else "base64"


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    # The message is accepted (or refused) before QUIT; a relay that answers QUIT oddly or drops
    # the connection must not turn a sent message into a failure (and a duplicate on retry).
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _describe(replies: Mapping[str, str]) -> str:
    return "; ".join(f"{address}: {reply}" for address, reply in replies.items())


def _needs_smtputf8(recipients: Iterable[str]) -> bool:
    return any(not address.isascii() for address in recipients)
