"""nameko entrypoints of the service_desk service: each loads its input with the contract's
schemas and calls one use case (services/service_desk/usecases/), whose result is a plain dict."""

from __future__ import annotations

from services.service_desk.contract import EVENT_SCHEMAS
from services.service_desk.models import outbox
from shared.context import CallContext, Context
from shared.db import Database
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.platform import PlatformEndpoints

setup_logging("service_desk")


class ServiceDeskService(PlatformEndpoints):
    name = "service_desk"

    db = Database("service_desk")
    events = EventOutbox("service_desk", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()


# -- knowledge base ----

from services.service_desk import contract as _kb_contract  # noqa: E402
from services.service_desk.usecases import kb as _kb  # noqa: E402
from shared.payloads import load as _load  # noqa: E402
from shared.rpc import rpc as _rpc  # noqa: E402


class _KnowledgeBase:
    """The knowledge-base entrypoints (mixed into ServiceDeskService below)."""

    @_rpc
    def kb_create_category(self, data: dict, principal: dict | None = None) -> dict:
        return _kb.create_category(self, _load(_kb_contract.KbCategoryCreate(), data), principal)

    @_rpc
    def kb_list_categories(self) -> dict:
        return _kb.list_categories(self)

    @_rpc
    def kb_create_article(self, data: dict, principal: dict | None = None) -> dict:
        return _kb.create_article(self, _load(_kb_contract.KbArticleCreate(), data), principal)

    @_rpc
    def kb_create_article_from(self, title: str, body: str, source_ticket_id: str,
                               principal: dict | None = None) -> dict:
        data = _load(_kb_contract.KbArticleCreate(), {"title": title, "body": body})
        return _kb.create_article_from(self, data["title"], data["body"], source_ticket_id,
                                       principal)

    @_rpc
    def kb_get_article(self, article_id: str, principal: dict | None = None) -> dict:
        return _kb.get_article(self, article_id, principal)

    @_rpc
    def kb_list_articles(self, filters: dict | None = None, principal: dict | None = None,
                         cursor: str | None = None, limit: int = 50) -> dict:
        filters = _load(_kb_contract.KbArticleFilters(), filters or {})
        return _kb.list_articles(self, filters, principal, cursor, max(1, min(int(limit), 200)))

    @_rpc
    def kb_update_article(self, article_id: str, data: dict,
                          principal: dict | None = None) -> dict:
        return _kb.update_article(self, article_id, _load(_kb_contract.KbArticleUpdate(), data),
                                  principal)

    @_rpc
    def kb_publish_article(self, article_id: str, principal: dict | None = None) -> dict:
        return _kb.publish_article(self, article_id, principal)

    @_rpc
    def kb_archive_article(self, article_id: str, principal: dict | None = None) -> dict:
        return _kb.archive_article(self, article_id, principal)

    @_rpc
    def kb_list_versions(self, article_id: str, principal: dict | None = None) -> dict:
        return _kb.list_versions(self, article_id, principal)

    @_rpc
    def kb_get_version(self, article_id: str, version: int,
                       principal: dict | None = None) -> dict:
        return _kb.get_version(self, article_id, int(version), principal)

    @_rpc
    def kb_search(self, query: dict, principal: dict | None = None) -> dict:
        q = _load(_kb_contract.KbSearchQuery(), query)
        return _kb.search(self, q["q"], principal, q["limit"], q.get("status"),
                          q.get("category_id"))

    @_rpc
    def kb_suggest(self, data: dict) -> dict:
        d = _load(_kb_contract.KbSuggestionRequest(), data)
        return _kb.suggest(self, d["subject"], d["text"], d["limit"])

    @_rpc
    def kb_give_feedback(self, article_id: str, data: dict,
                         principal: dict | None = None) -> dict:
        d = _load(_kb_contract.KbFeedbackCreate(), data)
        return _kb.give_feedback(self, article_id, d["helpful"], d.get("comment"), principal)


ServiceDeskService.__bases__ = (*ServiceDeskService.__bases__, _KnowledgeBase)
