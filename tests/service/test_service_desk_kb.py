"""The knowledge base through the service_desk entrypoints (nameko worker_factory), on SQLite
(FTS5) and PostgreSQL (tsvector + GIN): Chinese two-character words found inside sentences,
ranking, highlighted snippets, who sees drafts, versions, feedback, events, hostile queries."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from services.service_desk.contract import EVENT_SCHEMAS
from services.service_desk.domain import kb_text
from services.service_desk.models import KbArticle, outbox
from services.service_desk.service import ServiceDeskService
from services.service_desk.usecases import kb
from shared.context import Context
from shared.db import get_engine
from shared.envelope import utcnow
from shared.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

AGENT = {"user_id": "u-agent", "role": "service_agent"}
REP = {"user_id": "u-rep", "role": "sales_rep"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return migrated_database(request, tmp_path, "service_desk")


@pytest.fixture
def svc(db_url: str) -> Any:
    return service_worker(ServiceDeskService, get_engine(db_url), outbox, EVENT_SCHEMAS,
                          Context("corr-kb"))


def events(db_url: str) -> list[dict]:
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars()
        return [json.loads(r) for r in rows]


def published(svc: Any, title: str, body: str, **extra: Any) -> dict:
    article = svc.kb_create_article({"title": title, "body": body, **extra}, AGENT)
    return svc.kb_publish_article(article["id"], AGENT)


def test_the_search_index_is_the_dialects_own(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        if db_url.startswith("sqlite"):
            for table in ("kb_search", "kb_search_title"):
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"),
                                   {"t": table})
                assert "USING fts5" in sql.scalar_one()
        else:
            index = conn.execute(text("SELECT indexdef FROM pg_indexes "
                                      "WHERE indexname = 'ix_kb_search_document'"))
            assert "USING gin (document)" in index.scalar_one()
            index = conn.execute(text("SELECT indexdef FROM pg_indexes "
                                      "WHERE indexname = 'ix_kb_search_title_document'"))
            assert "USING gin (title_document)" in index.scalar_one()


def test_two_character_chinese_words_are_found_inside_sentences(svc: Any) -> None:
    refund = published(svc, "售后服务说明",
                       "如果商品有质量问题，客户可以在七天内申请退款，款项原路返回。")
    invoice = published(svc, "财务常见问题", "订单完成后我们会在三个工作日内开具增值税发票并邮寄。")
    published(svc, "物流说明", "我们使用顺丰快递发货，一般两天送达。")

    hits = svc.kb_search({"q": "退款"}, REP)["items"]
    assert [h["id"] for h in hits] == [refund["id"]]
    assert "<mark>退款</mark>" in hits[0]["snippet"]
    assert hits[0]["snippet"].startswith("…") or "申请<mark>退款</mark>" in hits[0]["snippet"]

    hits = svc.kb_search({"q": "发票"}, REP)["items"]
    assert [h["id"] for h in hits] == [invoice["id"]]
    assert "增值税<mark>发票</mark>并邮寄" in hits[0]["snippet"]

    hits = svc.kb_search({"q": "发票 订单"}, REP)["items"]  # both words: AND
    assert [h["id"] for h in hits] == [invoice["id"]]
    assert svc.kb_search({"q": "发票 快递"}, REP)["items"] == []


def test_english_words_are_found_case_and_plural_insensitive(svc: Any) -> None:
    article = published(svc, "Refund policy", "Customers may ask for REFUNDS within 7 days.")
    hits = svc.kb_search({"q": "refund"}, REP)["items"]
    assert [h["id"] for h in hits] == [article["id"]]
    assert hits[0]["title_highlight"] == "<mark>Refund</mark> policy"
    assert "<mark>REFUNDS</mark>" in hits[0]["snippet"]


def test_a_title_match_ranks_above_a_body_mention(svc: Any) -> None:
    body_only = published(svc, "常见问题汇总",
                          "很多内容。" * 20 + "退款请联系客服。" + "其他说明。" * 20)
    in_title = published(svc, "退款流程", "退款在审核通过后三个工作日内到账。")
    hits = svc.kb_search({"q": "退款"}, REP)["items"]
    assert [h["id"] for h in hits] == [in_title["id"], body_only["id"]]
    assert hits[0]["score"] > hits[1]["score"]


def test_drafts_are_found_by_agents_only(svc: Any) -> None:
    draft = svc.kb_create_article({"title": "发票抬头修改", "body": "草稿：如何修改发票抬头。"},
                                  AGENT)
    assert svc.kb_search({"q": "发票"}, REP)["items"] == []
    assert [h["id"] for h in svc.kb_search({"q": "发票"}, AGENT)["items"]] == [draft["id"]]
    assert svc.kb_search({"q": "发票", "status": "draft"}, REP)["items"] == []
    with pytest.raises(NotFound):
        svc.kb_get_article(draft["id"], REP)
    assert svc.kb_get_article(draft["id"], AGENT)["status"] == "draft"
    assert svc.kb_list_articles({}, REP)["items"] == []
    assert [a["id"] for a in svc.kb_list_articles({}, AGENT)["items"]] == [draft["id"]]
    assert svc.kb_suggest({"subject": "发票抬头", "text": ""})["items"] == []
    with pytest.raises(Forbidden):
        svc.kb_create_article({"title": "x", "body": "y"}, REP)
    with pytest.raises(Forbidden):
        svc.kb_publish_article(draft["id"], REP)


def test_archived_articles_leave_the_public_search(svc: Any) -> None:
    article = published(svc, "退款说明", "退款说明正文")
    svc.kb_archive_article(article["id"], AGENT)
    assert svc.kb_search({"q": "退款"}, REP)["items"] == []
    assert svc.kb_search({"q": "退款", "status": "archived"}, AGENT)["items"][0]["id"] == \
        article["id"]


def test_edits_of_a_published_article_are_versions(svc: Any, db_url: str) -> None:
    article = svc.kb_create_article({"title": "退款流程", "body": "第一稿"}, AGENT)
    svc.kb_update_article(article["id"], {"body": "第二稿"}, AGENT)  # a draft edit: no version
    assert svc.kb_list_versions(article["id"], AGENT)["items"] == []
    first = svc.kb_publish_article(article["id"], AGENT)
    assert first["version"] == 1
    second = svc.kb_update_article(article["id"], {"body": "第三稿，说明发票", "tags": ["财务"]},
                                   AGENT)
    assert second["version"] == 2 and second["tags"] == ["财务"]
    versions = svc.kb_list_versions(article["id"], REP)["items"]
    assert [(v["version"], v["body"]) for v in versions] == [(2, "第三稿，说明发票"), (1, "第二稿")]
    assert svc.kb_get_version(article["id"], 1, REP)["body"] == "第二稿"
    with pytest.raises(NotFound):
        svc.kb_get_version(article["id"], 3, REP)
    # the index follows the edit
    assert [h["id"] for h in svc.kb_search({"q": "发票"}, REP)["items"]] == [article["id"]]
    assert [(e["event_type"], e["data"]["version"]) for e in events(db_url)] == [
        ("kb_article_published", 1), ("kb_article_updated", 2)]
    assert events(db_url)[0]["data"]["article_id"] == article["id"]


def test_feedback_counts_on_the_article(svc: Any) -> None:
    article = published(svc, "发票", "发票说明")
    svc.kb_give_feedback(article["id"], {"helpful": True}, REP)
    result = svc.kb_give_feedback(article["id"], {"helpful": False, "comment": "不清楚"}, REP)
    assert result == {"article_id": article["id"], "helpful_yes": 1, "helpful_no": 1,
                      "feedback_count": 2}
    assert svc.kb_get_article(article["id"], REP)["helpful_yes"] == 1
    draft = svc.kb_create_article({"title": "d", "body": "d"}, AGENT)
    with pytest.raises(PreconditionFailed):
        svc.kb_give_feedback(draft["id"], {"helpful": True}, AGENT)
    with pytest.raises(ValidationFailed) as err:
        svc.kb_give_feedback(article["id"], {"comment": "x"}, REP)
    assert "helpful" in err.value.errors


def test_suggestions_rank_the_articles_matching_the_ticket(svc: Any) -> None:
    refund = published(svc, "如何申请退款", "在订单页面点击申请退款，审核后原路退回。")
    invoice = published(svc, "发票开具", "订单完成后可申请开具电子发票。")
    published(svc, "账号安全", "定期修改密码。")
    items = svc.kb_suggest({"subject": "订单退款问题", "text": "我上周买的东西想退款"})["items"]
    assert [i["id"] for i in items] == [refund["id"], invoice["id"]]


def test_create_article_from_a_ticket_is_a_draft(svc: Any) -> None:
    article = svc.kb_create_article_from("打印机卡纸", "关掉电源后取出纸张。", "ticket-42", AGENT)
    assert article["status"] == "draft" and article["source_ticket_id"] == "ticket-42"
    assert article["body_format"] == "text"


def test_categories_and_filters(svc: Any) -> None:
    finance = svc.kb_create_category({"name": "财务"}, AGENT)
    with pytest.raises(ValidationFailed) as err:
        svc.kb_create_article({"title": "x", "body": "y", "category_id": "nope"}, AGENT)
    assert "category_id" in err.value.errors
    a = published(svc, "发票", "发票说明", category_id=finance["id"])
    published(svc, "发票二", "发票说明")
    assert [c["name"] for c in svc.kb_list_categories()["items"]] == ["财务"]
    hits = svc.kb_search({"q": "发票", "category_id": finance["id"]}, REP)["items"]
    assert [h["id"] for h in hits] == [a["id"]]
    page = svc.kb_list_articles({"category_id": finance["id"]}, REP)
    assert [x["id"] for x in page["items"]] == [a["id"]] and page["next_cursor"] is None


@pytest.mark.parametrize("hostile", [
    '"退款" OR "x', "退款 NEAR(发票 订单, 2)", "退款* AND NOT 发票", "title:退款 ^发票",
    "'); DROP TABLE kb_articles; --", "退款 & !发票 | (x <-> y)", '退款"', "NEAR", "退款 -",
])
def test_hostile_queries_are_plain_words(svc: Any, hostile: str) -> None:
    article = published(svc, "退款 NEAR OR AND NOT title x y drop table kb articles",
                        "退款 发票 订单")
    result = svc.kb_search({"q": hostile}, REP)
    assert all(t.isalnum() for t in result["terms"])
    assert [h["id"] for h in result["items"]] in ([], [article["id"]])
    assert svc.kb_get_article(article["id"], REP)["id"] == article["id"]  # table still there


def test_a_query_without_words_names_the_field(svc: Any) -> None:
    with pytest.raises(ValidationFailed) as err:
        svc.kb_search({"q": "，。!?"}, REP)
    assert "q" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        svc.kb_search({}, REP)
    assert "q" in err.value.errors


# -- kb search speed-up (s-kb-fast): the search index keeps status and category in step, and
# equal scores are ordered by article id whatever order the index hands them back in ----


def test_a_category_change_moves_the_article_in_search(svc: Any) -> None:
    finance = svc.kb_create_category({"name": "财务"}, AGENT)
    logistics = svc.kb_create_category({"name": "物流"}, AGENT)
    a = published(svc, "发票", "发票说明", category_id=finance["id"])
    svc.kb_update_article(a["id"], {"category_id": logistics["id"]}, AGENT)
    assert svc.kb_search({"q": "发票", "category_id": finance["id"]}, REP)["items"] == []
    hits = svc.kb_search({"q": "发票", "category_id": logistics["id"]}, REP)["items"]
    assert [h["id"] for h in hits] == [a["id"]]


def test_equal_scores_are_ordered_by_id_across_the_page_end(svc: Any) -> None:
    ids = sorted(published(svc, "退款说明", "退款在三个工作日内到账。")["id"] for _ in range(7))
    other = published(svc, "发票", "退款退款退款退款")  # a different score
    page = svc.kb_search({"q": "退款", "limit": 3}, REP)["items"]
    everything = svc.kb_search({"q": "退款", "limit": 20}, REP)["items"]
    assert len(everything) == 8 and other["id"] in [h["id"] for h in everything]
    tied = [h["id"] for h in everything if h["id"] != other["id"]]
    assert tied == ids  # the identical articles: by id
    assert [h["id"] for h in page] == [h["id"] for h in everything][:3]
    assert len({h["score"] for h in everything if h["id"] in ids}) == 1


def bulk_published(db_url: str, articles: list[tuple[str, str]]) -> list[str]:
    """Many published articles at once, written as the bench does (kb_articles and the search
    index straight in SQL, the tokens from the service's tokeniser), in order: the last is the
    newest in the index. Their ids."""
    now = utcnow()
    rows = [{"id": str(uuid.uuid4()), "title": title, "body": body, "body_format": "text",
             "category_id": None, "tags": [], "language": "zh", "status": "published",
             "version": 1, "author_id": "bulk", "source_ticket_id": None, "helpful_yes": 0,
             "helpful_no": 0, "created_at": now, "updated_at": now, "published_at": now}
            for title, body in articles]
    index = [{"id": r["id"], "title": kb_text.token_text(r["title"]),
              "body": kb_text.token_text(r["body"])} for r in rows]
    with get_engine(db_url).begin() as conn:
        conn.execute(insert(KbArticle.__table__), rows)
        if db_url.startswith("sqlite"):
            before = conn.execute(text("SELECT rowid FROM kb_search ORDER BY rowid DESC "
                                       "LIMIT 1")).scalar() or 0
            conn.execute(text("INSERT INTO kb_search (article_id, title, body) "
                              "VALUES (:id, :title, :body)"), index)
            conn.execute(text("INSERT INTO kb_search_title (rowid, title) SELECT rowid, title "
                              "FROM kb_search WHERE rowid > :before"), {"before": before})
        else:
            conn.execute(text("INSERT INTO kb_search (article_id, status, document) "
                              "VALUES (:id, 'published', "
                              "setweight(to_tsvector('simple', :title), 'A') || "
                              "setweight(to_tsvector('simple', :body), 'B'))"), index)
    return [r["id"] for r in rows]


# More body matches than the recent scan and every window (kb_text.TITLE_WINDOW, BODY_WINDOW,
# kb.RECENT_SCAN): the ranking must not depend on ranking every match.
MANY = kb.RECENT_SCAN + kb_text.BODY_WINDOW + 200


def test_the_title_match_is_first_among_thousands_of_body_matches(svc: Any,
                                                                  db_url: str) -> None:
    in_title = published(svc, "退款流程", "按页面提示操作。")  # the oldest in the index
    hidden = svc.kb_create_article({"title": "退款草稿", "body": "按页面提示操作。"}, AGENT)
    bulk_published(db_url, [("常见问题", "退款退款退款请联系客服。")] * MANY)
    hits = svc.kb_search({"q": "退款", "limit": 5}, REP)["items"]
    assert len(hits) == 5 and hits[0]["id"] == in_title["id"]
    assert hidden["id"] not in [h["id"] for h in hits]
    assert hits[0]["score"] > hits[1]["score"]
    assert [h["id"] for h in svc.kb_search({"q": "退款", "limit": 2}, AGENT)["items"]] == \
        sorted([in_title["id"], hidden["id"]])  # two title matches of equal score: by id
    assert hits == svc.kb_search({"q": "退款", "limit": 5}, REP)["items"]  # deterministic


def test_a_multi_word_query_returns_only_articles_with_every_word(svc: Any,
                                                                  db_url: str) -> None:
    both = published(svc, "退货说明", "退货申请提交后等待审核。")
    body_both = bulk_published(db_url, [("说明", "退货需要审核。")] * 3)
    bulk_published(db_url, [("退货须知", "退货请保留包装。"), ("审核规则", "审核在一天内完成。")]
                   * (MANY // 2))
    hits = svc.kb_search({"q": "退货 审核", "limit": 10}, REP)["items"]
    assert sorted(h["id"] for h in hits) == sorted([both["id"], *body_both])
    same = [h["id"] for h in hits if h["id"] in body_both]  # identical articles: by id
    assert same == sorted(body_both)
    assert all("<mark>" in h["snippet"] for h in hits)


def test_suggestions_put_every_word_above_some_and_the_title_above_the_body(
        svc: Any, db_url: str) -> None:
    all_in_title = published(svc, "退款发票", "说明。")
    all_in_body = published(svc, "常见问题", "退款后发票会作废。")
    one_in_title = published(svc, "发票抬头", "抬头修改说明。")
    one_in_body = published(svc, "售后", "退款原路返回。")
    bulk_published(db_url, [("其他", "其他说明。")] * 50)
    items = svc.kb_suggest({"subject": "退款 发票", "text": "", "limit": 10})["items"]
    assert [i["id"] for i in items] == [all_in_title["id"], all_in_body["id"],
                                        one_in_title["id"], one_in_body["id"]]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4


def test_a_reindexed_article_is_the_newest_in_the_search_window(svc: Any, db_url: str) -> None:
    old = published(svc, "常见问题", "物流信息。")
    bulk_published(db_url, [("其他", "物流查询。")] * MANY)
    assert old["id"] not in [h["id"] for h in svc.kb_search({"q": "物流", "limit": 100},
                                                             REP)["items"]]
    svc.kb_update_article(old["id"], {"body": "物流物流。"}, AGENT)  # twice: the best score
    hits = svc.kb_search({"q": "物流", "limit": 100}, REP)["items"]
    assert len(hits) == 100 and hits[0]["id"] == old["id"]


def test_the_article_list_page_size_is_the_kernels(svc: Any) -> None:
    with pytest.raises(ValidationFailed) as err:
        svc.kb_list_articles({}, AGENT, None, 201)
    assert "limit" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        svc.kb_list_articles({}, AGENT, None, 0)
    assert "limit" in err.value.errors
