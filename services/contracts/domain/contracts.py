"""Contracts and payment collection (回款): pure Python, no database.

- Numbers: HT-<year>-<6 digits>; the sequence value comes from a locked counter row per year
  (usecases), this module only formats and checks it.
- Status transitions: draft -> in_approval -> approved -> active; draft -> approved (submitted,
  no flow applies); draft -> active (`sign` when no flow applies to the terms);
  active -> expired | terminated | renewed (renewed when the successor is signed).
- Payment plan: instalments of an amount or a percentage of the contract amount; their sum
  never exceeds the contract amount.
- Receipts are matched to instalments explicitly or oldest-due first; partial payments;
  instalment statuses pending, partly_paid, paid, overdue, void.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.errors import Conflict, ValidationFailed

NUMBER_RE = re.compile(r"^HT-(\d{4})-(\d{6})$")
CENT = Decimal("0.01")

STATUSES = ("draft", "in_approval", "approved", "active", "expired", "terminated", "renewed")
# contract approval: submit draft -> in_approval (a flow applies) or approved (none does); the
# decision in_approval -> approved or back to draft; sign approved (or a draft no flow applies
# to) -> active; a voided approval takes an approved contract back to draft.
TRANSITIONS: dict[str, set[str]] = {
    "draft": {"in_approval", "approved", "active"},
    "in_approval": {"draft", "approved"},
    "approved": {"active", "draft"},
    "active": {"expired", "terminated", "renewed"},
    "expired": {"renewed"},
    "terminated": set(),
    "renewed": set(),
}
INSTALMENT_STATUSES = ("pending", "partly_paid", "paid", "overdue", "void")


def format_number(year: int, value: int) -> str:
    if not 1 <= value <= 999_999:
        raise ValueError(f"contract sequence out of range: {value}")
    return f"HT-{year:04d}-{value:06d}"


def parse_number(number: str) -> tuple[int, int]:
    match = NUMBER_RE.match(number)
    if not match:
        raise ValueError(f"not a contract number: {number!r}")
    return int(match.group(1)), int(match.group(2))


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, set()):
        raise Conflict(f"a {current} contract cannot become {target}",
                       {"status": current, "target": target})


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def build_plan(contract_amount: Decimal, instalments: list[dict[str, Any]]) -> list[dict]:
    """Resolve each instalment's amount (given, or `percentage` of the contract amount) and
    check the plan; returns instalments sorted by due date with `seq` 1..n."""
    errors: dict[str, Any] = {}
    resolved: list[dict[str, Any]] = []
    for index, item in enumerate(instalments):
        has_amount = item.get("amount") is not None
        has_pct = item.get("percentage") is not None
        if has_amount == has_pct:
            errors[f"instalments.{index}"] = ["give exactly one of amount or percentage"]
            continue
        if has_pct:
            pct = Decimal(str(item["percentage"]))
            if not Decimal(0) < pct <= Decimal(100):
                errors[f"instalments.{index}.percentage"] = ["must be in (0, 100]"]
                continue
            amount = money(contract_amount * pct / Decimal(100))
        else:
            amount = money(item["amount"])
        if amount <= 0:
            errors[f"instalments.{index}.amount"] = ["must be positive"]
            continue
        resolved.append({"due_date": item["due_date"], "amount": amount,
                         "percentage": item.get("percentage"), "label": item.get("label")})
    if errors:
        raise ValidationFailed.for_fields(errors)
    total = sum((i["amount"] for i in resolved), Decimal(0))
    if total > contract_amount:
        raise ValidationFailed.for_fields(
            {"instalments": [f"the instalments total {total} exceeds the contract amount "
                             f"{contract_amount}"]})
    resolved.sort(key=lambda i: i["due_date"])
    for seq, item in enumerate(resolved, start=1):
        item["seq"] = seq
    return resolved


def instalment_status(amount: Decimal, paid: Decimal, due_date: date, as_of: date,
                      void: bool = False) -> str:
    if void:
        return "void"
    if paid >= amount:
        return "paid"
    if due_date < as_of:
        return "overdue"
    return "partly_paid" if paid > 0 else "pending"


def match_receipt(instalments: list[dict[str, Any]], amount: Decimal,
                  instalment_id: str | None = None) -> list[tuple[str, Decimal]]:
    """Allocate a receipt over open instalments: to `instalment_id` first when given, the rest
    oldest-due first. Instalments are dicts with id, due_date, amount, paid, status. Returns
    (instalment_id, allocated) pairs; what is left unallocated stays on the receipt."""
    if amount <= 0:
        raise ValidationFailed.for_fields({"amount": ["must be positive"]})
    open_ = [i for i in instalments if i["status"] != "void" and i["paid"] < i["amount"]]
    open_.sort(key=lambda i: (i["due_date"], i.get("seq", 0)))
    if instalment_id is not None:
        chosen = [i for i in instalments if i["id"] == instalment_id]
        if not chosen:
            raise ValidationFailed.for_fields({"instalment_id": ["no such instalment"]})
        if chosen[0]["status"] == "void":
            raise ValidationFailed.for_fields({"instalment_id": ["the instalment is void"]})
        open_ = chosen + [i for i in open_ if i["id"] != instalment_id]
    left = amount
    allocations: list[tuple[str, Decimal]] = []
    for item in open_:
        if left <= 0:
            break
        room = item["amount"] - item["paid"]
        if room <= 0:
            continue
        take = min(room, left)
        allocations.append((item["id"], take))
        left -= take
    return allocations


def receivables(contract_amount: Decimal, instalments: list[dict[str, Any]],
                received: Decimal, as_of: date) -> dict[str, Decimal]:
    overdue = sum((i["amount"] - i["paid"] for i in instalments
                   if i["status"] != "void" and i["paid"] < i["amount"]
                   and i["due_date"] < as_of), Decimal(0))
    return {"contract_amount": contract_amount, "received": received,
            "outstanding": max(contract_amount - received, Decimal(0)), "overdue": overdue}
