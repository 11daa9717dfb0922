"""Delivery of notifications: email over SMTP, signed webhooks, and message templates.

These are adapters with no database and no nameko: the rules service decides what to send and
when, records deliveries and retries; this package only performs one attempt and says how it
went (`DeliveryFailed` for email, `DeliveryOutcome` for webhooks).
"""

from __future__ import annotations

__all__ = [
    "RETRY_SCHEDULE",
    "DeliveryFailed",
    "DeliveryOutcome",
    "EmailSender",
    "TargetError",
    "TemplateError",
    "WebhookVerificationError",
    "check_template",
    "deliver",
    "deliver_checked",
    "generate_secret",
    "next_attempt_delay",
    "render",
    "sign",
    "verify",
]


class DeliveryFailed(Exception):
    """One delivery attempt failed. `permanent` says whether trying again can help: a refused
    recipient or a malformed address will not change, a dropped connection or a 4xx may.

    `refused` maps the addresses the server refused to its reply when only some recipients were
    refused; `message_id` is then set too, because the others did receive the message (a retry
    should address only the refused ones).
    """

    def __init__(
        self,
        reason: str,
        permanent: bool = False,
        *,
        refused: dict[str, str] | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.refused = dict(refused or {})
        self.message_id = message_id

    def __repr__(self) -> str:
        return f"DeliveryFailed({self.reason!r}, permanent={self.permanent})"


# The submodules import DeliveryFailed from here, so they come after it.
from services.rules.notify.email import EmailSender  # noqa: E402
from services.rules.notify.targets import TargetError  # noqa: E402
from services.rules.notify.templates import TemplateError, check_template, render  # noqa: E402
from services.rules.notify.webhooks import (  # noqa: E402
    RETRY_SCHEDULE,
    DeliveryOutcome,
    WebhookVerificationError,
    deliver,
    deliver_checked,
    generate_secret,
    next_attempt_delay,
    sign,
    verify,
)
