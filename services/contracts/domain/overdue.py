"""Overdue instalments and contract renewals: pure rules, no database.

Overdue: an instalment is overdue on day `as_of` (the CRM_TIMEZONE day) when its due date is
before `as_of` (the due date itself is still on time), it is not void and not fully paid. It
*becomes* overdue once: the sweep marks it (`overdue_at`) and publishes one
`instalment_overdue`; a later receipt paying it in full makes it `paid` (`instalment_paid`).

Renewal: a renewal is a new draft contract linked to the old one (`renews_id` on the new,
`renewed_by_id` on the old). Its parties and clauses are the old ones, its amount the old one
unless given, its start the day after the old end unless given, and its end keeps the old
term's length unless given. When the renewal is signed the old contract becomes `renewed`.

Expired is read, not stored (like a quote's validity): an active contract whose end date is
before today reads `expired`.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from shared.errors import Conflict, ValidationFailed

# Statuses an instalment can become overdue from.
OPEN_STATUSES = ("pending", "partly_paid", "overdue")
# Contracts that can be renewed (expired reads from active).
RENEWABLE = ("active", "expired")


def is_overdue(status: str, amount: Decimal, paid: Decimal, due_date: date, as_of: date) -> bool:
    return status != "void" and paid < amount and due_date < as_of


def days_overdue(due_date: date, as_of: date) -> int:
    return max((as_of - due_date).days, 0)


def outstanding(amount: Decimal, paid: Decimal) -> Decimal:
    return max(amount - paid, Decimal(0))


def became_paid(before: Decimal, after: Decimal, amount: Decimal) -> bool:
    return before < amount <= after


def read_status(status: str, end_date: date | None, today: date) -> str:
    """The status a contract reads: an active one past its end date is expired."""
    if status == "active" and end_date is not None and end_date < today:
        return "expired"
    return status


def renewal_terms(old: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The new contract's terms from the old one (`status` as read today, `start_date`,
    `end_date` as dates or None, amount, currency, title, parties, clauses) and the
    request's (`title`, `amount`, `start_date`, `end_date`, all optional)."""
    if old["status"] not in RENEWABLE:
        raise Conflict(f"a {old['status']} contract cannot be renewed",
                       {"status": old["status"]})
    if old.get("renewed_by_id"):
        raise Conflict("the contract already has a renewal",
                       {"reason": "already_renewed", "renewal_id": old["renewed_by_id"]})
    old_start, old_end = old.get("start_date"), old.get("end_date")
    start = data.get("start_date")
    if start is None:
        if old_end is None:
            raise ValidationFailed.for_fields(
                {"start_date": ["the contract has no end date: give the renewal's start"]})
        start = old_end + timedelta(days=1)
    end = data.get("end_date")
    if end is None and old_start is not None and old_end is not None:
        # the same term: as many months (and days) as the old one ran
        term = relativedelta(old_end + timedelta(days=1), old_start)
        end = start + term - timedelta(days=1)
    if end is not None and end < start:
        raise ValidationFailed.for_fields({"end_date": ["before the start date"]})
    amount = data.get("amount")
    return {
        "title": data.get("title") or old["title"],
        "amount": Decimal(str(amount if amount is not None else old["amount"])),
        "currency": old.get("currency") or "CNY",
        "customer_id": old["customer_id"],
        "opportunity_id": old.get("opportunity_id"),
        "parties": list(old.get("parties") or []),
        "clauses": list(old.get("clauses") or []),
        "start_date": start,
        "end_date": end,
    }
