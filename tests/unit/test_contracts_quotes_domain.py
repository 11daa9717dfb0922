"""Pricing (price books, tiers), line and quote arithmetic, and quote transitions
(services/contracts/domain/pricing.py and quotes.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from services.contracts.domain import quotes
from services.contracts.domain.pricing import PriceBook, Tier, check_tiers, choose_price

DAY = date(2026, 12, 3)
TIERS = (Tier("p1", D("0"), D("100.00")), Tier("p1", D("10"), D("90.00")),
         Tier("p1", D("100"), D("80.00")), Tier("p2", D("1"), D("5.5")))


def book(book_id: str = "list", **kw) -> PriceBook:
    return PriceBook(id=book_id, name=kw.pop("name", book_id), tiers=kw.pop("tiers", TIERS),
                     **kw)


# -- price books -----------------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "price", "tier"), [
    ("1", "100.00", "0"), ("9.9999", "100.00", "0"), ("10", "90.00", "10"),
    ("99", "90.00", "10"), ("100", "80.00", "100"), ("5000", "80.00", "100"),
])
def test_the_highest_tier_not_above_the_quantity_prices_the_line(quantity, price, tier):
    choice = choose_price("p1", D(quantity), [book()], {}, DAY)
    assert choice is not None
    assert choice.unit_price == D(price) and choice.min_quantity == D(tier)
    assert choice.source() == {"kind": "price_book", "price_book_id": "list",
                               "price_book_name": "list", "tier_min_quantity": tier,
                               "unit_price": price}


def test_a_product_below_its_lowest_tier_or_in_no_book_has_no_price():
    assert choose_price("p2", D("0.5"), [book()], {}, DAY) is None
    assert choose_price("p3", D("1"), [book()], {}, DAY) is None


def test_the_most_specific_matching_book_wins():
    general = book("general")
    channel = book("channel", channel="partner", tiers=(Tier("p1", D("0"), D("95")),))
    both = book("both", channel="partner", region="华东", tiers=(Tier("p1", D("0"), D("99")),))
    books = [general, channel, both]
    assert choose_price("p1", D("1"), books, {"channel": "partner", "region": "华东"},
                        DAY).price_book_id == "both"  # more specific, though dearer
    assert choose_price("p1", D("1"), books, {"channel": "partner", "region": "华北"},
                        DAY).price_book_id == "channel"
    assert choose_price("p1", D("1"), books, {"channel": "direct"}, DAY).price_book_id == \
        "general"


def test_equally_specific_books_give_the_lower_price_then_the_lower_id():
    a = book("b-a", customer_tier="A", tiers=(Tier("p1", D("0"), D("70")),))
    b = book("b-b", customer_tier="A", tiers=(Tier("p1", D("0"), D("60")),))
    c = book("b-c", customer_tier="A", tiers=(Tier("p1", D("0"), D("60")),))
    assert choose_price("p1", D("1"), [a, c, b], {"customer_tier": "A"}, DAY).price_book_id \
        == "b-b"


def test_validity_dates_are_inclusive_and_inactive_books_do_not_count():
    dated = book("dated", valid_from=date(2026, 12, 1), valid_to=date(2026, 12, 3),
                 customer_tier="A")
    fallback = book("fallback")
    ctx = {"customer_tier": "A"}
    assert choose_price("p1", D("1"), [dated, fallback], ctx, DAY).price_book_id == "dated"
    assert choose_price("p1", D("1"), [dated, fallback], ctx,
                        date(2026, 12, 4)).price_book_id == "fallback"
    assert choose_price("p1", D("1"), [dated, fallback], ctx,
                        date(2026, 11, 30)).price_book_id == "fallback"
    off = book("off", active=False, customer_tier="A")
    assert choose_price("p1", D("1"), [off, fallback], ctx, DAY).price_book_id == "fallback"


def test_tier_problems_are_named_by_field():
    problems = check_tiers([Tier("p1", D("0"), D("1")), Tier("p1", D("0"), D("2")),
                            Tier("p2", D("-1"), D("-3"))])
    assert problems == {
        "tiers.1.min_quantity": ["this product already has a tier at this quantity"],
        "tiers.2.min_quantity": ["must not be negative"],
        "tiers.2.unit_price": ["must not be negative"],
    }


# -- arithmetic ------------------------------------------------------------------------------


def line(quantity: str, price: str, rate: str = "13", discount=None, optional=False) -> dict:
    return {"quantity": D(quantity), "unit_price": D(price), "tax_rate": D(rate),
            "discount": discount, "optional": optional}


def test_a_line_is_rounded_half_up_after_its_discount():
    gross, net = quotes.line_net(D("3.3333"), D("1.005"), None)
    assert (gross, net) == (D("3.35"), D("3.35"))  # 3.34996665 -> 3.35
    gross, net = quotes.line_net(D("1"), D("10.00"), quotes.Discount("percent", D("12.5")))
    assert (gross, net) == (D("10.00"), D("8.75"))
    gross, net = quotes.line_net(D("2"), D("0.125"), quotes.Discount("percent", D("50")))
    assert net == D("0.13")  # 0.125 half-up
    assert quotes.line_net(D("2"), D("50"), quotes.Discount("amount", D("30")))[1] == D("70.00")


@pytest.mark.parametrize(("discount", "message"), [
    (quotes.Discount("amount", D("100.01")), "more than the line"),
    (quotes.Discount("percent", D("100.5")), "at most 100"),
    (quotes.Discount("percent", D("-1")), "negative"),
])
def test_impossible_line_discounts_are_refused(discount, message):
    with pytest.raises(quotes.PricingError, match=message) as err:
        quotes.line_net(D("1"), D("100"), discount, "lines.3.discount")
    assert err.value.field == "lines.3.discount"


def test_quote_totals_are_sums_of_rounded_lines_and_optional_lines_are_out():
    result = quotes.price_quote([
        line("3", "33.333"),                       # net 100.00 (99.999), tax 13.00
        line("1", "0.05", "6"),                    # net 0.05, tax 0.00 (0.003)
        line("2", "10", "9", optional=True),       # priced, not counted
        line("1.5", "10.01", "0", {"kind": "percent", "value": "10"}),  # 15.015*0.9=13.5135
    ], None)
    lines = result["lines"]
    assert [ln["net"] for ln in lines] == ["100.00", "0.05", "20.00", "13.51"]
    assert [ln["tax"] for ln in lines] == ["13.00", "0.00", "1.80", "0.00"]
    assert lines[2]["total"] == "21.80" and lines[2]["optional"] is True
    assert result["totals"] == {"subtotal": "113.56", "discount_total": "0.00",
                                "net_total": "113.56", "tax_total": "13.00",
                                "grand_total": "126.56"}
    assert result["amount_in_words"] == "壹佰贰拾陆元伍角陆分"


def test_a_quote_percent_discount_is_taken_per_line_before_tax():
    result = quotes.price_quote([line("1", "100.05"), line("1", "0.15", "6")],
                                quotes.Discount("percent", D("10")))
    assert [ln["quote_discount_share"] for ln in result["lines"]] == ["10.01", "0.02"]
    assert [ln["tax"] for ln in result["lines"]] == ["11.71", "0.01"]  # 90.04*.13, 0.13*.06
    assert result["totals"] == {"subtotal": "100.20", "discount_total": "10.03",
                                "net_total": "90.17", "tax_total": "11.72",
                                "grand_total": "101.89"}


def test_a_quote_amount_discount_is_shared_by_net_and_sums_exactly():
    result = quotes.price_quote([line("1", "100"), line("1", "100"), line("1", "100"),
                                 line("1", "50", optional=True)],
                                quotes.Discount("amount", D("100")))
    shares = [ln["quote_discount_share"] for ln in result["lines"]]
    assert shares == ["33.33", "33.33", "33.34", "0.00"]
    assert result["totals"]["discount_total"] == "100.00"
    assert result["totals"]["net_total"] == "200.00"
    # per-line tax rounding: 8.67 + 8.67 + 8.67 (of 66.67, 66.67, 66.66), not 200 x 13 %
    assert result["totals"]["tax_total"] == "26.01"
    assert result["totals"]["grand_total"] == "226.01"


def test_a_quote_discount_above_the_subtotal_is_refused_naming_discount():
    with pytest.raises(quotes.PricingError) as err:
        quotes.price_quote([line("1", "10")], quotes.Discount("amount", D("10.01")))
    assert err.value.field == "discount"


def test_an_empty_quote_totals_zero():
    result = quotes.price_quote([], quotes.Discount("amount", D("0")))
    assert result["totals"]["grand_total"] == "0.00"
    assert result["amount_in_words"] == "零元整"


# -- transitions -----------------------------------------------------------------------------

LATER = date(2027, 1, 1)


@pytest.mark.parametrize(("command", "start", "end"), [
    ("submit", "draft", "in_approval"), ("approve", "in_approval", "approved"),
    ("return_to_draft", "in_approval", "draft"), ("return_to_draft", "approved", "draft"),
    ("mark_sent", "approved", "sent"), ("accept", "approved", "accepted"),
    ("accept", "sent", "accepted"), ("reject", "approved", "rejected"),
    ("reject", "sent", "rejected"),
])
def test_allowed_transitions(command, start, end):
    assert quotes.transition(command, start, LATER, DAY) == end


@pytest.mark.parametrize(("command", "start"), [
    ("submit", "approved"), ("approve", "draft"), ("mark_sent", "draft"),
    ("mark_sent", "in_approval"), ("mark_sent", "sent"), ("accept", "draft"),
    ("accept", "in_approval"), ("accept", "rejected"), ("accept", "accepted"),
    ("reject", "draft"), ("reject", "accepted"), ("return_to_draft", "sent"),
])
def test_refused_transitions_name_the_status(command, start):
    with pytest.raises(quotes.TransitionRefused) as err:
        quotes.transition(command, start, LATER, DAY)
    assert err.value.status == start and start in str(err.value)


def test_submit_without_an_approval_flow_approves_at_once():
    assert quotes.submit("draft", LATER, DAY, approval_required=False) == "approved"
    assert quotes.submit("draft", LATER, DAY, approval_required=True) == "in_approval"
    assert quotes.approve("in_approval", LATER, DAY) == "approved"
    assert quotes.return_to_draft("in_approval", LATER, DAY) == "draft"


def test_a_quote_past_its_validity_reads_expired_and_cannot_be_accepted():
    yesterday = date(2026, 12, 2)
    assert quotes.effective_status("sent", yesterday, DAY) == "expired"
    assert quotes.effective_status("sent", DAY, DAY) == "sent"  # valid through valid_until
    assert quotes.effective_status("accepted", yesterday, DAY) == "accepted"
    assert quotes.effective_status("sent", None, DAY) == "sent"
    with pytest.raises(quotes.TransitionRefused) as err:
        quotes.transition("accept", "sent", yesterday, DAY)
    assert err.value.status == "expired"


def test_only_a_draft_is_editable_and_an_accepted_quote_is_not_revised():
    quotes.check_editable("draft", LATER, DAY)
    for status in ("in_approval", "approved", "sent", "accepted", "rejected"):
        with pytest.raises(quotes.TransitionRefused):
            quotes.check_editable(status, LATER, DAY)
    quotes.check_editable("draft", date(2026, 1, 1), DAY)  # past its date: to set a new one
    with pytest.raises(quotes.TransitionRefused) as err:
        quotes.check_editable("sent", date(2026, 1, 1), DAY)
    assert err.value.status == "expired"
    assert quotes.revised_valid_until(date(2026, 1, 1), DAY) is None
    assert quotes.revised_valid_until(DAY, DAY) == DAY
    for status in ("draft", "approved", "sent", "rejected"):
        quotes.check_revisable(status, LATER, DAY)
    quotes.check_revisable("sent", date(2026, 1, 1), DAY)  # an expired quote is revised
    for status in ("in_approval", "accepted"):
        with pytest.raises(quotes.TransitionRefused):
            quotes.check_revisable(status, LATER, DAY)
