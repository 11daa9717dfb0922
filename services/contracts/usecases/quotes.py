"""Quotes: create from an opportunity, change while draft, revise into a new version, the
status commands (submit, mark_sent, accept, reject), read, list, versions.

Visibility: a quote's owner and team are its opportunity's; the caller's scope (own, the
team's, all: the scope the gateway passes to sales) decides which quotes they see. A quote
the caller may not see answers like one that does not exist.

The sales service is asked over RPC (`ports.sales`) outside any write transaction (a write
transaction that yields holds SQLite's lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import false, select, true
from sqlalchemy.orm import Session

from services.contracts.contract import QuoteSchema
from services.contracts.domain import quotes as domain
from services.contracts.domain.pricing import choose_price
from services.contracts.models import Product, Quote, QuoteVersion
from services.contracts.usecases import approvals
from services.contracts.usecases.approvals import require_unlocked
from services.contracts.usecases.pricing import domain_books, new_id
from services.contracts.usecases.pricing import today as business_today
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from shared.paging import page_after, page_of

quote_schema = QuoteSchema()
TERM_FIELDS = ("title", "currency", "channel", "region", "customer_tier", "discount", "notes")
LIST_FILTERS = ("opportunity_id", "customer_id", "owner_id", "status")


@dataclass(frozen=True)
class QuotePorts:
    """The database, the outbox recorder, who acts, the business day, and the sales
    service's commands: `sales(command, **kwargs)` answers its reply or raises its typed
    error (DependencyUnavailable when it does not answer)."""

    db: Any
    events: Any
    actor: str | None
    today: Callable[[], date]
    sales: Callable[..., Any]


# -- approval (the quote's terms, the flow, the decision's callback) ----

RECORD_TYPE = "quote"
LINE_TERMS = ("product_id", "product_code", "quantity", "unit_price", "discount", "tax_rate",
              "optional", "gross", "net", "quote_discount_share", "tax", "total")


def approval_terms(quote: Quote, version: QuoteVersion) -> dict[str, Any]:
    """The figures an approver decides on (hashed by the approvals engine; flow conditions
    read them): the lines (product, quantity, unit price, discounts, tax, figures), the
    quote-level discount, the totals, the validity, `discount_percent` (all discounts over
    the gross of the counted lines, 2 places) and the customer tier, channel and region."""
    terms = version.terms
    counted = [line for line in terms["lines"] if not line.get("optional")]
    gross = sum((Decimal(line["gross"]) for line in counted), Decimal(0))
    net_total = Decimal(terms["totals"]["net_total"])
    percent = Decimal(0) if not gross else (gross - net_total) * 100 / gross
    return {
        "quote_id": quote.id, "version": version.number,
        "opportunity_id": quote.opportunity_id, "customer_id": quote.customer_id,
        "owner_id": quote.owner_id, "currency": terms.get("currency"),
        "channel": terms.get("channel"), "region": terms.get("region"),
        "customer_tier": terms.get("customer_tier"),
        "lines": [{name: line.get(name) for name in LINE_TERMS} for line in terms["lines"]],
        "discount": terms.get("discount"), "totals": dict(terms["totals"]),
        "amount": terms["totals"]["grand_total"],
        "discount_percent": str(percent.quantize(Decimal("0.01"))),
        "valid_until": version.valid_until.isoformat() if version.valid_until else None,
    }


def approval_required(session: Session, terms: dict[str, Any]) -> bool:
    """Whether an approval flow for quotes matches these terms (`approval_terms`)."""
    return approvals.matching_flow(session, RECORD_TYPE, terms) is not None


def _approval_refused(ports: Any, session: Session, quote: Quote, version: QuoteVersion,
                      today: date) -> str | None:
    """Why an approved (or sent) quote's approval does not stand, or None: the approval of
    these terms must be approved with their hash, or no flow may apply to them. A hash that
    differs voids the approval (approval_voided; the callback returns the quote to draft)."""
    terms = approval_terms(quote, version)
    recomputed = price_terms(session, version.terms, None, today)
    if (recomputed["totals"], recomputed["lines"]) != (version.terms["totals"],
                                                       version.terms["lines"]):
        approvals.void_other_terms(ports, session, RECORD_TYPE, quote.id, recomputed)
        return "the stored figures are not those its lines price to"
    answer = approvals.verify_in_session(ports, session, RECORD_TYPE, quote.id, terms)
    if answer["valid"]:
        return None
    if answer["status"] == "voided":
        return answer["reason"]
    if approval_required(session, terms):
        return "an approval flow applies to these terms and they are not approved"
    return None


def on_approval_finished(worker: Any, session: Session, row: Any, status: str) -> None:
    """The approvals' callback for quotes, in the decision's transaction: approved -> the
    quote is approved; rejected, recalled or voided -> back to draft."""
    quote = session.get(Quote, row.record_id, with_for_update=True)
    if quote is None:
        return
    version = version_of(session, quote)
    today = business_today()
    try:
        if status == "approved":
            if (quote.status != domain.IN_APPROVAL
                    or approvals.domain.terms_hash(approval_terms(quote, version))
                    != row.terms_hash):
                raise Conflict("the quote's terms are not the ones submitted for approval",
                               {"status": quote.status, "field": "terms_hash"})
            target = domain.approve(quote.status, version.valid_until, today)
            reason = f"approval {row.id} approved"
        elif quote.status in (domain.IN_APPROVAL, domain.APPROVED):
            target = domain.return_to_draft(quote.status, version.valid_until, today)
            reason = f"approval {row.id} {status}"
        else:
            return
    except domain.TransitionRefused as err:
        raise _refused(err) from None
    set_status(worker, session, quote, version, target, reason, today)


approvals.register_record_callback(RECORD_TYPE, on_approval_finished)


# -- reading ---------------------------------------------------------------------------------


def visible(owner_id: str | None, scope: dict[str, Any]) -> bool:
    return scope["all"] or (owner_id is not None and owner_id in scope["owner_ids"])


def visible_quote(session: Session, quote_id: Any, scope: dict[str, Any],
                  for_update: bool = False) -> Quote:
    quote = session.get(Quote, quote_id, with_for_update=for_update) \
        if isinstance(quote_id, str) else None
    if quote is None or not visible(quote.owner_id, scope):
        raise NotFound(f"quote {quote_id} not found", {"field": "quote_id"})
    return quote


def version_of(session: Session, quote: Quote, number: int | None = None) -> QuoteVersion:
    row = session.get(QuoteVersion, (quote.id, number or quote.version))
    if row is None:
        raise NotFound(f"quote {quote.id} has no version {number}", {"field": "version"})
    return row


def quote_to_dict(quote: Quote, version: QuoteVersion, today: date,
                  current: QuoteVersion | None = None) -> dict[str, Any]:
    """The quote with `version`'s terms; its status is the quote's as it reads today (expiry
    by the `current` version's valid_until: `version` when it is the current one)."""
    terms = version.terms
    valid_until = (current or version).valid_until
    data = {
        "id": quote.id, "opportunity_id": quote.opportunity_id,
        "customer_id": quote.customer_id, "owner_id": quote.owner_id,
        "team_id": quote.team_id,
        "status": domain.effective_status(quote.status, valid_until, today),
        "status_reason": quote.status_reason,
        "version": version.number, "current_version": quote.version,
        "valid_until": version.valid_until.isoformat() if version.valid_until else None,
        **{name: terms.get(name) for name in TERM_FIELDS},
        "lines": terms["lines"], "totals": terms["totals"],
        "amount_in_words": terms["amount_in_words"],
        "created_by": quote.created_by,
        "created_at": quote.created_at, "updated_at": quote.updated_at,
    }
    return quote_schema.dump(data)


def read(ports: QuotePorts, quote_id: str, scope: dict[str, Any],
         number: int | None = None) -> dict[str, Any]:
    with ports.db.read() as session:
        quote = visible_quote(session, quote_id, scope)
        return quote_to_dict(quote, version_of(session, quote, number), ports.today(),
                             version_of(session, quote))


def list_versions(ports: QuotePorts, quote_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    with ports.db.read() as session:
        quote = visible_quote(session, quote_id, scope)
        rows = session.scalars(select(QuoteVersion).where(QuoteVersion.quote_id == quote.id)
                               .order_by(QuoteVersion.number)).all()
        return {"items": [{
            "number": row.number, "current": row.number == quote.version,
            "valid_until": row.valid_until.isoformat() if row.valid_until else None,
            "grand_total": row.terms["totals"]["grand_total"],
            "currency": row.terms["currency"], "created_by": row.created_by,
            "created_at": row.created_at.isoformat(),
        } for row in rows]}


def list_page(ports: QuotePorts, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    with ports.db.read() as session:
        if scope["all"]:
            clause = true()
        elif scope["owner_ids"]:
            clause = Quote.owner_id.in_(scope["owner_ids"])
        else:
            clause = false()
        query = select(Quote).where(clause)
        for name in LIST_FILTERS:
            if filters.get(name):
                query = query.where(getattr(Quote, name) == filters[name])
        rows = session.scalars(page_after(query, Quote.created_at, Quote.id, page["cursor"],
                                          page["limit"])).all()
        versions = {(v.quote_id, v.number): v for v in session.scalars(
            select(QuoteVersion).where(QuoteVersion.quote_id.in_([r.id for r in rows])))}
        today = ports.today()
        return page_of(rows, page["limit"], "created_at",
                       lambda q: quote_to_dict(q, versions[(q.id, q.version)], today))


# -- pricing ---------------------------------------------------------------------------------


def price_terms(session: Session, terms: dict[str, Any], inputs: list[dict[str, Any]] | None,
                today: date) -> dict[str, Any]:
    """The terms with their lines priced: `inputs` (lines as given) are priced anew; without
    them the stored lines keep their prices and only the figures are recomputed."""
    if inputs is None:
        lines = [{**line, "quantity": Decimal(line["quantity"]),
                  "unit_price": Decimal(line["unit_price"]),
                  "tax_rate": Decimal(line["tax_rate"])} for line in terms["lines"]]
    else:
        lines = _lines_from_inputs(session, terms, inputs, today)
    try:
        priced = domain.price_quote(lines, domain.Discount.of(terms.get("discount")))
    except domain.PricingError as err:
        raise ValidationFailed.for_fields({err.field: [str(err)]}) from None
    for line in priced["lines"]:
        for name in ("quantity", "unit_price", "tax_rate"):
            line[name] = _text(line[name])
    return {**terms, **priced}


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def _lines_from_inputs(session: Session, terms: dict[str, Any], inputs: list[dict[str, Any]],
                       today: date) -> list[dict[str, Any]]:
    ids = {line["product_id"] for line in inputs}
    products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    books = domain_books(session, terms["currency"])
    context = {name: terms.get(name) for name in ("channel", "region", "customer_tier")}
    problems: dict[str, list[str]] = {}
    lines = []
    for index, given in enumerate(inputs):
        product = products.get(given["product_id"])
        if product is None or not product.active:
            problems[f"lines.{index}.product_id"] = ["no such active product"]
            continue
        quantity = Decimal(str(given["quantity"]))
        if given.get("unit_price") is not None:
            unit_price = Decimal(str(given["unit_price"]))
            source = {"kind": "given", "unit_price": str(unit_price)}
        else:
            choice = choose_price(product.id, quantity, books, context, today)
            if choice is None:
                problems[f"lines.{index}.unit_price"] = [
                    "no active price book prices this product for this quantity, channel, "
                    "region and customer tier today: give unit_price"]
                continue
            unit_price, source = choice.unit_price, choice.source()
        discount = given.get("discount")
        lines.append({
            "product_id": product.id, "product_code": product.code,
            "product_name": product.name, "unit": product.unit,
            "quantity": quantity, "unit_price": unit_price, "price_source": source,
            "discount": None if not discount else
            {"kind": discount["kind"], "value": str(discount["value"])},
            "section": given.get("section"), "note": given.get("note"),
            "optional": bool(given.get("optional")),
            "tax_rate": Decimal(product.tax_rate),
        })
    if problems:
        raise ValidationFailed.for_fields(problems)
    return lines


def _terms_of(values: dict[str, Any]) -> dict[str, Any]:
    terms = {name: values.get(name) for name in TERM_FIELDS}
    if terms["discount"]:
        terms["discount"] = {"kind": terms["discount"]["kind"],
                             "value": str(terms["discount"]["value"])}
    terms["currency"] = terms["currency"] or "CNY"
    return terms


# -- commands --------------------------------------------------------------------------------


def _opportunity(ports: QuotePorts, opportunity_id: str, scope: dict[str, Any]) -> dict:
    try:
        return ports.sales("get_opportunity", opportunity_id=opportunity_id, scope=scope)
    except NotFound:
        raise ValidationFailed.for_fields({"opportunity_id": ["no such opportunity"]}) from None


def create(ports: QuotePorts, values: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    opportunity = _opportunity(ports, values["opportunity_id"], scope)
    if opportunity.get("status") != "open":
        raise Conflict(f"the opportunity is {opportunity.get('status')}: quotes are made for "
                       "open opportunities", {"field": "opportunity_id"})
    today = ports.today()
    now = utcnow()
    with ports.db.begin() as session:
        terms = price_terms(session, _terms_of(values), values["lines"], today)
        quote = Quote(id=new_id(), opportunity_id=opportunity["id"],
                      customer_id=opportunity.get("customer_id"),
                      owner_id=opportunity.get("owner_id"), team_id=opportunity.get("team_id"),
                      status=domain.DRAFT, version=1, created_by=ports.actor,
                      created_at=now, updated_at=now)
        version = QuoteVersion(quote_id=quote.id, number=1, valid_until=values["valid_until"],
                               terms=terms, created_by=ports.actor, created_at=now)
        session.add_all([quote, version])
        session.flush()
        snapshot = quote_to_dict(quote, version, today)
        ports.events.record(session, "quote_created", {"quote": snapshot})
        return snapshot


def _refused(err: domain.TransitionRefused) -> Exception:
    """Editing a quote that is not a draft conflicts with its state (409); a command its
    status does not allow is a failed precondition (412). Both name the status."""
    extra = {"status": err.status, "allowed_from": list(err.allowed)}
    if err.command == "edit":
        return Conflict(f"quote is {err.status}: only a draft can be edited", extra)
    return PreconditionFailed(str(err), extra)


def change(ports: QuotePorts, quote_id: str, values: dict[str, Any],
           scope: dict[str, Any]) -> dict[str, Any]:
    today = ports.today()
    with ports.db.begin() as session:
        quote = visible_quote(session, quote_id, scope, for_update=True)
        require_unlocked(session, "quote", quote.id)
        version = version_of(session, quote)
        try:
            domain.check_editable(quote.status, version.valid_until, today)
        except domain.TransitionRefused as err:
            raise _refused(err) from None
        terms = dict(version.terms)
        for name in TERM_FIELDS:
            if name in values:
                terms[name] = _terms_of({**terms, name: values[name]})[name]
        repriced = "lines" in values or any(
            name in values for name in ("currency", "channel", "region", "customer_tier"))
        inputs = values.get("lines")
        if inputs is None and repriced:
            inputs = [_input_of(line) for line in version.terms["lines"]]
        version.terms = price_terms(session, terms, inputs, today)
        if "valid_until" in values:
            version.valid_until = values["valid_until"]
        quote.updated_at = utcnow()
        return quote_to_dict(quote, version, today)


def _input_of(line: dict[str, Any]) -> dict[str, Any]:
    """A stored line as input again: a given price stays given, a book's price is chosen
    anew (the price context changed)."""
    given = line["price_source"].get("kind") == "given"
    return {"product_id": line["product_id"], "quantity": line["quantity"],
            "unit_price": line["unit_price"] if given else None,
            "discount": line.get("discount"), "section": line.get("section"),
            "note": line.get("note"), "optional": line.get("optional", False)}


def revise(ports: QuotePorts, quote_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """A new version (number + 1) with the current version's terms, as a draft; the old
    version stays readable."""
    today = ports.today()
    with ports.db.begin() as session:
        quote = visible_quote(session, quote_id, scope, for_update=True)
        require_unlocked(session, "quote", quote.id)
        current = version_of(session, quote)
        try:
            domain.check_revisable(quote.status, current.valid_until, today)
        except domain.TransitionRefused as err:
            raise _refused(err) from None
        now = utcnow()
        version = QuoteVersion(quote_id=quote.id, number=quote.version + 1,
                               valid_until=domain.revised_valid_until(current.valid_until,
                                                                      today),
                               terms=dict(current.terms),
                               created_by=ports.actor, created_at=now)
        session.add(version)
        previous = quote.version
        quote.version, quote.status, quote.status_reason = version.number, domain.DRAFT, None
        quote.updated_at = now
        session.flush()
        snapshot = quote_to_dict(quote, version, today)
        ports.events.record(session, "quote_revised",
                            {"quote": snapshot, "previous_version": previous})
        return snapshot


def set_status(ports: QuotePorts, session: Session, quote: Quote, version: QuoteVersion,
               target: str, reason: str | None, today: date) -> dict[str, Any]:
    """Store a status the domain allowed and record quote_status_changed (the approvals part
    calls this with the results of domain.approve / domain.return_to_draft)."""
    before = domain.effective_status(quote.status, version.valid_until, today)
    quote.status, quote.status_reason, quote.updated_at = target, reason, utcnow()
    snapshot = quote_to_dict(quote, version, today)
    ports.events.record(session, "quote_status_changed", {
        "quote": snapshot, "from_status": before, "to_status": target, "reason": reason})
    return snapshot


def command(ports: QuotePorts, quote_id: str, name: str, scope: dict[str, Any],
            reason: str | None = None) -> dict[str, Any]:
    """submit, mark_sent or reject."""
    today = ports.today()
    refused = None
    with ports.db.begin() as session:
        quote = visible_quote(session, quote_id, scope, for_update=True)
        require_unlocked(session, "quote", quote.id)
        version = version_of(session, quote)
        terms = approval_terms(quote, version)
        required = name == "submit" and approval_required(session, terms)
        try:
            if name == "submit":
                target = domain.submit(quote.status, version.valid_until, today, required)
            else:
                target = domain.transition(name, quote.status, version.valid_until, today)
        except domain.TransitionRefused as err:
            raise _refused(err) from None
        if name == "submit" and not version.terms["lines"]:
            raise PreconditionFailed("a quote without lines cannot be submitted",
                                     {"field": "lines", "status": quote.status})
        if name == "submit":
            if required:
                approvals.start_in_session(ports, session, {
                    "record_type": RECORD_TYPE, "record_id": quote.id, "terms": terms,
                    "terms_version": version.number}, ports.actor or quote.owner_id)
            else:
                approvals.void_other_terms(ports, session, RECORD_TYPE, quote.id, terms)
        elif name == "mark_sent":
            refused = _approval_refused(ports, session, quote, version, today)
        if refused is None:
            return set_status(ports, session, quote, version, target, reason, today)
    # the void (and the quote's return to draft) is committed; the command is refused
    raise Conflict(f"the quote's approval does not stand: {refused}",
                   {"reason": "approval_invalid", "field": "terms_hash"})


def accept(ports: QuotePorts, quote_id: str, scope: dict[str, Any], reason: str | None,
           stage_id: str | None) -> dict[str, Any]:
    """Accept an approved or sent quote that has not expired: the opportunity gets the
    quote's grand total as its amount (sales' update_opportunity) and moves to `stage_id`
    (default: its pipeline's won stage) through sales' move_opportunity, whose exit criteria
    apply. When sales refuses, the quote is not accepted and the answer says why (the
    amount stays updated: it is the quote's latest figure either way)."""
    today = ports.today()
    refused = None
    with ports.db.begin() as session:
        quote = visible_quote(session, quote_id, scope, for_update=True)
        require_unlocked(session, "quote", quote.id)
        version = version_of(session, quote)
        try:
            domain.transition("accept", quote.status, version.valid_until, today)
        except domain.TransitionRefused as err:
            raise _refused(err) from None
        refused = _approval_refused(ports, session, quote, version, today)
        seen = (quote.status, quote.version)
        seen_hash = approvals.domain.terms_hash(approval_terms(quote, version))
        total, currency = version.terms["totals"]["grand_total"], version.terms["currency"]
        opportunity_id = quote.opportunity_id
    if refused is not None:
        raise Conflict(f"the quote's approval does not stand: {refused}",
                       {"reason": "approval_invalid", "field": "terms_hash"})
    opportunity = ports.sales("get_opportunity", opportunity_id=opportunity_id, scope=scope)
    if stage_id is None:
        pipeline = ports.sales("get_pipeline", pipeline_id=opportunity["pipeline_id"])
        stage_id = next((s["id"] for s in pipeline["stages"] if s["kind"] == "won"), None)
        if stage_id is None:
            raise PreconditionFailed("the opportunity's pipeline has no won stage: give "
                                     "stage_id", {"field": "stage_id"})
    move_reason = reason or f"quote {quote_id} version {seen[1]} accepted"
    ports.sales("update_opportunity", opportunity_id=opportunity_id,
                data={"amount": total, "currency": currency}, scope=scope)
    try:
        ports.sales("move_opportunity", opportunity_id=opportunity_id, stage_id=stage_id,
                    reason=move_reason, scope=scope,
                    command_id=f"quote-accept:{quote_id}:{seen[1]}")
    except PreconditionFailed as err:
        raise PreconditionFailed(
            f"the quote was not accepted: sales refused to move the opportunity: {err.detail}",
            {**err.extra, "opportunity_id": opportunity_id}) from None
    except ValidationFailed as err:
        raise ValidationFailed(
            f"the quote was not accepted: sales refused to move the opportunity: {err.detail}",
            err.extra) from None
    with ports.db.begin() as session:
        quote = visible_quote(session, quote_id, scope, for_update=True)
        version = version_of(session, quote)
        require_unlocked(session, "quote", quote.id)
        if (quote.status, quote.version) != seen or approvals.domain.terms_hash(
                approval_terms(quote, version)) != seen_hash:
            raise Conflict("the quote changed while it was being accepted; the opportunity "
                           "was moved: read the quote and retry",
                           {"status": quote.status, "opportunity_id": opportunity_id})
        snapshot = set_status(ports, session, quote, version, domain.ACCEPTED, reason, today)
        ports.events.record(session, "quote_accepted", {
            "quote": snapshot, "opportunity_id": opportunity_id, "amount": total})
        return snapshot
