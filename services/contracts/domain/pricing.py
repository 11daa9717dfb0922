"""Price books and the price a quote line gets, with its explanation.

A price book applies to a channel, a region and/or a customer tier (a criterion left empty
matches any value) between `valid_from` and `valid_to` (both inclusive; either may be open).
Each entry is a volume tier: (product, min_quantity) -> unit price.

Choosing a price for (product, quantity, context, day):
1. the active books valid on the day whose criteria all match the context and that price the
   product at a tier with min_quantity <= quantity;
2. the most specific book wins (the most criteria set); among equally specific ones the
   lowest unit price at that quantity, then the book id (so the choice is deterministic);
3. within the book, the tier with the highest min_quantity <= quantity.
No book: no price (the line must give one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

TAX_RATES = (Decimal("13"), Decimal("9"), Decimal("6"), Decimal("0"))  # China VAT, percent
CRITERIA = ("channel", "region", "customer_tier")


@dataclass(frozen=True)
class Tier:
    product_id: str
    min_quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class PriceBook:
    id: str
    name: str
    channel: str | None = None
    region: str | None = None
    customer_tier: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    active: bool = True
    tiers: Sequence[Tier] = field(default_factory=tuple)

    def matches(self, context: dict[str, str | None], day: date) -> bool:
        if not self.active:
            return False
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_to is not None and day > self.valid_to:
            return False
        return all(getattr(self, name) in (None, context.get(name)) for name in CRITERIA)

    @property
    def specificity(self) -> int:
        return sum(getattr(self, name) is not None for name in CRITERIA)

    def tier_for(self, product_id: str, quantity: Decimal) -> Tier | None:
        fitting = [t for t in self.tiers
                   if t.product_id == product_id and t.min_quantity <= quantity]
        return max(fitting, key=lambda t: t.min_quantity, default=None)


@dataclass(frozen=True)
class PriceChoice:
    unit_price: Decimal
    price_book_id: str
    price_book_name: str
    min_quantity: Decimal

    def source(self) -> dict[str, str]:
        """The explanation a quote line carries (`price_source`)."""
        return {"kind": "price_book", "price_book_id": self.price_book_id,
                "price_book_name": self.price_book_name,
                "tier_min_quantity": str(self.min_quantity),
                "unit_price": str(self.unit_price)}


def check_tiers(tiers: Iterable[Tier]) -> dict[str, list[str]]:
    """Problems of a book's tiers, by field: a negative price or quantity, a repeated
    (product, min_quantity)."""
    problems: dict[str, list[str]] = {}
    seen: set[tuple[str, Decimal]] = set()
    for index, tier in enumerate(tiers):
        key = f"tiers.{index}"
        if tier.min_quantity < 0:
            problems.setdefault(f"{key}.min_quantity", []).append("must not be negative")
        if tier.unit_price < 0:
            problems.setdefault(f"{key}.unit_price", []).append("must not be negative")
        if (tier.product_id, tier.min_quantity) in seen:
            problems.setdefault(f"{key}.min_quantity", []).append(
                "this product already has a tier at this quantity")
        seen.add((tier.product_id, tier.min_quantity))
    return problems


def choose_price(product_id: str, quantity: Decimal, books: Iterable[PriceBook],
                 context: dict[str, str | None], day: date) -> PriceChoice | None:
    candidates: list[tuple[int, Decimal, str, PriceBook, Tier]] = []
    for book in books:
        if not book.matches(context, day):
            continue
        tier = book.tier_for(product_id, quantity)
        if tier is not None:
            candidates.append((-book.specificity, tier.unit_price, book.id, book, tier))
    if not candidates:
        return None
    _, _, _, book, tier = min(candidates, key=lambda c: c[:3])
    return PriceChoice(tier.unit_price, book.id, book.name, tier.min_quantity)
