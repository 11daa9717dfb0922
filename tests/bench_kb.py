"""Knowledge-base search benchmark: search over N published Chinese articles on SQLite (FTS5)
and PostgreSQL (tsvector + GIN), through the service's own search use case (tokenise, match,
rank, load, highlight). Prints JSON p50/p95 per database and per query word; timings are
reported, never asserted.

    python -m tests.bench_kb                 # BENCH_KB_ARTICLES=100000 by default
    BENCH_KB_ARTICLES=20000 python -m tests.bench_kb

Articles are random sentences of a fixed vocabulary of customer-service words (so a query word
matches from a fraction of a percent up to a few percent of the articles), written with bulk
inserts straight into the migrated tables and the search index (the tokens come from the same
tokeniser the service uses). PostgreSQL: a fresh database on CRM_TEST_PG_URL's server, dropped
at the end.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from services.service_desk.domain import kb_text  # noqa: E402
from services.service_desk.models import KbArticle  # noqa: E402
from services.service_desk.usecases import kb  # noqa: E402
from shared.db import DatabaseAccess, get_engine  # noqa: E402
from shared.migrations import upgrade  # noqa: E402

PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ARTICLES = int(os.environ.get("BENCH_KB_ARTICLES", "100000"))
QUERIES = int(os.environ.get("BENCH_KB_QUERIES", "200"))
BATCH = 5000

COMMON = ["客户", "订单", "服务", "问题", "处理", "系统", "账号", "时间", "联系", "说明"]
TOPICS = ["退款", "发票", "物流", "快递", "退货", "换货", "支付", "优惠券", "会员", "积分",
          "密码", "登录", "发货", "售后", "保修", "合同", "报价", "审批", "回款", "投诉",
          "地址", "电话", "邮箱", "短信", "验证码", "充值", "提现", "余额", "账单", "对账",
          "税号", "抬头", "增值税", "电子发票", "纸质发票", "开票", "红冲", "作废", "延迟", "取消"]
FILLER = ["我们", "可以", "需要", "请", "在", "页面", "点击", "按钮", "完成", "确认", "提交",
          "申请", "审核", "通过", "之后", "工作日", "内", "到账", "如果", "没有", "收到", "再次"]
QUERY_WORDS = ["退款", "发票", "物流", "退货 审核", "电子发票 开票", "会员 积分", "refund",
               "验证码", "回款 合同", "投诉 电话"]


def progress(message: str) -> None:
    print(f"[bench-kb] {message}", file=sys.stderr, flush=True)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
    words.insert(rng.randrange(len(words)), rng.choice(TOPICS))
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(COMMON))
    return "".join(words) + "。"


def _article(rng: random.Random, now: datetime) -> dict[str, Any]:
    body = "".join(_sentence(rng) for _ in range(rng.randint(3, 8)))
    if rng.random() < 0.02:
        body += " Refunds are processed within 3 working days."
    title = rng.choice(TOPICS) + rng.choice(["说明", "常见问题", "处理流程", "注意事项"])
    return {"id": str(uuid.UUID(int=rng.getrandbits(128))), "title": title, "body": body,
            "body_format": "text", "category_id": None, "tags": [], "language": "zh",
            "status": "published", "version": 1, "author_id": "bench", "source_ticket_id": None,
            "helpful_yes": 0, "helpful_no": 0, "created_at": now, "updated_at": now,
            "published_at": now}


def load_articles(url: str, count: int) -> float:
    engine = get_engine(url)
    sqlite = url.startswith("sqlite")
    rng, now = random.Random(17), datetime.now(UTC)
    started = time.perf_counter()
    for offset in range(0, count, BATCH):
        rows = [_article(rng, now) for _ in range(min(BATCH, count - offset))]
        index = [{"id": r["id"], "status": r["status"], "category_id": r["category_id"],
                  "title": kb_text.token_text(r["title"]),
                  "body": kb_text.token_text(r["body"])} for r in rows]
        with engine.begin() as conn:
            conn.execute(insert(KbArticle.__table__), rows)
            if sqlite:
                before = conn.execute(text("SELECT rowid FROM kb_search ORDER BY rowid DESC "
                                           "LIMIT 1")).scalar() or 0
                conn.execute(text("INSERT INTO kb_search (article_id, title, body) "
                                  "VALUES (:id, :title, :body)"), index)
                conn.execute(text("INSERT INTO kb_search_title (rowid, title) SELECT rowid, "
                                  "title FROM kb_search WHERE rowid > :before"),
                             {"before": before})
            else:
                conn.execute(text(
                    "INSERT INTO kb_search (article_id, status, category_id, document) "
                    "VALUES (:id, :status, :category_id, "
                    "setweight(to_tsvector('simple', :title), 'A') || "
                    "setweight(to_tsvector('simple', :body), 'B'))"), index)
        progress(f"{'sqlite' if sqlite else 'postgresql'}: {offset + len(rows)}/{count} "
                 "articles")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        if sqlite:
            conn.execute(text("INSERT INTO kb_search (kb_search) VALUES ('optimize')"))
            conn.execute(text("INSERT INTO kb_search_title (kb_search_title) "
                              "VALUES ('optimize')"))
    return time.perf_counter() - started


class _Svc:
    def __init__(self, url: str) -> None:
        self.db = DatabaseAccess(sessionmaker(get_engine(url), expire_on_commit=False))


def measure(url: str) -> dict[str, Any]:
    svc = _Svc(url)
    reader = {"role": "sales_rep"}
    for q in QUERY_WORDS:  # warm the caches
        kb.search(svc, q, reader, limit=20)
    timings: list[float] = []
    hits: dict[str, int] = {}
    per_word: dict[str, list[float]] = {q: [] for q in QUERY_WORDS}
    for i in range(QUERIES):
        q = QUERY_WORDS[i % len(QUERY_WORDS)]
        started = time.perf_counter()
        result = kb.search(svc, q, reader, limit=20)
        timings.append((time.perf_counter() - started) * 1000)
        per_word[q].append(timings[-1])
        hits[q] = len(result["items"])
    return {"queries": QUERIES, **_percentiles(timings), "hits_per_query": hits,
            "per_query_ms": {q: _percentiles(t) for q, t in per_word.items() if t}}


def _percentiles(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    return {"p50_ms": round(statistics.median(timings), 2),
            "p95_ms": round(timings[max(0, int(len(timings) * 0.95) - 1)], 2),
            "max_ms": round(timings[-1], 2)}


def run(count: int = ARTICLES) -> dict[str, Any]:
    results: dict[str, Any] = {"articles": count}
    with tempfile.TemporaryDirectory(prefix="crm-bench-kb-") as tmp:
        url = f"sqlite:///{tmp}/service_desk.db"
        upgrade("service_desk", url)
        seconds = load_articles(url, count)
        results["sqlite"] = {"load_seconds": round(seconds, 1), **measure(url)}
        progress(f"sqlite: {results['sqlite']}")
    database = f"crm_bench_kb_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    url = f"{base}/{database}"
    try:
        upgrade("service_desk", url)
        seconds = load_articles(url, count)
        results["postgresql"] = {"load_seconds": round(seconds, 1), **measure(url)}
        progress(f"postgresql: {results['postgresql']}")
    finally:
        get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(database)))
    return results


def main() -> None:
    print(json.dumps(run(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
