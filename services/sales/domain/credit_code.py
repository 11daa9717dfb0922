"""The unified social credit code (统一社会信用代码) of GB 32100-2015.

Eighteen characters: registration authority (1), organisation category (1), administrative
division (6), organisation code (9, itself ending in a GB 11714 check character) and a check
character over the first seventeen. The alphabet is 0-9 and the capital letters without
I, O, S, V and Z (they look like digits).
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUES = {char: index for index, char in enumerate(ALPHABET)}
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH = 18
# Full-width digits and letters are common in pasted Chinese text.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


class CreditCodeError(ValueError):
    """The code is malformed; the message says what is wrong (for the `credit_code` field)."""


def normalise(raw: str) -> str:
    """Upper case, full-width to ASCII, spaces and hyphens removed (as people write it)."""
    text = str(raw).translate(_FULL_WIDTH).upper()
    return "".join(char for char in text if char not in " \t\r\n-\u3000")


def check_character(first_seventeen: str) -> str:
    """The eighteenth character for the first seventeen (already validated)."""
    pairs = zip(first_seventeen, WEIGHTS, strict=True)
    total = sum(VALUES[char] * weight for char, weight in pairs)
    return ALPHABET[(31 - total % 31) % 31]


def validate(raw: str) -> str:
    """The normalised code, or `CreditCodeError` naming the problem."""
    code = normalise(raw)
    if len(code) != LENGTH:
        raise CreditCodeError(f"must be {LENGTH} characters, got {len(code)}")
    for position, char in enumerate(code, 1):
        if char not in VALUES:
            raise CreditCodeError(
                f"character {position} '{char}' is not allowed "
                "(digits and capital letters except I, O, S, V, Z)"
            )
    expected = check_character(code[:17])
    if code[17] != expected:
        raise CreditCodeError(
            f"check digit is wrong: the last character should be '{expected}', not '{code[17]}'"
        )
    return code


def is_valid(raw: str) -> bool:
    try:
        validate(raw)
    except CreditCodeError:
        return False
    return True
