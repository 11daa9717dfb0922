"""Delivery of notifications: email over SMTP, signed webhooks, and message templates.

These are adapters with no database and no nameko: the rules service decides what to send and
when, records deliveries and retries; this package only performs one attempt and says how it
went (`DeliveryFailed` for email, `DeliveryOutcome` for webhooks).
"""

from __future__ import annotations

from services.rules.notify.email import EmailSender
from services.rules.notify.failures import DeliveryFailed
from services.rules.notify.targets import TargetError
from services.rules.notify.templates import TemplateError, check_template, render
from services.rules.notify.webhooks import (
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
