"""Money for quotes and contracts: Decimal, rounded half-up to the fen (0.01), and amounts in
Chinese capital numerals (大写金额) as invoices and contracts print them.

大写 rules (as 《支付结算办法》 prints them):
- the yuan part is read in groups of four digits (个, 万, 亿, 万亿); a group that is all zeros
  says nothing and gets no group unit (100000001 -> 壹亿零壹元);
- zeros between two non-zero digits, also across groups, are read as one 零
  (1010 -> 壹仟零壹拾元, 10005 -> 壹万零伍元); trailing zeros of the yuan part are silent;
- 10 to 19 keep the 壹: 壹拾元;
- no jiao and no fen: 整 (10000 -> 壹万元整); jiao without fen: no 整 (伍角);
  fen without jiao after a yuan part: 零 before the fen (壹元零伍分);
- less than one yuan: no 元 (0.05 -> 伍分); zero: 零元整;
- negative amounts are refused (a document shows the sign separately), floats are refused
  (binary fractions are not money), amounts of 10^16 yuan or more are refused.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
DIGITS = "零壹贰叁肆伍陆柒捌玖"
PLACE_UNITS = ("", "拾", "佰", "仟")
GROUP_UNITS = ("", "万", "亿", "万亿")
LIMIT = Decimal(10) ** 16


def to_decimal(value: Decimal | int | str) -> Decimal:
    """A Decimal from a Decimal, an int or a decimal string; a float is a TypeError."""
    if isinstance(value, float | bool):
        raise TypeError("money must be a Decimal, an int or a decimal string, not a float")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def round_money(value: Decimal | int | str) -> Decimal:
    """The one rounding rule: half-up to 0.01 (1.005 -> 1.01, 1.004 -> 1.00)."""
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _yuan_words(yuan: int) -> str:
    digits = str(yuan)
    words: list[str] = []
    pending_zero = False
    count = len(digits)
    group_has_digit = False
    for index, char in enumerate(digits):
        position = count - 1 - index
        place, group = position % 4, position // 4
        digit = int(char)
        if digit == 0:
            pending_zero = bool(words)
        else:
            if pending_zero:
                words.append("零")
                pending_zero = False
            words.append(DIGITS[digit] + PLACE_UNITS[place])
            group_has_digit = True
        if place == 0:
            if group_has_digit and group:
                words.append(GROUP_UNITS[group])
            group_has_digit = False
    return "".join(words)


def amount_in_words(value: Decimal | int | str) -> str:
    """The amount in Chinese capital numerals, rounded half-up to the fen first:
    12345.67 -> 壹万贰仟叁佰肆拾伍元陆角柒分."""
    amount = round_money(value)
    if amount < 0:
        raise ValueError("a negative amount has no 大写 form")
    if amount >= LIMIT:
        raise ValueError("amounts of 10^16 yuan or more are not supported")
    cents = int(amount * 100)
    yuan, jiao, fen = cents // 100, cents // 10 % 10, cents % 10
    if cents == 0:
        return "零元整"
    text = _yuan_words(yuan) + "元" if yuan else ""
    if jiao == 0 and fen == 0:
        return text + "整"
    if jiao:
        text += DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    if fen:
        text += DIGITS[fen] + "分"
    return text
