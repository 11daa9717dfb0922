"""Knowledge-base text: the tokens articles are indexed by and queries are matched with, and
the highlighted snippet of a match. Pure Python, the same on SQLite and PostgreSQL.

Chinese has no spaces, so a Chinese run is indexed by its overlapping character bigrams
(退款申请 -> 退款 款申 申请) and a lone character by itself: any two-character word inside a
longer sentence is found, with no dictionary to keep current. Latin words and numbers are
lower-cased, and a plural or -ing/-ed ending is cut (a light stemmer, so refunds finds refund).
Text is NFKC-normalised first, so full-width letters, digits and punctuation (ＡＢＣ，１２３)
are the ordinary ones. Every token is made of letters and digits only: a query cannot carry
FTS syntax (quotes, operators, NEAR, *) into the database.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import NamedTuple

_CJK = (r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
        r"\U00020000-\U0002ffff")
_RUN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)", re.UNICODE)
_SUFFIXES = ("ing", "ed", "s")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """The index tokens of `text`, in order (bigrams of Chinese runs, stemmed Latin words)."""
    out: list[str] = []
    for cjk, word in _RUN.findall(normalise(text)):
        if cjk:
            if len(cjk) == 1:
                out.append(cjk)
            else:
                out.extend(cjk[i:i + 2] for i in range(len(cjk) - 1))
        else:
            out.append(stem(word.lower()))
    return out


def token_text(text: str) -> str:
    """The tokens as one space-separated string: what the full-text index stores."""
    return " ".join(tokens(text))


def query_terms(query: str) -> list[str]:
    """The distinct tokens of a query, in order (empty: nothing to search)."""
    seen: dict[str, None] = {}
    for token in tokens(query):
        seen.setdefault(token, None)
    return list(seen)


def fts5_match(terms: list[str], any_term: bool = False) -> str:
    """An FTS5 MATCH expression of `terms`, each a quoted string (tokens hold no quotes)."""
    return (" OR " if any_term else " AND ").join(f'"{t}"' for t in terms)


def tsquery(terms: list[str], any_term: bool = False) -> str:
    """A PostgreSQL to_tsquery('simple', ...) text of `terms`, each a quoted lexeme."""
    return (" | " if any_term else " & ").join("'" + t.replace("'", "''") + "'" for t in terms)


# -- ranking tiers ---------------------------------------------------------------------------
#
# A search ranks in tiers, best first; inside a tier by the database's own score (bm25 on
# SQLite, ts_rank on PostgreSQL), ties by article id. Each tier is a full-text match of its
# own (the index's AND / OR and a title-column filter) minus the earlier tiers, and each reads
# a bounded window of its matches, the most recently indexed first (services/service_desk/
# README.md, "How search works"): a title match is always above a body-only match, and with
# `any_term` an article holding every query word above one that holds only some.

TITLE_WINDOW = 200  # the newest title matches a title tier ranks exactly (titles match few)
BODY_WINDOW = 300  # the newest matches an article-wide tier ranks exactly


class Condition(NamedTuple):
    """The terms found in the title only (`title`) or anywhere in the article, all or any."""

    title: bool
    every: bool


class Tier(NamedTuple):
    match: Condition
    excluded: tuple[Condition, ...]
    window: int


def tiers(terms: list[str], any_term: bool = False) -> list[Tier]:
    title_all, article_all = Condition(True, True), Condition(False, True)
    out = [Tier(title_all, (), TITLE_WINDOW), Tier(article_all, (title_all,), BODY_WINDOW)]
    if any_term and len(terms) > 1:
        title_any, article_any = Condition(True, False), Condition(False, False)
        out += [Tier(title_any, (article_all,), TITLE_WINDOW),
                Tier(article_any, (title_any, article_all), BODY_WINDOW)]
    return out


def fts5_tier(terms: list[str], tier: Tier) -> str:
    """The FTS5 MATCH expression of a tier: `(match) NOT (excluded) ...`."""
    def condition(c: Condition) -> str:
        expression = fts5_match(terms, not c.every)
        return f"{{title}}: ({expression})" if c.title else f"({expression})"
    return " NOT ".join(f"({condition(c)})" for c in (tier.match, *tier.excluded))


def tier_score(tier_index: int, tier_count: int, score: float) -> float:
    """One number, higher is better, that keeps the tiers apart: the tier's rank counted from
    the last, plus the in-tier score squashed into [0, 1)."""
    score = max(score, 0.0)
    return (tier_count - 1 - tier_index) + score / (1.0 + score)


def _spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where the query terms occur in `text` (already normalised, lower-cased), merged."""
    found: list[tuple[int, int]] = []
    for term in terms:
        if not term:
            continue
        pattern = re.escape(term) if _RUN.fullmatch(term) and re.match(rf"[{_CJK}]", term) \
            else rf"(?<![^\W_{_CJK}]){re.escape(term)}[^\W_{_CJK}]*"
        found.extend(m.span() for m in re.finditer(pattern, text))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    """`text` NFKC-normalised and lower-cased, and for each of its characters the index of the
    original character it came from (so highlights are cut from the original text)."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for n in unicodedata.normalize("NFKC", ch).lower():
            chars.append(n)
            origin.append(i)
    return "".join(chars), origin


def snippet(text: str, terms: list[str], width: int = 80,
            open_tag: str = "<mark>", close_tag: str = "</mark>") -> str:
    """About `width` characters of the original `text` around its first match, HTML-escaped,
    each match in `open_tag`/`close_tag`; the start of the text when nothing matches."""
    text = text or ""
    folded, origin = _normalised_with_offsets(text)
    spans = [(origin[s], origin[e - 1] + 1) for s, e in _spans(folded, terms)]
    if not spans:
        return html.escape(text[:width]) + ("…" if len(text) > width else "")
    start = max(0, spans[0][0] - width // 4)
    end = min(len(text), start + width)
    parts = ["…" if start else ""]
    cursor = start
    for s, e in spans:
        if s >= end or e <= start or s < cursor:
            continue
        e = min(e, end)
        parts.append(html.escape(text[cursor:s]))
        parts.append(open_tag + html.escape(text[s:e]) + close_tag)
        cursor = e
    parts.append(html.escape(text[cursor:end]))
    parts.append("…" if end < len(text) else "")
    return "".join(parts)
