"""Public web forms (issue 17, groups part): tokens, fill-time stamps, the spam checks and
the rate-limit window. Pure Python.

- The form's **token** is 32 random bytes (url-safe); only its SHA-256 is stored, compared
  in constant time.
- The **fill-time stamp** is `<unix seconds>.<HMAC-SHA256(signing key, form key + seconds)>`
  issued by `GET /forms/{key}`: a post needs one at least `min_fill_seconds` old (a person
  takes that long to fill in a form, a bot posts at once) and at most a day old.
- The **honeypot** `website` is a field the page hides: a person leaves it empty.
A post failing the spam checks is answered like a success (202 `accepted`) and creates
nothing, so a bot learns nothing to adapt to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HONEYPOT_FIELD = "website"
STAMP_MAX_AGE_SECONDS = 24 * 3600
WINDOW_SECONDS = 60


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_signing_key() -> str:
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)


def _signature(signing_key: str, form_key: str, issued: int) -> str:
    message = f"{form_key}.{issued}".encode()
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def issue_stamp(signing_key: str, form_key: str, now: float) -> str:
    issued = int(now)
    return f"{issued}.{_signature(signing_key, form_key, issued)}"


def spam_reason(stamp: str | None, honeypot: str | None, signing_key: str, form_key: str,
                now: float, min_fill_seconds: int) -> str | None:
    """Why the post looks like a bot's, or None for a person's."""
    if honeypot:
        return "honeypot filled"
    if min_fill_seconds <= 0:
        return None
    if not stamp or "." not in stamp:
        return "no fill-time stamp"
    issued_text, _, signature = stamp.partition(".")
    if not issued_text.isdigit():
        return "bad fill-time stamp"
    issued = int(issued_text)
    if not hmac.compare_digest(signature, _signature(signing_key, form_key, issued)):
        return "bad fill-time stamp"
    age = now - issued
    if age < min_fill_seconds:
        return f"filled in {max(0, int(age))} s (less than {min_fill_seconds} s)"
    if age > STAMP_MAX_AGE_SECONDS:
        return "fill-time stamp expired"
    return None


def window(now: float) -> tuple[int, int]:
    """The one-minute window of `now` and the seconds until it ends (for Retry-After)."""
    start = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
    return start, max(1, start + WINDOW_SECONDS - int(now))


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """A post with an Origin header must come from one of the form's origins (a server-side
    post without one is allowed: the token is what authenticates it)."""
    if not origin:
        return True
    return origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}
