"""Products, price books and quotes: one contracts RPC per request. Admins and managers
manage products and price books, everyone reads the active ones; quotes have the row-level
visibility of opportunities (the scope the gateway passes to sales)."""

from __future__ import annotations

import base64
from typing import Any

from flask import Response
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from services.contracts import contract
from services.gateway.app import require_role, rpc_call
from services.gateway.http_schemas import PageQuerySchema, page_of, paged
from services.gateway.resources.sales import _plain, sales_scope

blp = Blueprint("contracts_quotes", __name__,
                description="Products, price books and quotes (contracts service).")

MANAGERS = ("admin", "manager")

ProductPage = page_of(contract.ProductSchema, "ProductPage")
ProductListQuery = paged(contract.ProductFiltersSchema, "ProductListQuery")
PriceBookPage = page_of(contract.PriceBookSchema, "PriceBookPage")
PriceBookListQuery = paged(contract.PriceBookFiltersSchema, "PriceBookListQuery")
QuotePage = page_of(contract.QuoteSchema, "QuotePage")
QuoteListQuery = paged(contract.QuoteFiltersSchema, "QuoteListQuery")


class InactiveQuery(contract.StrictSchema):
    include_inactive = fields.Boolean(load_default=False, metadata={
        "description": "admins and managers only: an inactive record too"})


class QuoteVersionSummarySchema(Schema):
    number = fields.Integer()
    current = fields.Boolean()
    valid_until = fields.String(allow_none=True)
    grand_total = fields.String()
    currency = fields.String()
    created_by = fields.String(allow_none=True)
    created_at = fields.String()


class QuoteVersionListSchema(Schema):
    items = fields.List(fields.Nested(QuoteVersionSummarySchema))


def _inactive_allowed(include_inactive: bool) -> bool:
    if include_inactive:
        require_role(*MANAGERS)
    return include_inactive


def _page(query: dict[str, Any]) -> dict[str, Any]:
    return {"cursor": query.pop("cursor", None), "limit": query.pop("limit", 50)}


# -- products --------------------------------------------------------------------------------


@blp.route("/products", methods=["POST"])
@blp.arguments(contract.ProductWriteSchema())
@blp.response(201, contract.ProductSchema)
@blp.alt_response(409, description="A product with this code exists.")
def create_product(data: dict[str, Any]) -> Any:
    """A new product (admins, managers); `tax_rate` is the China VAT percent: 13, 9, 6, 0."""
    require_role(*MANAGERS)
    product = rpc_call("contracts", "create_product", data=_plain(data))
    return product, 201, {"Location": f"/products/{product['id']}"}


@blp.route("/products", methods=["GET"])
@blp.arguments(ProductListQuery(), location="query", unknown=RAISE)
@blp.response(200, ProductPage)
def list_products(query: dict[str, Any]) -> Any:
    """Active products, newest first (inactive too for admins and managers who ask)."""
    page = _page(query)
    _inactive_allowed(query["include_inactive"])
    return rpc_call("contracts", "list_products", filters=_plain(query), **page)


@blp.route("/products/<string:product_id>", methods=["GET"])
@blp.arguments(InactiveQuery(), location="query", unknown=RAISE)
@blp.response(200, contract.ProductSchema)
def get_product(query: dict[str, Any], product_id: str) -> Any:
    return rpc_call("contracts", "get_product", product_id=product_id,
                    include_inactive=_inactive_allowed(query["include_inactive"]))


@blp.route("/products/<string:product_id>", methods=["PATCH"])
@blp.arguments(contract.ProductChangeSchema())
@blp.response(200, contract.ProductSchema)
def update_product(data: dict[str, Any], product_id: str) -> Any:
    """Change a product (admins, managers); `active: false` retires it from new quotes."""
    require_role(*MANAGERS)
    return rpc_call("contracts", "update_product", product_id=product_id, data=_plain(data))


# -- price books -----------------------------------------------------------------------------


@blp.route("/price-books", methods=["POST"])
@blp.arguments(contract.PriceBookWriteSchema())
@blp.response(201, contract.PriceBookSchema)
def create_price_book(data: dict[str, Any]) -> Any:
    """A price book (admins, managers) for a channel, region and/or customer tier (empty:
    any), valid from/to (inclusive), with volume tiers: (product, min_quantity) -> unit
    price. A quote line takes the most specific matching book's highest fitting tier."""
    require_role(*MANAGERS)
    book = rpc_call("contracts", "create_price_book", data=_plain(data))
    return book, 201, {"Location": f"/price-books/{book['id']}"}


@blp.route("/price-books", methods=["GET"])
@blp.arguments(PriceBookListQuery(), location="query", unknown=RAISE)
@blp.response(200, PriceBookPage)
def list_price_books(query: dict[str, Any]) -> Any:
    page = _page(query)
    _inactive_allowed(query["include_inactive"])
    return rpc_call("contracts", "list_price_books", filters=_plain(query), **page)


@blp.route("/price-books/<string:price_book_id>", methods=["GET"])
@blp.arguments(InactiveQuery(), location="query", unknown=RAISE)
@blp.response(200, contract.PriceBookSchema)
def get_price_book(query: dict[str, Any], price_book_id: str) -> Any:
    return rpc_call("contracts", "get_price_book", price_book_id=price_book_id,
                    include_inactive=_inactive_allowed(query["include_inactive"]))


@blp.route("/price-books/<string:price_book_id>", methods=["PATCH"])
@blp.arguments(contract.PriceBookChangeSchema())
@blp.response(200, contract.PriceBookSchema)
def update_price_book(data: dict[str, Any], price_book_id: str) -> Any:
    """Change a price book (admins, managers); `tiers`, when given, replaces all tiers."""
    require_role(*MANAGERS)
    return rpc_call("contracts", "update_price_book", price_book_id=price_book_id,
                    data=_plain(data))


# -- quotes ----------------------------------------------------------------------------------


@blp.route("/quotes", methods=["POST"])
@blp.arguments(contract.QuoteCreateSchema())
@blp.response(201, contract.QuoteSchema)
def create_quote(data: dict[str, Any]) -> Any:
    """A draft quote for an opportunity the caller sees; owner and team are the
    opportunity's. A line without `unit_price` is priced from the price books (see its
    `price_source`)."""
    quote = rpc_call("contracts", "create_quote", data=_plain(data), scope=sales_scope())
    return quote, 201, {"Location": f"/quotes/{quote['id']}"}


@blp.route("/quotes", methods=["GET"])
@blp.arguments(QuoteListQuery(), location="query", unknown=RAISE)
@blp.response(200, QuotePage)
def list_quotes(query: dict[str, Any]) -> Any:
    """Quotes the caller sees (own, the team's, all), newest first."""
    page = _page(query)
    return rpc_call("contracts", "list_quotes", filters=_plain(query), scope=sales_scope(),
                    **page)


@blp.route("/quotes/<string:quote_id>", methods=["GET"])
@blp.response(200, contract.QuoteSchema)
def get_quote(quote_id: str) -> Any:
    """The quote with its current version's terms; past valid_until it reads expired."""
    return rpc_call("contracts", "get_quote", quote_id=quote_id, scope=sales_scope())


@blp.route("/quotes/<string:quote_id>", methods=["PATCH"])
@blp.arguments(contract.QuoteChangeSchema())
@blp.response(200, contract.QuoteSchema)
@blp.alt_response(409, description="Only a draft can be edited (`status` says what it is).")
def update_quote(data: dict[str, Any], quote_id: str) -> Any:
    """Change the terms while the quote is a draft; `lines` replaces all lines."""
    return rpc_call("contracts", "update_quote", quote_id=quote_id, data=_plain(data),
                    scope=sales_scope())


@blp.route("/quotes/<string:quote_id>/versions", methods=["GET"])
@blp.arguments(PageQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, QuoteVersionListSchema)
def list_quote_versions(query: dict[str, Any], quote_id: str) -> Any:
    """Every version of the quote, oldest first (a quote has few: no paging)."""
    return rpc_call("contracts", "list_quote_versions", quote_id=quote_id,
                    scope=sales_scope())


@blp.route("/quotes/<string:quote_id>/versions/<int:number>", methods=["GET"])
@blp.response(200, contract.QuoteSchema)
def get_quote_version(quote_id: str, number: int) -> Any:
    """The quote with the terms of version `number` (old versions never change)."""
    return rpc_call("contracts", "get_quote", quote_id=quote_id, scope=sales_scope(),
                    version=number)


class QuotePdfQuery(contract.StrictSchema):
    version = fields.Integer(validate=validate.Range(min=1, max=100_000), metadata={
        "description": "a version of the quote (default: the current one)"})
    template_id = fields.String(validate=validate.Length(min=1, max=36), metadata={
        "description": "a print template (default: the default quote template)"})


@blp.route("/quotes/<string:quote_id>/pdf", methods=["GET"])
@blp.arguments(QuotePdfQuery(), location="query", unknown=RAISE)
@blp.response(200, description="The quote as a PDF from its print template (application/pdf).",
              content_type="application/pdf")
def quote_pdf(query: dict[str, Any], quote_id: str) -> Any:
    """The quote rendered with a print template (打印模板): Chinese text in an embedded CJK font,
    the company header, the lines, the totals, the 大写 amount and page numbers."""
    pdf = rpc_call("contracts", "quote_pdf", quote_id=quote_id, scope=sales_scope(), **query)
    return Response(base64.b64decode(pdf), mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="quote-{quote_id[:8]}.pdf"'})


@blp.route("/quotes/<string:quote_id>/revise", methods=["POST"])
@blp.response(201, contract.QuoteSchema)
@blp.alt_response(412, description="The quote's status allows no revision.")
def revise_quote(quote_id: str) -> Any:
    """A new version (number + 1) from the current one, as a draft."""
    quote = rpc_call("contracts", "revise_quote", quote_id=quote_id, scope=sales_scope())
    return quote, 201, {"Location": f"/quotes/{quote_id}/versions/{quote['version']}"}


@blp.route("/quotes/<string:quote_id>/submit", methods=["POST"])
@blp.response(200, contract.QuoteSchema)
@blp.alt_response(412, description="Only a draft is submitted.")
def submit_quote(quote_id: str) -> Any:
    """Submit a draft: in_approval, or approved at once when no approval flow applies."""
    return rpc_call("contracts", "submit_quote", quote_id=quote_id, scope=sales_scope())


@blp.route("/quotes/<string:quote_id>/send", methods=["POST"])
@blp.response(200, contract.QuoteSchema)
@blp.alt_response(412, description="Only an approved quote is sent.")
def send_quote(quote_id: str) -> Any:
    """Mark an approved quote as sent to the customer."""
    return rpc_call("contracts", "mark_quote_sent", quote_id=quote_id, scope=sales_scope())


@blp.route("/quotes/<string:quote_id>/accept", methods=["POST"])
@blp.arguments(contract.QuoteAcceptSchema())
@blp.response(200, contract.QuoteSchema)
@blp.alt_response(412, description="Not approved or sent, expired, or sales refused the move "
                  "of the opportunity (`missing` lists its unmet exit criteria).")
def accept_quote(data: dict[str, Any], quote_id: str) -> Any:
    """The customer accepted: the opportunity takes the grand total and moves (default: to
    its won stage) through sales, whose exit criteria apply."""
    return rpc_call("contracts", "accept_quote", quote_id=quote_id, data=_plain(data),
                    scope=sales_scope())


@blp.route("/quotes/<string:quote_id>/reject", methods=["POST"])
@blp.arguments(contract.QuoteDecisionSchema())
@blp.response(200, contract.QuoteSchema)
@blp.alt_response(412, description="Only an approved or sent quote is rejected.")
def reject_quote(data: dict[str, Any], quote_id: str) -> Any:
    return rpc_call("contracts", "reject_quote", quote_id=quote_id, data=_plain(data),
                    scope=sales_scope())
