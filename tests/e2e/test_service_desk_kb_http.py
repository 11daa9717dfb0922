"""The knowledge base over HTTP with the whole system running: an agent (liuyang) writes and
publishes, a sales rep (zhangwei) reads and searches published articles only and gives
feedback, suggestions for a ticket being written, bad input answers 422 naming the field."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

AGENT, REP = "liuyang", "zhangwei"


def test_articles_search_and_visibility_over_http(system: System) -> None:
    mark = uuid.uuid4().hex[:8]  # a word of this test only: the system is shared
    r = system.post("/kb/categories", user=AGENT, json={"name": f"财务{mark}"})
    assert r.status_code == 201, r.text
    category = r.json()
    r = system.post("/kb/articles", user=AGENT, json={
        "title": f"如何申请退款 {mark}",
        "body": f"客户在订单页面申请退款，三个工作日内到账。{mark}",
        "category_id": category["id"], "tags": ["售后"]})
    assert r.status_code == 201, r.text
    article = r.json()
    assert article["status"] == "draft" and article["version"] == 0

    # a draft: the agent finds it, the rep does not
    assert [h["id"] for h in system.get("/kb/search", user=AGENT,
                                        params={"q": f"退款 {mark}"}).json()["items"]] == \
        [article["id"]]
    r = system.get("/kb/search", user=REP, params={"q": f"退款 {mark}"})
    assert r.status_code == 200 and r.json()["items"] == []
    r = system.get(f"/kb/articles/{article['id']}", user=REP)
    assert r.status_code == 404, r.text
    r = system.post("/kb/articles", user=REP, json={"title": "x", "body": "y"})
    assert r.status_code == 403, r.text
    r = system.post(f"/kb/articles/{article['id']}/publish", user=REP)
    assert r.status_code == 403, r.text

    r = system.post(f"/kb/articles/{article['id']}/publish", user=AGENT)
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    r = system.patch(f"/kb/articles/{article['id']}", user=AGENT,
                     json={"body": f"退款审核通过后开具发票。{mark}"})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text

    r = system.get("/kb/search", user=REP, params={"q": f"发票 {mark}"})
    assert r.status_code == 200, r.text
    hit, = r.json()["items"]
    assert hit["id"] == article["id"] and "<mark>发票</mark>" in hit["snippet"]
    r = system.get(f"/kb/articles/{article['id']}/versions", user=REP)
    assert [v["version"] for v in r.json()["items"]] == [2, 1]
    r = system.get(f"/kb/articles/{article['id']}/versions/1", user=REP)
    assert r.status_code == 200 and "三个工作日" in r.json()["body"]

    r = system.post("/kb/suggestions", user=REP,
                    json={"subject": f"退款问题 {mark}", "text": "想申请退款"})
    assert r.status_code == 200 and r.json()["items"][0]["id"] == article["id"], r.text

    r = system.post(f"/kb/articles/{article['id']}/feedback", user=REP,
                    json={"helpful": True, "comment": "有用"})
    assert r.status_code == 201 and r.json()["helpful_yes"] == 1, r.text

    r = system.get("/kb/articles", user=REP, params={"category_id": category["id"]})
    assert r.status_code == 200 and [a["id"] for a in r.json()["items"]] == [article["id"]]


def test_bad_input_names_the_field(system: System) -> None:
    r = system.post("/kb/articles", user=AGENT, json={"title": "无正文"})
    assert r.status_code == 422 and "body" in r.text, r.text
    r = system.get("/kb/search", user=REP, params={"q": "，。"})
    assert r.status_code == 422 and "q" in r.json()["errors"], r.text
    r = system.post("/kb/articles/nope/feedback", user=REP, json={"helpful": "maybe"})
    assert r.status_code == 422 and "helpful" in r.text, r.text
    r = system.get("/kb/search", user=REP, params={"q": '"退款" OR NEAR(发票 x) *'})
    assert r.status_code == 200, r.text
