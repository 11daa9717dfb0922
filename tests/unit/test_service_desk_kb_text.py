"""Knowledge-base tokenisation, query building and snippets (services/service_desk/domain/
kb_text.py): Chinese two-character words inside longer text, mixed Chinese and English,
punctuation, full-width characters, and queries that try to smuggle FTS syntax."""

from __future__ import annotations

import pytest

from services.service_desk.domain import kb_text


def test_chinese_two_character_words_are_tokens_inside_a_sentence() -> None:
    tokens = kb_text.tokens("我想申请退款并开具发票")
    assert "退款" in tokens and "发票" in tokens
    assert tokens == ["我想", "想申", "申请", "请退", "退款", "款并", "并开", "开具", "具发",
                      "发票"]


def test_a_lone_chinese_character_is_its_own_token() -> None:
    assert kb_text.tokens("钱") == ["钱"]
    assert kb_text.tokens("A 钱 B") == ["a", "钱", "b"]


def test_mixed_chinese_and_english_split_at_the_script_boundary() -> None:
    assert kb_text.tokens("退款Refunds处理processing") == ["退款", "refund", "处理", "process"]


def test_punctuation_breaks_runs_and_never_becomes_a_token() -> None:
    assert kb_text.tokens("退款，发票。“订单”!? (VAT) - e-mail") == [
        "退款", "发票", "订单", "vat", "e", "mail"]


def test_full_width_letters_digits_and_punctuation_are_normalised() -> None:
    assert kb_text.tokens("ＲＥＦＵＮＤ　１２３，退款") == ["refund", "123", "退款"]


def test_stemming_is_light_and_keeps_short_words() -> None:
    assert kb_text.tokens("invoices refunded processing is bus") == [
        "invoice", "refund", "process", "is", "bus"]
    assert kb_text.tokens("invoice") == ["invoice"]


def test_query_terms_are_distinct_and_ordered() -> None:
    assert kb_text.query_terms("退款 退款 refund REFUNDS") == ["退款", "refund"]
    assert kb_text.query_terms("，。!?") == []


@pytest.mark.parametrize("hostile", [
    '"退款" OR "x', "退款 NEAR(发票 订单, 2)", "退款* AND NOT 发票", "title:退款 ^发票",
    "'); DROP TABLE kb_articles; --", "退款 & !发票 | (x <-> y)", 'a"b',
])
def test_hostile_queries_become_plain_quoted_terms(hostile: str) -> None:
    terms = kb_text.query_terms(hostile)
    assert terms and all(t.isalnum() for t in terms)
    match = kb_text.fts5_match(terms)
    assert match == " AND ".join(f'"{t}"' for t in terms)
    assert kb_text.tsquery(terms) == " & ".join(f"'{t}'" for t in terms)


def test_snippet_marks_the_match_in_the_original_text_and_escapes_html() -> None:
    text = "<b>说明</b>：客户可以申请退款，全角ＲＥＦＵＮＤＳ也行。"
    out = kb_text.snippet(text, ["退款", "refund"])
    assert out == ("&lt;b&gt;说明&lt;/b&gt;：客户可以申请<mark>退款</mark>，全角"
                   "<mark>ＲＥＦＵＮＤＳ</mark>也行。")


def test_snippet_is_a_window_around_the_first_match() -> None:
    text = "前言" * 100 + "这里说明发票的开具" + "结尾" * 100
    out = kb_text.snippet(text, ["发票"], width=40)
    assert out.startswith("…") and out.endswith("…")
    assert "<mark>发票</mark>" in out
    assert len(out.replace("<mark>", "").replace("</mark>", "")) == 42


def test_snippet_without_a_match_is_the_start_of_the_text() -> None:
    assert kb_text.snippet("没有匹配的内容", ["发票"]) == "没有匹配的内容"


def test_search_tiers_put_the_title_first_and_every_word_before_some() -> None:
    terms = ["退款", "发票"]
    search = kb_text.tiers(terms)
    assert [(t.match, t.excluded) for t in search] == [
        (kb_text.Condition(True, True), ()),
        (kb_text.Condition(False, True), (kb_text.Condition(True, True),))]
    assert [t.window for t in search] == [kb_text.TITLE_WINDOW, kb_text.BODY_WINDOW]
    suggest = kb_text.tiers(terms, any_term=True)
    assert [t.match for t in suggest] == [kb_text.Condition(True, True),
                                         kb_text.Condition(False, True),
                                         kb_text.Condition(True, False),
                                         kb_text.Condition(False, False)]
    assert len(kb_text.tiers(["退款"], any_term=True)) == 2  # one word: all is any
    assert kb_text.fts5_tier(terms, suggest[3]) == (
        '(("退款" OR "发票")) NOT ({title}: ("退款" OR "发票")) NOT (("退款" AND "发票"))')
    assert kb_text.fts5_tier(terms, search[0]) == '({title}: ("退款" AND "发票"))'


def test_tier_scores_keep_the_tiers_apart_and_the_order_inside() -> None:
    assert kb_text.tier_score(0, 2, 0.0) > kb_text.tier_score(1, 2, 1e9)
    assert kb_text.tier_score(1, 2, 3.0) > kb_text.tier_score(1, 2, 2.0) > \
        kb_text.tier_score(1, 2, 0.0) == 0.0
