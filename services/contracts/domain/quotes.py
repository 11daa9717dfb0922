"""Quotes: line arithmetic, totals and the status transitions. Pure Python.

The one rounding rule (README "Quotes: rounding"): prices are tax-exclusive, CNY fen.
1. line gross = quantity x unit price (exact);
2. line discount: a percent of the gross or an amount (never more than the gross);
   line net = gross - discount, rounded half-up to 0.01;
3. the quote-level discount is spread over the non-optional lines: a percent takes that
   percent of each line's net (rounded half-up to 0.01 per line); an amount is shared in
   proportion to the lines' nets, each share rounded half-up, the last line taking the
   remainder so that the shares sum to the amount exactly;
4. line tax = (net - its share of the quote discount) x the product's rate, rounded half-up
   to 0.01, per line;
5. totals are sums of the rounded line figures: subtotal = sum of nets, discount_total = the
   quote discount, net_total = subtotal - discount_total, tax_total = sum of taxes,
   grand_total = net_total + tax_total. Optional lines are priced but not in any total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.contracts.domain.money import amount_in_words, round_money

HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

DRAFT, IN_APPROVAL, APPROVED, SENT = "draft", "in_approval", "approved", "sent"
ACCEPTED, REJECTED, EXPIRED = "accepted", "rejected", "expired"
STATUSES = (DRAFT, IN_APPROVAL, APPROVED, SENT, ACCEPTED, REJECTED, EXPIRED)
# A quote past its valid_until in one of these reads as expired (and cannot be accepted).
EXPIRING = (DRAFT, IN_APPROVAL, APPROVED, SENT)
# The commands and the statuses they leave from; `submit` goes to in_approval, or straight to
# approved when no approval flow applies to the quote.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "submit": ((DRAFT,), IN_APPROVAL),
    "approve": ((IN_APPROVAL,), APPROVED),
    "return_to_draft": ((IN_APPROVAL, APPROVED), DRAFT),
    "mark_sent": ((APPROVED,), SENT),
    "accept": ((APPROVED, SENT), ACCEPTED),
    "reject": ((APPROVED, SENT), REJECTED),
}
REVISABLE = (DRAFT, APPROVED, SENT, REJECTED, EXPIRED)


class TransitionRefused(Exception):
    """A command the quote's status does not allow; `status` is the quote's (effective)
    status."""

    def __init__(self, command: str, status: str, allowed: tuple[str, ...]):
        self.command, self.status, self.allowed = command, status, allowed
        super().__init__(f"cannot {command.replace('_', ' ')} a quote that is {status} "
                         f"(only from: {', '.join(allowed)})")


def effective_status(status: str, valid_until: date | None, today: date) -> str:
    if status in EXPIRING and valid_until is not None and valid_until < today:
        return EXPIRED
    return status


def transition(command: str, status: str, valid_until: date | None, today: date) -> str:
    """The status after `command`, or TransitionRefused naming the (effective) status."""
    allowed, target = TRANSITIONS[command]
    current = effective_status(status, valid_until, today)
    if current not in allowed:
        raise TransitionRefused(command, current, allowed)
    return target


def submit(status: str, valid_until: date | None, today: date, approval_required: bool) -> str:
    """draft -> in_approval; with no approval flow for the quote, draft -> approved."""
    target = transition("submit", status, valid_until, today)
    return target if approval_required else APPROVED


def approve(status: str, valid_until: date | None, today: date) -> str:
    return transition("approve", status, valid_until, today)


def return_to_draft(status: str, valid_until: date | None, today: date) -> str:
    return transition("return_to_draft", status, valid_until, today)


def check_editable(status: str, valid_until: date | None, today: date) -> None:
    """Only a draft is edited; a draft past its valid_until too (to give it a new date)."""
    if status != DRAFT:
        raise TransitionRefused("edit", effective_status(status, valid_until, today), (DRAFT,))


def revised_valid_until(valid_until: date | None, today: date) -> date | None:
    """A new version keeps the validity date unless it has passed (then it has none until
    one is set)."""
    return valid_until if valid_until is None or valid_until >= today else None


def check_revisable(status: str, valid_until: date | None, today: date) -> None:
    current = effective_status(status, valid_until, today)
    if current not in REVISABLE:
        raise TransitionRefused("revise", current, REVISABLE)


# -- arithmetic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discount:
    kind: str  # "percent" or "amount"
    value: Decimal

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Discount | None:
        if not data:
            return None
        return cls(data["kind"], Decimal(str(data["value"])))


class PricingError(ValueError):
    """Line figures that do not add up; `field` names the offending input."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def line_net(quantity: Decimal, unit_price: Decimal, discount: Discount | None,
             field: str = "discount") -> tuple[Decimal, Decimal]:
    """(gross rounded, net rounded) of one line."""
    gross = quantity * unit_price
    cut = Decimal(0)
    if discount is not None:
        if discount.value < 0:
            raise PricingError(field, "a discount must not be negative")
        if discount.kind == "percent":
            if discount.value > HUNDRED:
                raise PricingError(field, "a percent discount is at most 100")
            cut = gross * discount.value / HUNDRED
        else:
            if discount.value > gross:
                raise PricingError(field, "the discount is more than the line's amount")
            cut = discount.value
    return round_money(gross), round_money(gross - cut)


def share(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` in proportion to `weights`, each share rounded half-up, the last taking the
    remainder (so the shares sum to `amount`)."""
    total = sum(weights, Decimal(0))
    if not weights:
        return []
    if total == 0:
        return [ZERO] * (len(weights) - 1) + [round_money(amount)]
    shares = [round_money(amount * w / total) for w in weights[:-1]]
    shares.append(round_money(amount) - sum(shares, Decimal(0)))
    return shares


def price_quote(lines: list[dict[str, Any]], quote_discount: Discount | None) -> dict[str, Any]:
    """Each line's gross, net, quote-discount share, tax and total, and the quote's totals.
    A line is a dict with quantity, unit_price, tax_rate (Decimals), discount (dict or None)
    and optional (bool); the result's lines are the given dicts with the figures added (as
    strings)."""
    priced: list[dict[str, Any]] = []
    nets: list[Decimal] = []
    for index, line in enumerate(lines):
        gross, net = line_net(line["quantity"], line["unit_price"],
                              Discount.of(line.get("discount")), f"lines.{index}.discount")
        priced.append({**line, "_gross": gross, "_net": net})
        if not line.get("optional"):
            nets.append(net)
    subtotal = sum(nets, ZERO)
    counted = [p for p in priced if not p.get("optional")]
    if quote_discount is None:
        shares = [ZERO] * len(counted)
    elif quote_discount.value < 0:
        raise PricingError("discount", "a discount must not be negative")
    elif quote_discount.kind == "percent":
        if quote_discount.value > HUNDRED:
            raise PricingError("discount", "a percent discount is at most 100")
        shares = [round_money(n * quote_discount.value / HUNDRED) for n in nets]
    else:
        if quote_discount.value > subtotal:
            raise PricingError("discount", "the discount is more than the quote's subtotal")
        shares = share(quote_discount.value, nets)
    share_of = {id(p): s for p, s in zip(counted, shares, strict=True)}
    tax_total = ZERO
    out = []
    for p in priced:
        cut = share_of.get(id(p), ZERO)
        taxable = p["_net"] - cut
        tax = round_money(taxable * p["tax_rate"] / HUNDRED)
        if not p.get("optional"):
            tax_total += tax
        line = {k: v for k, v in p.items() if not k.startswith("_")}
        line.update(gross=str(p["_gross"]), net=str(p["_net"]), quote_discount_share=str(cut),
                    tax=str(tax), total=str(taxable + tax))
        out.append(line)
    discount_total = sum(shares, ZERO)
    net_total = subtotal - discount_total
    grand_total = net_total + tax_total
    return {
        "lines": out,
        "totals": {
            "subtotal": str(subtotal), "discount_total": str(discount_total),
            "net_total": str(net_total), "tax_total": str(tax_total),
            "grand_total": str(grand_total),
        },
        "amount_in_words": amount_in_words(grand_total),
    }
