"""Knowledge-base endpoints: one service_desk RPC each. Every signed-in user reads and searches
published articles and gives feedback; agents, managers and admins also see drafts and archived
articles and write. The caller's role goes to the service, which decides what they see
(services/service_desk/README.md, "Knowledge base")."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from services.gateway.app import current_principal, require_role, rpc_call
from services.gateway.http_schemas import page_of, paged
from services.service_desk import contract

blp = Blueprint("service_desk_kb", __name__, description="Knowledge base: articles and search.")

WRITERS = ("admin", "manager", "service_agent")


# -- HTTP schemas: the contract's, paged ----------------------------------------------------

KbArticlePageSchema = page_of(contract.KbArticleSchema, "KbArticlePageSchema")
KbArticleQuerySchema = paged(contract.KbArticleFiltersSchema, "KbArticleQuerySchema")


# -- routes -------------------------------------------------------------------------------


def _principal() -> dict[str, Any]:
    principal = current_principal()
    return {"user_id": principal.user_id, "role": principal.role}


def _writer() -> dict[str, Any]:
    require_role(*WRITERS)
    return _principal()


@blp.route("/kb/categories", methods=["GET"])
@blp.response(200, contract.KbCategoryListSchema)
def list_categories() -> Any:
    """The article categories (any signed-in user)."""
    current_principal()
    return rpc_call("service_desk", "kb_list_categories")


@blp.route("/kb/categories", methods=["POST"])
@blp.arguments(contract.KbCategoryCreateSchema())
@blp.response(201, contract.KbCategorySchema)
def create_category(data: dict[str, Any]) -> Any:
    """A new category (agents, managers, admins)."""
    return rpc_call("service_desk", "kb_create_category", data=data, principal=_writer())


@blp.route("/kb/articles", methods=["POST"])
@blp.arguments(contract.KbArticleCreateSchema())
@blp.response(201, contract.KbArticleSchema)
def create_article(data: dict[str, Any]) -> Any:
    """A new draft article (agents, managers, admins)."""
    return rpc_call("service_desk", "kb_create_article", data=data, principal=_writer())


@blp.route("/kb/articles", methods=["GET"])
@blp.arguments(KbArticleQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, KbArticlePageSchema)
def list_articles(query: dict[str, Any]) -> Any:
    """Articles, newest first: published ones for everybody; drafts and archived for agents
    and above."""
    cursor, limit = query.pop("cursor", None), query.pop("limit", 50)
    return rpc_call("service_desk", "kb_list_articles", filters=query, principal=_principal(),
                    cursor=cursor, limit=limit)


@blp.route("/kb/articles/<string:article_id>", methods=["GET"])
@blp.response(200, contract.KbArticleSchema)
def get_article(article_id: str) -> Any:
    """One article (a draft is not found for a caller who may not see drafts)."""
    return rpc_call("service_desk", "kb_get_article", article_id=article_id,
                    principal=_principal())


@blp.route("/kb/articles/<string:article_id>", methods=["PATCH"])
@blp.arguments(contract.KbArticleUpdateSchema())
@blp.response(200, contract.KbArticleSchema)
def update_article(data: dict[str, Any], article_id: str) -> Any:
    """Edit an article; an edit of a published one is a new version."""
    return rpc_call("service_desk", "kb_update_article", article_id=article_id, data=data,
                    principal=_writer())


@blp.route("/kb/articles/<string:article_id>/publish", methods=["POST"])
@blp.response(200, contract.KbArticleSchema)
def publish_article(article_id: str) -> Any:
    """Publish an article (a new version)."""
    return rpc_call("service_desk", "kb_publish_article", article_id=article_id,
                    principal=_writer())


@blp.route("/kb/articles/<string:article_id>/archive", methods=["POST"])
@blp.response(200, contract.KbArticleSchema)
def archive_article(article_id: str) -> Any:
    """Archive an article: no longer shown to non-agents nor suggested."""
    return rpc_call("service_desk", "kb_archive_article", article_id=article_id,
                    principal=_writer())


@blp.route("/kb/articles/<string:article_id>/versions", methods=["GET"])
@blp.response(200, contract.KbVersionListSchema)
def list_versions(article_id: str) -> Any:
    """The published versions of an article, newest first."""
    return rpc_call("service_desk", "kb_list_versions", article_id=article_id,
                    principal=_principal())


@blp.route("/kb/articles/<string:article_id>/versions/<int:version>", methods=["GET"])
@blp.response(200, contract.KbVersionSchema)
def get_version(article_id: str, version: int) -> Any:
    """One version of an article."""
    return rpc_call("service_desk", "kb_get_version", article_id=article_id, version=version,
                    principal=_principal())


@blp.route("/kb/articles/<string:article_id>/feedback", methods=["POST"])
@blp.arguments(contract.KbFeedbackCreateSchema())
@blp.response(201, contract.KbFeedbackResultSchema)
def give_feedback(data: dict[str, Any], article_id: str) -> Any:
    """"Was this helpful": yes or no, with an optional comment (any signed-in user)."""
    return rpc_call("service_desk", "kb_give_feedback", article_id=article_id, data=data,
                    principal=_principal())


@blp.route("/kb/search", methods=["GET"])
@blp.arguments(contract.KbSearchQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, contract.KbSearchResultSchema)
def search(query: dict[str, Any]) -> Any:
    """Full-text search (Chinese and English), best first, with highlighted snippets."""
    return rpc_call("service_desk", "kb_search", query=query, principal=_principal())


@blp.route("/kb/suggestions", methods=["POST"])
@blp.arguments(contract.KbSuggestionRequestSchema())
@blp.response(200, contract.KbSearchResultSchema)
def suggestions(data: dict[str, Any]) -> Any:
    """The published articles that best match a ticket being written (subject and text)."""
    current_principal()
    return rpc_call("service_desk", "kb_suggest", data=data)
