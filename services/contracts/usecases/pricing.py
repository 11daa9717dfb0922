"""Products and price books: create, change, read, list; and the price books as the domain
sees them (services/contracts/domain/pricing.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.contract import PriceBookSchema, ProductSchema
from services.contracts.domain import pricing
from services.contracts.models import PriceBookRecord, Product
from shared import config
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.paging import page_after, page_of

product_schema = ProductSchema()
price_book_schema = PriceBookSchema()


@dataclass(frozen=True)
class CatalogPorts:
    db: Any
    actor: str | None


def new_id() -> str:
    return str(uuid.uuid4())


def today() -> date:
    """The business day in the configured time zone (validity dates are calendar days)."""
    return utcnow().astimezone(ZoneInfo(config.timezone_name())).date()


def product_to_dict(product: Product) -> dict[str, Any]:
    data = product_schema.dump(product)
    data["tax_rate"] = format(Decimal(product.tax_rate).normalize(), "f")
    return data


def _plain_tiers(tiers: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"product_id": t["product_id"], "min_quantity": str(t["min_quantity"]),
             "unit_price": str(t["unit_price"])} for t in tiers]


def price_book_to_dict(book: PriceBookRecord) -> dict[str, Any]:
    return price_book_schema.dump(book)


# -- products --------------------------------------------------------------------------------


def create_product(ports: CatalogPorts, values: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    values["code"] = values["code"].strip()
    try:
        with ports.db.begin() as session:
            if session.scalar(select(Product.id).where(Product.code == values["code"])):
                raise _duplicate_code(values["code"])
            product = Product(id=new_id(), created_at=now, updated_at=now,
                              **{**values, "tax_rate": Decimal(values["tax_rate"])})
            session.add(product)
            session.flush()
            return product_to_dict(product)
    except IntegrityError:  # a concurrent create with the same code
        raise _duplicate_code(values["code"]) from None


def _duplicate_code(code: str) -> Conflict:
    return Conflict(f"a product with code {code} exists", {"field": "code"})


def change_product(ports: CatalogPorts, product_id: str, values: dict[str, Any]
                   ) -> dict[str, Any]:
    try:
        with ports.db.begin() as session:
            product = session.get(Product, product_id)
            if product is None:
                raise NotFound(f"product {product_id} not found", {"field": "product_id"})
            if "code" in values:
                values["code"] = values["code"].strip()
                other = session.scalar(select(Product.id).where(
                    Product.code == values["code"], Product.id != product_id))
                if other:
                    raise _duplicate_code(values["code"])
            if "tax_rate" in values:
                values["tax_rate"] = Decimal(values["tax_rate"])
            for name, value in values.items():
                setattr(product, name, value)
            product.updated_at = utcnow()
            session.flush()
            return product_to_dict(product)
    except IntegrityError:
        raise _duplicate_code(values.get("code", "")) from None


def read_product(ports: CatalogPorts, product_id: str, include_inactive: bool
                 ) -> dict[str, Any]:
    with ports.db.read() as session:
        product = session.get(Product, product_id)
        if product is None or not (product.active or include_inactive):
            raise NotFound(f"product {product_id} not found", {"field": "product_id"})
        return product_to_dict(product)


def list_products(ports: CatalogPorts, filters: dict[str, Any], page: dict[str, Any]
                  ) -> dict[str, Any]:
    with ports.db.read() as session:
        query = select(Product)
        if not filters["include_inactive"]:
            query = query.where(Product.active.is_(True))
        if filters.get("category"):
            query = query.where(Product.category == filters["category"])
        rows = session.scalars(page_after(query, Product.created_at, Product.id,
                                          page["cursor"], page["limit"])).all()
        return page_of(rows, page["limit"], "created_at", product_to_dict)


# -- price books -----------------------------------------------------------------------------


def _check_book(session: Session, values: dict[str, Any]) -> None:
    tiers = values.get("tiers") or []
    problems = pricing.check_tiers(_tiers(tiers))
    known = set(session.scalars(select(Product.id).where(
        Product.id.in_({t["product_id"] for t in tiers}))))
    for index, tier in enumerate(tiers):
        if tier["product_id"] not in known:
            problems.setdefault(f"tiers.{index}.product_id", []).append("no such product")
    if problems:
        raise ValidationFailed.for_fields(problems)


def _tiers(tiers: list[dict[str, Any]]) -> list[pricing.Tier]:
    return [pricing.Tier(t["product_id"], Decimal(str(t["min_quantity"])),
                         Decimal(str(t["unit_price"]))) for t in tiers]


def create_price_book(ports: CatalogPorts, values: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    with ports.db.begin() as session:
        _check_book(session, values)
        book = PriceBookRecord(id=new_id(), created_at=now, updated_at=now,
                               **{**values, "tiers": _plain_tiers(values["tiers"])})
        session.add(book)
        session.flush()
        return price_book_to_dict(book)


def change_price_book(ports: CatalogPorts, book_id: str, values: dict[str, Any]
                      ) -> dict[str, Any]:
    with ports.db.begin() as session:
        book = session.get(PriceBookRecord, book_id)
        if book is None:
            raise NotFound(f"price book {book_id} not found", {"field": "price_book_id"})
        if "tiers" in values:
            _check_book(session, values)
            values["tiers"] = _plain_tiers(values["tiers"])
        start = values.get("valid_from", book.valid_from)
        end = values.get("valid_to", book.valid_to)
        if start and end and end < start:
            raise ValidationFailed.for_fields({"valid_to": ["must not be before valid_from"]})
        for name, value in values.items():
            setattr(book, name, value)
        book.updated_at = utcnow()
        session.flush()
        return price_book_to_dict(book)


def read_price_book(ports: CatalogPorts, book_id: str, include_inactive: bool
                    ) -> dict[str, Any]:
    with ports.db.read() as session:
        book = session.get(PriceBookRecord, book_id)
        if book is None or not (book.active or include_inactive):
            raise NotFound(f"price book {book_id} not found", {"field": "price_book_id"})
        return price_book_to_dict(book)


def list_price_books(ports: CatalogPorts, filters: dict[str, Any], page: dict[str, Any]
                     ) -> dict[str, Any]:
    with ports.db.read() as session:
        query = select(PriceBookRecord)
        if not filters["include_inactive"]:
            query = query.where(PriceBookRecord.active.is_(True))
        rows = session.scalars(page_after(query, PriceBookRecord.created_at,
                                          PriceBookRecord.id, page["cursor"],
                                          page["limit"])).all()
        return page_of(rows, page["limit"], "created_at", price_book_to_dict)


def domain_books(session: Session, currency: str) -> list[pricing.PriceBook]:
    """The active price books of `currency` as the domain chooses among them."""
    rows = session.scalars(select(PriceBookRecord).where(
        PriceBookRecord.active.is_(True), PriceBookRecord.currency == currency)).all()
    return [pricing.PriceBook(
        id=r.id, name=r.name, channel=r.channel, region=r.region,
        customer_tier=r.customer_tier, valid_from=r.valid_from, valid_to=r.valid_to,
        active=r.active, tiers=tuple(_tiers(r.tiers or []))) for r in rows]
