"""大写 amounts and the one rounding rule (services/contracts/domain/money.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.contracts.domain.money import amount_in_words, round_money


@pytest.mark.parametrize(("amount", "words"), [
    ("12345.67", "壹万贰仟叁佰肆拾伍元陆角柒分"),
    ("10000", "壹万元整"),
    ("10000.00", "壹万元整"),
    ("10005.50", "壹万零伍元伍角"),
    ("0.05", "伍分"),
    ("0.50", "伍角"),
    ("0.55", "伍角伍分"),
    ("0", "零元整"),
    ("1", "壹元整"),
    ("10", "壹拾元整"),
    ("15", "壹拾伍元整"),
    ("100", "壹佰元整"),
    ("101", "壹佰零壹元整"),
    ("1010", "壹仟零壹拾元整"),
    ("1001", "壹仟零壹元整"),
    ("1100", "壹仟壹佰元整"),
    ("1.05", "壹元零伍分"),
    ("20.30", "贰拾元叁角"),
    ("110000", "壹拾壹万元整"),
    ("100000", "壹拾万元整"),
    ("1000000", "壹佰万元整"),
    ("10010000", "壹仟零壹万元整"),
    ("100000001", "壹亿零壹元整"),
    ("100010000", "壹亿零壹万元整"),
    ("100000000", "壹亿元整"),
    ("1000100010", "壹拾亿零壹拾万零壹拾元整"),
    ("105000000.09", "壹亿零伍佰万元零玖分"),
    ("1000000000000", "壹万亿元整"),
    ("123456789012.34", "壹仟贰佰叁拾肆亿伍仟陆佰柒拾捌万玖仟零壹拾贰元叁角肆分"),
    ("9999999999999999.99",
     "玖仟玖佰玖拾玖万亿玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
])
def test_amount_in_words(amount: str, words: str) -> None:
    assert amount_in_words(Decimal(amount)) == words


def test_ints_and_strings_are_amounts_too() -> None:
    assert amount_in_words(10000) == "壹万元整"
    assert amount_in_words("0.05") == "伍分"


def test_rounded_half_up_to_the_fen_before_it_is_written() -> None:
    assert amount_in_words("0.005") == "壹分"
    assert amount_in_words("0.004") == "零元整"
    assert amount_in_words("9.995") == "壹拾元整"


@pytest.mark.parametrize("bad", ["-0.01", "-100", Decimal("-5")])
def test_negative_amounts_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="negative"):
        amount_in_words(bad)


def test_floats_nan_and_too_large_amounts_are_refused() -> None:
    with pytest.raises(TypeError):
        amount_in_words(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        amount_in_words("NaN")
    with pytest.raises(ValueError):
        amount_in_words("abc")
    with pytest.raises(ValueError, match="10\\^16"):
        amount_in_words(Decimal(10) ** 16)


@pytest.mark.parametrize(("value", "rounded"), [
    ("1.005", "1.01"), ("1.004", "1.00"), ("2.675", "2.68"), ("0.125", "0.13"),
    ("10", "10.00"), ("3.14159", "3.14"),
])
def test_round_money_is_half_up_to_the_fen(value: str, rounded: str) -> None:
    assert str(round_money(value)) == rounded
