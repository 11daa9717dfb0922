"""The service_desk service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. The gateway (and any other party) imports this module and
no other of the service.

Events go to the exchange `service_desk.events` with the event type as routing key.
"""

from __future__ import annotations

from marshmallow import Schema

__all__ = ["EVENT_SCHEMAS"]

EVENT_SCHEMAS: dict[str, type[Schema]] = {}


# -- knowledge base ----

from marshmallow import fields as _f  # noqa: E402
from marshmallow import validate as _v  # noqa: E402

KB_STATUSES = ("draft", "published", "archived")
KB_FORMATS = ("markdown", "text")


class KbCategoryCreate(Schema):
    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    description = _f.String(allow_none=True, validate=_v.Length(max=2000))


class KbArticleCreate(Schema):
    title = _f.String(required=True, validate=_v.Length(min=1, max=300))
    body = _f.String(required=True, validate=_v.Length(min=1, max=200_000))
    body_format = _f.String(load_default="markdown", validate=_v.OneOf(KB_FORMATS))
    category_id = _f.String(allow_none=True, validate=_v.Length(max=36))
    tags = _f.List(_f.String(validate=_v.Length(min=1, max=50)), load_default=list,
                   validate=_v.Length(max=30))
    language = _f.String(load_default="zh", validate=_v.Length(min=2, max=20))


class KbArticleUpdate(Schema):
    title = _f.String(validate=_v.Length(min=1, max=300))
    body = _f.String(validate=_v.Length(min=1, max=200_000))
    body_format = _f.String(validate=_v.OneOf(KB_FORMATS))
    category_id = _f.String(allow_none=True, validate=_v.Length(max=36))
    tags = _f.List(_f.String(validate=_v.Length(min=1, max=50)), validate=_v.Length(max=30))
    language = _f.String(validate=_v.Length(min=2, max=20))


class KbArticleFilters(Schema):
    status = _f.String(validate=_v.OneOf(KB_STATUSES))
    category_id = _f.String(validate=_v.Length(max=36))
    language = _f.String(validate=_v.Length(max=20))


class KbSearchQuery(Schema):
    q = _f.String(required=True, validate=_v.Length(min=1, max=500))
    status = _f.String(validate=_v.OneOf(KB_STATUSES))
    category_id = _f.String(validate=_v.Length(max=36))
    limit = _f.Integer(load_default=20, validate=_v.Range(min=1, max=100))


class KbSuggestionRequest(Schema):
    subject = _f.String(required=True, validate=_v.Length(max=500))
    text = _f.String(load_default="", validate=_v.Length(max=20_000))
    limit = _f.Integer(load_default=5, validate=_v.Range(min=1, max=20))


class KbFeedbackCreate(Schema):
    helpful = _f.Boolean(required=True)
    comment = _f.String(allow_none=True, validate=_v.Length(max=2000))


class KbArticleEvent(Schema):
    """A knowledge-base article was published (its first version, or again) or a published
    article was edited (a new version)."""

    article_id = _f.String(required=True)
    title = _f.String(required=True)
    version = _f.Integer(required=True)
    status = _f.String(required=True)
    category_id = _f.String(allow_none=True)
    language = _f.String(required=True)
    author_id = _f.String(allow_none=True)


class KbArticlePublished(KbArticleEvent):
    """A knowledge-base article was published: version is its new version."""


class KbArticleUpdated(KbArticleEvent):
    """A published knowledge-base article was edited: a new version."""


EVENT_SCHEMAS.update({"kb_article_published": KbArticlePublished,
                      "kb_article_updated": KbArticleUpdated})
