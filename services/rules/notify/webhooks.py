"""Outgoing webhooks in the style of Standard Webhooks (https://www.standardwebhooks.com/).

Each POST carries `webhook-id` (the same for every attempt of one message, so receivers can
deduplicate), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`
("v1,<base64 HMAC-SHA256>" over "{id}.{timestamp}.{body}", keyed with the endpoint's secret, a
"whsec_" + base64 string). Receivers verify it with any Standard Webhooks library, or with
`verify()` here.

`deliver()` makes one attempt and classifies it; scheduling the next one (`next_attempt_delay`)
and disabling endpoints are the caller's job. Redirects are not followed: a 3xx means the
endpoint's URL should be updated (and a redirect cannot lead a delivery to an internal address).
`deliver_checked()` is what the rules service calls: the URL is checked against the SSRF policy
(`targets.check_url`) and the POST goes to the address that was checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool

import services.rules.notify.targets as targets

__all__ = [
    "RETRY_SCHEDULE",
    "SECRET_PREFIX",
    "USER_AGENT",
    "DeliveryOutcome",
    "WebhookVerificationError",
    "classify",
    "deliver",
    "deliver_checked",
    "generate_secret",
    "next_attempt_delay",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64
USER_AGENT = "crm-webhooks/1"
EXCERPT_CHARS = 500
_EXCERPT_READ_BYTES = 4 * EXCERPT_CHARS  # UTF-8 takes up to 4 bytes a character

# Base delays before retry 1, 2, ...: quick retries for blips, then hours, so that an endpoint
# that is down for a day still gets the message (the total is about 31.7 hours).
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=8),
    timedelta(hours=8),
)
# Each delay is spread by this fraction either way so that endpoints failing together do not
# get their retries together.
RETRY_JITTER = 0.1

_RETRYABLE_STATUSES = frozenset({408, 429})

# One pooled session per process; urllib3's pool is thread-safe (and green under eventlet).
_session = requests.Session()
_session.headers.update({"User-Agent": USER_AGENT})


class WebhookVerificationError(ValueError):
    """A webhook that does not verify; the message says which check failed."""


# --------------------------------------------------------------------------- secrets and signing


def generate_secret() -> str:
    """A new endpoint secret: "whsec_" + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret: must be a non-empty string")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret: not a valid whsec_ + base64 secret") from None


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if not msg_id or "." in msg_id:
        # The id is part of the signed "id.timestamp.body": a dot would make it ambiguous.
        raise ValueError("msg_id: must be non-empty and contain no '.'")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return f"{msg_id}.{int(timestamp)}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value "v1,<base64 HMAC-SHA256>" of one message."""
    digest = hmac.new(
        _secret_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _unix(now: datetime | float | int | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now: must be timezone-aware")
        return now.timestamp()
    return float(now)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = 300,
    now: datetime | float | None = None,
) -> None:
    """Check a received webhook; raises `WebhookVerificationError` saying what is wrong
    (a missing header, a timestamp more than `tolerance` seconds away from `now`, no matching
    signature). Header names are matched case-insensitively; several space-separated
    signatures (secret rotation) are accepted if any one matches."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if not lowered.get(name):
            raise WebhookVerificationError(f"missing header {name}")
    msg_id = lowered["webhook-id"]
    try:
        timestamp = int(lowered["webhook-timestamp"])
    except ValueError:
        raise WebhookVerificationError(
            f"invalid header webhook-timestamp: {lowered['webhook-timestamp']!r} is not an "
            "integer"
        ) from None
    age = _unix(now) - timestamp
    if age > tolerance:
        raise WebhookVerificationError(
            f"stale timestamp: the message was signed {age:.0f} s ago (tolerance {tolerance} s)"
        )
    if age < -tolerance:
        raise WebhookVerificationError(
            f"timestamp in the future: {-age:.0f} s ahead (tolerance {tolerance} s)"
        )
    try:
        expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
    except ValueError as error:
        raise WebhookVerificationError(f"cannot verify: {error}") from None
    for candidate in lowered["webhook-signature"].split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookVerificationError("bad signature: no v1 signature matches the body")


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryOutcome:
    """How one attempt went. `retry`: worth trying again later; `disable`: the receiver said
    410 Gone, stop sending to this endpoint."""

    ok: bool
    status_code: int | None
    retry: bool
    disable: bool
    error: str | None
    duration_ms: float
    response_excerpt: str = ""
    retry_after_seconds: float | None = None


def classify(status_code: int) -> tuple[bool, bool, bool]:
    """(ok, retry, disable) for an HTTP status: 2xx succeeds; 408, 429 and 5xx are worth a
    retry; 410 disables the endpoint; any other status (3xx, 4xx) fails for good."""
    if 200 <= status_code < 300:
        return True, False, False
    if status_code == 410:
        return False, False, True
    if status_code in _RETRYABLE_STATUSES or 500 <= status_code < 600:
        return False, True, False
    return False, False, False


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _excerpt(response: requests.Response) -> str:
    try:
        raw = response.raw.read(_EXCERPT_READ_BYTES, decode_content=True)
    except Exception:  # noqa: BLE001 - the excerpt is diagnostics; the status is what counts
        return ""
    if isinstance(raw, str):
        return raw[:EXCERPT_CHARS]
    encoding = response.encoding or "utf-8"
    try:
        text = (raw or b"").decode(encoding, "replace")
    except LookupError:
        text = (raw or b"").decode("utf-8", "replace")
    return text[:EXCERPT_CHARS]


def _status_error(response: requests.Response) -> str | None:
    status = response.status_code
    if 200 <= status < 300:
        return None
    reason = f"{status} {response.reason or ''}".strip()
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        return f"{reason}: redirect to {location!r} not followed (update the endpoint URL)"
    if status == 410:
        return f"{reason}: the endpoint asks to stop sending"
    return reason


class _PinnedAdapter(HTTPAdapter):
    """Connects to one given address whatever the URL's host resolves to now; TLS still
    checks the certificate against the URL's host name (SNI and hostname verification)."""

    def __init__(self, address: str, hostname: str) -> None:
        self._address, self._hostname = address, hostname
        super().__init__(max_retries=0)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        parts = urllib.parse.urlsplit(request.url)
        if parts.scheme == "https":
            return HTTPSConnectionPool(self._address, parts.port or 443, maxsize=1,
                                       server_hostname=self._hostname,
                                       assert_hostname=self._hostname)
        return HTTPConnectionPool(self._address, parts.port or 80, maxsize=1)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:  # older requests
        return self.get_connection_with_tls_context(SimpleNamespace(url=url), True)


def _pinned_post(url: str, address: str, body: bytes, headers: dict[str, str],
                 timeout: float) -> requests.Response:
    parts = urllib.parse.urlsplit(url)
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: it would connect elsewhere
    adapter = _PinnedAdapter(address, parts.hostname or "")
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        return session.post(url, data=body, headers={**headers, "host": parts.netloc},
                            timeout=timeout, allow_redirects=False, stream=True)
    finally:
        session.close()


def deliver_checked(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    allowlist: targets.Allowlist | None = None,
    timeout: float = 10.0,
    resolve: targets.Resolver | None = None,
) -> DeliveryOutcome:
    """`deliver` after the URL passed the SSRF policy, to the address checked. A refused
    target fails at once and for good, with nothing sent and nothing measured of it; a name
    that does not resolve now is tried again later."""
    try:
        target = targets.check_url(url, allowlist if allowlist is not None
                                   else targets.Allowlist.from_env(),
                                   **({"resolve": resolve} if resolve else {}))
    except targets.TargetError as error:
        return DeliveryOutcome(
            ok=False, status_code=None, retry=isinstance(error, targets.TargetUnresolved),
            disable=False, error=f"not sent: {error}", duration_ms=0.0)
    return deliver(url, secret, msg_id, body, timeout=timeout, connect_to=target.addresses[0])


def deliver(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    timeout: float = 10.0,
    now: datetime | None = None,
    connect_to: str | None = None,
) -> DeliveryOutcome:
    """POST `body` (JSON) to `url`, signed; never raises for network or HTTP trouble (the
    outcome says what happened). `now` is the attempt's timestamp (default: the clock);
    `timeout` bounds connecting and each read; `connect_to` is the address to connect to
    (checked by the caller), else the host is resolved as usual. `ValueError` for a bad
    secret or msg_id."""
    timestamp = int(_unix(now))
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    started = time.perf_counter()
    try:
        if connect_to is not None:
            response = _pinned_post(url, connect_to, body, headers, timeout)
        else:
            response = _session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                stream=True,
            )
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader) as error:
        return DeliveryOutcome(
            ok=False, status_code=None, retry=False, disable=False,
            error=f"invalid webhook URL {url!r}: {error}",
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    except requests.exceptions.Timeout as error:
        return DeliveryOutcome(
            ok=False, status_code=None, retry=True, disable=False,
            error=f"timed out after {timeout:g} s: {error}",
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    except requests.exceptions.RequestException as error:
        return DeliveryOutcome(
            ok=False, status_code=None, retry=True, disable=False,
            error=f"network error: {error}",
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    try:
        excerpt = _excerpt(response)
    finally:
        response.close()
    duration_ms = (time.perf_counter() - started) * 1000
    ok, retry, disable = classify(response.status_code)
    return DeliveryOutcome(
        ok=ok,
        status_code=response.status_code,
        retry=retry,
        disable=disable,
        error=_status_error(response),
        duration_ms=duration_ms,
        response_excerpt=excerpt,
        retry_after_seconds=_retry_after(response.headers.get("Retry-After"), time.time()),
    )


def next_attempt_delay(attempt: int) -> timedelta | None:
    """How long to wait before retry number `attempt` (1 = the first retry, after the first
    failed attempt): `RETRY_SCHEDULE[attempt - 1]` spread by ±10 % jitter; None when the
    schedule is exhausted (give up, and tell someone)."""
    if attempt < 1:
        raise ValueError(f"attempt: must be 1 or more, not {attempt}")
    if attempt > len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[attempt - 1]
    return base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
