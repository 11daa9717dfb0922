"""The search box over leads: a query split into terms (CJK-safe)."""

from __future__ import annotations

from shared.kernel.normalise import fold

MAX_SEARCH_TERMS = 5
MAX_SEARCH_TERM_LENGTH = 100


def search_terms(q: str) -> list[str]:
    """Split a search box query into at most 5 distinct terms of at most 100 characters.

    NFKC + casefold, split on any whitespace (including the ideographic space U+3000). Chinese
    has no spaces, so "腾讯科技" stays one term and is matched as a substring. The caller must
    still escape LIKE wildcards (% and _) in each term.
    """
    terms: list[str] = []
    for word in fold(q).split():
        term = word[:MAX_SEARCH_TERM_LENGTH]
        if term not in terms:
            terms.append(term)
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return terms
