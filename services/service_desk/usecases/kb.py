"""Knowledge-base use cases: categories, articles with versions, feedback, search and the
suggestions shown while a ticket is written. `svc` is the nameko service (db, events, context).

Who may see what is decided here from `principal` (the gateway passes the caller's role):
drafts and archived articles are for agents and above, published ones for every signed-in user.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.service_desk.domain import kb_text
from services.service_desk.models import KbArticle, KbArticleVersion, KbCategory, KbFeedback
from shared.envelope import utcnow
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from shared.paging import page_after, page_of

WRITERS = ("admin", "manager", "service_agent")
EDITABLE = ("title", "body", "body_format", "category_id", "tags", "language")


def is_writer(principal: dict | None) -> bool:
    return principal is None or principal.get("role") in WRITERS  # None: a trusted internal call


def _require_writer(principal: dict | None) -> None:
    if not is_writer(principal):
        raise Forbidden("only agents, managers and admins may change the knowledge base")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def category_dict(row: KbCategory) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "created_at": _iso(row.created_at)}


def article_dict(row: KbArticle) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "body": row.body, "body_format": row.body_format,
            "category_id": row.category_id, "tags": list(row.tags or []),
            "language": row.language, "status": row.status, "version": row.version,
            "author_id": row.author_id, "source_ticket_id": row.source_ticket_id,
            "helpful_yes": row.helpful_yes, "helpful_no": row.helpful_no,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
            "published_at": _iso(row.published_at)}


def version_dict(row: KbArticleVersion) -> dict[str, Any]:
    return {"article_id": row.article_id, "version": row.version, "title": row.title,
            "body": row.body, "body_format": row.body_format, "category_id": row.category_id,
            "tags": list(row.tags or []), "language": row.language,
            "author_id": row.author_id, "created_at": _iso(row.created_at)}


# -- the search index ---------------------------------------------------------------------


def index_article(session: Session, row: KbArticle) -> None:
    """(Re)index an article: its tokens, and on PostgreSQL its status and category beside
    them (migration 0005f), so call this after any change of those too. A reindex makes the
    article the newest in the index (SQLite: a new rowid; PostgreSQL: a new `seq`, 0012k),
    which is the order search windows are read in; a status change alone does not."""
    title_tokens, body_tokens = kb_text.token_text(row.title), kb_text.token_text(row.body)
    if session.get_bind().dialect.name == "sqlite":
        # kb_search_title (0012k) holds the title again under the same rowid
        for old in session.execute(text("SELECT rowid FROM kb_search WHERE article_id = :id"),
                                   {"id": row.id}).scalars().all():
            session.execute(text("DELETE FROM kb_search WHERE rowid = :r"), {"r": old})
            session.execute(text("DELETE FROM kb_search_title WHERE rowid = :r"), {"r": old})
        rowid = session.execute(text("SELECT rowid FROM kb_search ORDER BY rowid DESC "
                                     "LIMIT 1")).scalar() or 0
        session.execute(text("INSERT INTO kb_search (rowid, article_id, title, body) "
                             "VALUES (:r, :id, :title, :body)"),
                        {"r": rowid + 1, "id": row.id, "title": title_tokens,
                         "body": body_tokens})
        session.execute(text("INSERT INTO kb_search_title (rowid, title) VALUES (:r, :title)"),
                        {"r": rowid + 1, "title": title_tokens})
    else:
        session.execute(text(
            "INSERT INTO kb_search (article_id, status, category_id, document) VALUES (:id, "
            ":status, :category_id, "
            "setweight(to_tsvector('simple', :title), 'A') || "
            "setweight(to_tsvector('simple', :body), 'B')) "
            "ON CONFLICT (article_id) DO UPDATE SET document = EXCLUDED.document, "
            "status = EXCLUDED.status, category_id = EXCLUDED.category_id, "
            "seq = nextval('kb_search_seq')"),
            {"id": row.id, "status": row.status, "category_id": row.category_id,
             "title": title_tokens, "body": body_tokens})


def _index_status(session: Session, row: KbArticle) -> None:
    if session.get_bind().dialect.name != "sqlite":  # SQLite joins kb_articles for it
        session.execute(text("UPDATE kb_search SET status = :status WHERE article_id = :id"),
                        {"id": row.id, "status": row.status})


def _matches(session: Session, terms: list[str], statuses: tuple[str, ...], limit: int,
             any_term: bool, category_id: str | None) -> list[tuple[str, float]]:
    """(article id, score: higher is better) of the best `limit` matches, best first: tier by
    tier (kb_text.tiers), each a bounded window of its newest matches ranked exactly, ties by
    article id."""
    params: dict[str, Any] = {}
    status_in = ", ".join(f":s{i}" for i in range(len(statuses)))
    params.update({f"s{i}": s for i, s in enumerate(statuses)})
    sqlite = session.get_bind().dialect.name == "sqlite"
    if category_id:
        params["category_id"] = category_id
    if not sqlite:
        params["all"], params["any"] = kb_text.tsquery(terms), kb_text.tsquery(terms, True)
        # A custom plan per query: how the GIN match set is best read (bitmap or not) depends
        # on how common the terms are, which a cached generic plan does not know.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    tiers = kb_text.tiers(terms, any_term)
    hits: list[tuple[str, float]] = []
    for index, tier in enumerate(tiers):
        window = {**params, "window": max(tier.window, limit)}
        if sqlite:
            rows = _tier_sqlite(session, window, status_in, bool(category_id), terms, tier)
        else:
            rows = _tier_postgresql(session, window, status_in, bool(category_id), tier)
        rows.sort(key=lambda r: (-r[1], r[0]))
        hits += [(article_id, kb_text.tier_score(index, len(tiers), score))
                 for article_id, score in rows[:limit - len(hits)]]
        if len(hits) >= limit:
            break
    return hits


# FTS5 hands matches back in rowid order, descending on request, and stops at the LIMIT: the
# window is read from the index without touching the other matches. kb_search's rowid grows
# with every (re)index (index_article), so the newest first. The title tiers read
# kb_search_title (the titles alone, same rowids, 0012k): a `{title}:` filter on kb_search
# would walk every body match of the words to find the few in titles. The score, computed for
# the window's rows only: bm25 of the title (title tiers) or of the article (weights:
# article_id 0, title 4, body 1); lower is better.
_SQLITE_RANK = "bm25(kb_search, 0.0, 4.0, 1.0)"


def _tier_sqlite(session: Session, params: dict[str, Any], status_in: str, category: bool,
                 terms: list[str], tier: kb_text.Tier) -> list[tuple[str, float]]:
    filters = (f"a.status IN ({status_in})"
               f"{' AND a.category_id = :category_id' if category else ''}")
    if tier.match.title:
        params = {**params, "q": kb_text.fts5_match(terms, not tier.match.every)}
        excluded = ""
        for i, c in enumerate(tier.excluded):
            table = "kb_search_title" if c.title else "kb_search"
            params[f"x{i}"] = kb_text.fts5_match(terms, not c.every)
            excluded += (f"t.rowid NOT IN (SELECT rowid FROM {table} "
                         f"WHERE {table} MATCH :x{i}) AND ")
        sql = ("SELECT s.article_id, bm25(kb_search_title) FROM kb_search_title t "
               "JOIN kb_search s ON s.rowid = t.rowid JOIN kb_articles a ON a.id = s.article_id "
               f"WHERE kb_search_title MATCH :q AND {excluded}{filters} "
               "ORDER BY t.rowid DESC LIMIT :window")
    else:
        params = {**params, "q": kb_text.fts5_tier(terms, tier)}
        sql = (f"SELECT s.article_id, {_SQLITE_RANK} FROM kb_search s "
               "JOIN kb_articles a ON a.id = s.article_id "
               f"WHERE kb_search MATCH :q AND {filters} ORDER BY s.rowid DESC LIMIT :window")
    return [(r[0], -float(r[1])) for r in session.execute(text(sql), params)]


# PostgreSQL reads a tier's window in one of two ways, whichever is cheaper for the terms: the
# newest RECENT_SCAN index rows along `seq` (common terms: the window fills there, and then
# it is exactly the newest `window` matches), else every match from the GIN index, the
# newest `window` of them kept by `seq` (rarer terms). Either way ts_rank (of the title in
# the title tiers, of the whole document in the others) is computed for the window's rows
# only. The planner alone picked the walk along `seq` for
# terms in ~2% of the articles too, reading ~15,000 rows for a window of 300.
RECENT_SCAN = 3000


def _tier_postgresql(session: Session, params: dict[str, Any], status_in: str, category: bool,
                     tier: kb_text.Tier) -> list[tuple[str, float]]:
    """kb_search alone (status and category beside the document, 0005f; the title's own
    tsvector and the index order `seq`, 0012k)."""
    def condition(c: kb_text.Condition) -> str:
        column = "s.title_document" if c.title else "s.document"
        return f"{column} @@ to_tsquery('simple', :{'all' if c.every else 'any'})"
    where = " AND ".join([condition(tier.match)]
                         + [f"NOT {condition(c)}" for c in tier.excluded]
                         + [f"s.status IN ({status_in})"]
                         + (["s.category_id = :category_id"] if category else []))
    ranked = "s.title_document" if tier.match.title else "s.document"
    rank = f"ts_rank({ranked}, to_tsquery('simple', :{'all' if tier.match.every else 'any'}))"
    recent = (f"SELECT s.article_id, {rank} FROM (SELECT * FROM kb_search ORDER BY seq DESC "
              f"LIMIT :scan) s WHERE {where} ORDER BY s.seq DESC LIMIT :window")
    rows = session.execute(text(recent), {**params, "scan": RECENT_SCAN}).all()
    if len(rows) < params["window"]:
        every = (f"WITH m AS MATERIALIZED (SELECT s.article_id, s.seq FROM kb_search s "
                 f"WHERE {where}) SELECT s.article_id, {rank} FROM (SELECT article_id FROM m "
                 "ORDER BY seq DESC LIMIT :window) w JOIN kb_search s "
                 "ON s.article_id = w.article_id")
        rows = session.execute(text(every), params).all()
    return [(r[0], float(r[1])) for r in rows]


def _visible_statuses(principal: dict | None, status: str | None) -> tuple[str, ...]:
    allowed = ("draft", "published", "archived") if is_writer(principal) else ("published",)
    if status is None:
        return ("published",) if "draft" not in allowed else ("draft", "published")
    return (status,) if status in allowed else ()


def search(svc: Any, query: str, principal: dict | None, limit: int = 20,
           status: str | None = None, category_id: str | None = None,
           any_term: bool = False) -> dict[str, Any]:
    terms = kb_text.query_terms(query)
    if not terms:
        raise ValidationFailed.for_fields({"q": ["Has no word to search for."]})
    statuses = _visible_statuses(principal, status)
    if not statuses:
        return {"items": [], "terms": terms}
    with svc.db.read() as session:
        hits = _matches(session, terms, statuses, limit, any_term, category_id)
        rows = {a.id: a for a in session.scalars(
            select(KbArticle).where(KbArticle.id.in_([h[0] for h in hits])))}
    items = []
    for article_id, score in hits:
        row = rows[article_id]
        items.append({"id": row.id, "title": row.title, "status": row.status,
                      "category_id": row.category_id, "tags": list(row.tags or []),
                      "language": row.language, "score": score,
                      "title_highlight": kb_text.snippet(row.title, terms, width=300),
                      "snippet": kb_text.snippet(row.body, terms)})
    return {"items": items, "terms": terms}


def suggest(svc: Any, subject: str, body: str, limit: int = 5) -> dict[str, Any]:
    """The published articles that best match a ticket being written: any of its words."""
    terms = kb_text.query_terms(f"{subject} {body}")[:64]
    if not terms:
        return {"items": [], "terms": []}
    return search(svc, " ".join(terms), {"role": "customer"}, limit=limit, any_term=True)


# -- categories ---------------------------------------------------------------------------


def create_category(svc: Any, data: dict, principal: dict | None) -> dict[str, Any]:
    _require_writer(principal)
    row = KbCategory(id=str(uuid.uuid4()), name=data["name"].strip(),
                     description=data.get("description"), created_at=utcnow())
    try:
        with svc.db.begin() as session:
            session.add(row)
    except IntegrityError:
        raise Conflict("a category with this name exists", {"field": "name"}) from None
    return category_dict(row)


def list_categories(svc: Any) -> dict[str, Any]:
    with svc.db.read() as session:
        rows = session.scalars(select(KbCategory).order_by(KbCategory.name)).all()
        return {"items": [category_dict(r) for r in rows]}


# -- articles -----------------------------------------------------------------------------


def _check_category(session: Session, category_id: str | None) -> None:
    if category_id is not None and session.get(KbCategory, category_id) is None:
        raise ValidationFailed.for_fields({"category_id": ["No such category."]})


def _snapshot(session: Session, row: KbArticle, author_id: str | None) -> None:
    session.add(KbArticleVersion(
        article_id=row.id, version=row.version, title=row.title, body=row.body,
        body_format=row.body_format, category_id=row.category_id, tags=list(row.tags or []),
        language=row.language, author_id=author_id, created_at=utcnow()))


def _event_data(row: KbArticle) -> dict[str, Any]:
    return {"article_id": row.id, "title": row.title, "version": row.version,
            "status": row.status, "category_id": row.category_id,
            "language": row.language, "author_id": row.author_id}


def create_article(svc: Any, data: dict, principal: dict | None,
                   source_ticket_id: str | None = None) -> dict[str, Any]:
    _require_writer(principal)
    now = utcnow()
    row = KbArticle(
        id=str(uuid.uuid4()), title=data["title"], body=data["body"],
        body_format=data.get("body_format") or "markdown",
        category_id=data.get("category_id"), tags=list(data.get("tags") or []),
        language=data.get("language") or "zh", status="draft", version=0,
        author_id=(principal or {}).get("user_id"), source_ticket_id=source_ticket_id,
        helpful_yes=0, helpful_no=0, created_at=now, updated_at=now, published_at=None)
    with svc.db.begin() as session:
        _check_category(session, row.category_id)
        session.add(row)
        session.flush()
        index_article(session, row)
    return article_dict(row)


def create_article_from(svc: Any, title: str, body: str, source_ticket_id: str,
                        principal: dict | None = None) -> dict[str, Any]:
    """A draft article from a solved ticket: one call for the tickets part."""
    return create_article(svc, {"title": title, "body": body, "body_format": "text"},
                          principal, source_ticket_id=source_ticket_id)


def _load(session: Session, article_id: str, principal: dict | None,
          for_update: bool = False) -> KbArticle:
    row = session.get(KbArticle, article_id, with_for_update=for_update or None)
    if row is None or (row.status != "published" and not is_writer(principal)):
        raise NotFound(f"article {article_id} not found")
    return row


def get_article(svc: Any, article_id: str, principal: dict | None) -> dict[str, Any]:
    with svc.db.read() as session:
        return article_dict(_load(session, article_id, principal))


def list_articles(svc: Any, filters: dict, principal: dict | None,
                  page: dict[str, Any]) -> dict[str, Any]:
    """A page of the articles the caller may read that match `filters`, newest first."""
    statuses = _visible_statuses(principal, filters.get("status"))
    if filters.get("status") is None and is_writer(principal):
        statuses = ("draft", "published", "archived")
    query = select(KbArticle).where(KbArticle.status.in_(statuses))
    if filters.get("category_id"):
        query = query.where(KbArticle.category_id == filters["category_id"])
    if filters.get("language"):
        query = query.where(KbArticle.language == filters["language"])
    query = page_after(query, KbArticle.created_at, KbArticle.id, page["cursor"], page["limit"])
    with svc.db.read() as session:
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", article_dict)


def update_article(svc: Any, article_id: str, data: dict,
                   principal: dict | None) -> dict[str, Any]:
    """An edit; of a published article it is a new version (the old ones stay readable)."""
    _require_writer(principal)
    with svc.db.begin() as session:
        row = _load(session, article_id, principal, for_update=True)
        if row.status == "archived":
            raise PreconditionFailed("an archived article cannot be edited")
        if "category_id" in data:
            _check_category(session, data["category_id"])
        changed = False
        for key in EDITABLE:
            if key in data and getattr(row, key) != data[key]:
                setattr(row, key, list(data[key]) if key == "tags" else data[key])
                changed = True
        if changed:
            row.updated_at = utcnow()
            index_article(session, row)
            if row.status == "published":
                row.version += 1
                _snapshot(session, row, (principal or {}).get("user_id"))
                session.flush()
                svc.events.record(session, "kb_article_updated", _event_data(row))
        return article_dict(row)


def publish_article(svc: Any, article_id: str, principal: dict | None) -> dict[str, Any]:
    _require_writer(principal)
    with svc.db.begin() as session:
        row = _load(session, article_id, principal, for_update=True)
        if row.status == "published":
            return article_dict(row)
        row.status, row.version = "published", row.version + 1
        row.published_at = row.updated_at = utcnow()
        _index_status(session, row)
        _snapshot(session, row, (principal or {}).get("user_id"))
        session.flush()
        svc.events.record(session, "kb_article_published", _event_data(row))
        return article_dict(row)


def archive_article(svc: Any, article_id: str, principal: dict | None) -> dict[str, Any]:
    _require_writer(principal)
    with svc.db.begin() as session:
        row = _load(session, article_id, principal, for_update=True)
        if row.status != "archived":
            row.status, row.updated_at = "archived", utcnow()
            _index_status(session, row)
        return article_dict(row)


def list_versions(svc: Any, article_id: str, principal: dict | None) -> dict[str, Any]:
    with svc.db.read() as session:
        _load(session, article_id, principal)
        rows = session.scalars(select(KbArticleVersion)
                               .where(KbArticleVersion.article_id == article_id)
                               .order_by(KbArticleVersion.version.desc())).all()
        return {"items": [version_dict(r) for r in rows]}


def get_version(svc: Any, article_id: str, version: int,
                principal: dict | None) -> dict[str, Any]:
    with svc.db.read() as session:
        _load(session, article_id, principal)
        row = session.get(KbArticleVersion, (article_id, version))
        if row is None:
            raise NotFound(f"version {version} of article {article_id} not found")
        return version_dict(row)


def give_feedback(svc: Any, article_id: str, helpful: bool, comment: str | None,
                  principal: dict | None) -> dict[str, Any]:
    with svc.db.begin() as session:
        row = _load(session, article_id, principal, for_update=True)
        if row.status != "published":
            raise PreconditionFailed("feedback is taken on published articles only")
        session.add(KbFeedback(id=str(uuid.uuid4()), article_id=row.id, helpful=helpful,
                               comment=comment, user_id=(principal or {}).get("user_id"),
                               created_at=utcnow()))
        if helpful:
            row.helpful_yes += 1
        else:
            row.helpful_no += 1
        session.flush()
        counts = session.execute(select(func.count()).select_from(KbFeedback)
                                 .where(KbFeedback.article_id == row.id)).scalar_one()
        return {"article_id": row.id, "helpful_yes": row.helpful_yes,
                "helpful_no": row.helpful_no, "feedback_count": counts}
