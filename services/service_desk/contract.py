"""The service_desk service's contract: its RPC payload schemas, its event schemas and the constants
a caller needs to build a payload. The gateway (and any other party) imports this module and
no other of the service.

Events go to the exchange `service_desk.events` with the event type as routing key.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate
from marshmallow import fields as _f
from marshmallow import validate as _v

from shared.errors import CrmError, PreconditionFailed, deserialize_to_instance
from shared.kernel.schemas import ScopeSchema, StrictSchema

__all__ = ["EVENT_SCHEMAS"]

EVENT_SCHEMAS: dict[str, type[Schema]] = {}


# -- SLA: business calendars and SLA policies ----


@deserialize_to_instance
class CalendarYearUnknown(PreconditionFailed):
    """A business calendar has no holiday data for a year a computation needs (`extra["year"]`):
    an editor adds that year's holidays and workdays and declares it. Here, in the contract, so
    that a caller (the gateway) re-raises it as itself."""

    title = "Calendar year unknown"


SLA_TARGETS = ("first_reply", "next_reply", "periodic_update", "resolution")
SLA_PRIORITIES = ("low", "normal", "high", "urgent")
HOLIDAY_SOURCES = ("cn", "none")
WEEKDAYS = tuple(str(d) for d in range(7))  # "0" = Monday
INTERVAL_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$"

def _plausible_instant(value) -> None:
    """Clocks are computed for instants of 1970 to 2200 (a year 1 overflows the arithmetic)."""
    if not 1970 <= value.year <= 2200:
        raise ValidationError("an instant between the years 1970 and 2200")


def instant(**kwargs) -> fields.AwareDateTime:
    return fields.AwareDateTime(validate=_plausible_instant, **kwargs)


interval = fields.String(
    validate=validate.Regexp(INTERVAL_PATTERN, error="an interval HH:MM-HH:MM"),
    metadata={"example": "09:00-12:00"},
)


class CalendarWriteSchema(StrictSchema):
    """A business calendar. `hours`: weekday ("0" = Monday ... "6") -> intervals; a weekday left
    out is a day off. `holidays` / `workdays`: dates that override the holiday source (a
    make-up Saturday is a workday). `declared_years`: years whose holidays and workdays an
    editor has entered completely (needed for a `cn` calendar beyond the library's years)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time_zone = fields.String(load_default="Asia/Shanghai", validate=validate.Length(max=64))
    holiday_source = fields.String(load_default="cn", validate=validate.OneOf(HOLIDAY_SOURCES))
    hours = fields.Dict(
        keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
        values=fields.List(interval, validate=validate.Length(max=8)),
        load_default=lambda: {d: ["09:00-12:00", "13:30-18:00"] for d in WEEKDAYS[:5]},
    )
    holidays = fields.List(fields.Date(), load_default=list, validate=validate.Length(max=2000))
    workdays = fields.List(fields.Date(), load_default=list, validate=validate.Length(max=2000))
    declared_years = fields.List(
        fields.Integer(validate=validate.Range(min=1970, max=2200)),
        load_default=list, validate=validate.Length(max=200),
    )
    extra_day_hours = fields.List(interval, load_default=None, allow_none=True,
                                  validate=validate.Length(max=8))


class SlaTargetSchema(StrictSchema):
    minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=366 * 24 * 60))
    business = fields.Boolean(load_default=True)
    pause_statuses = fields.List(
        fields.String(validate=validate.OneOf(("new", "open", "pending", "on_hold"))),
        load_default=None, allow_none=True,
        metadata={"description": "statuses that pause this target; default: none for "
                                 "first_reply, pending and on_hold for the others"},
    )


class SlaTargetsSchema(StrictSchema):
    first_reply = fields.Nested(SlaTargetSchema, allow_none=True)
    next_reply = fields.Nested(SlaTargetSchema, allow_none=True)
    periodic_update = fields.Nested(SlaTargetSchema, allow_none=True)
    resolution = fields.Nested(SlaTargetSchema, allow_none=True)


class SlaPolicyWriteSchema(StrictSchema):
    """An SLA policy: conditions (empty = any) and targets. The first policy in order whose
    conditions match a ticket applies."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    calendar_id = fields.String(load_default=None, allow_none=True,
                                metadata={"description": "needed by business-time targets"})
    priorities = fields.List(fields.String(validate=validate.OneOf(SLA_PRIORITIES)),
                             load_default=list)
    customer_tiers = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                                 load_default=list, validate=validate.Length(max=50))
    targets = fields.Nested(SlaTargetsSchema, required=True)
    warn_at = fields.List(
        fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False,
                                             max_inclusive=False)),
        load_default=lambda: [0.75, 0.9], validate=validate.Length(max=5),
        metadata={"description": "warning thresholds as fractions of each target"},
    )


class SlaReorderSchema(StrictSchema):
    policy_ids = fields.List(fields.String(), required=True,
                             metadata={"description": "every policy id, in the new order"})


class TicketEventSchema(StrictSchema):
    """One entry of a ticket's event log as the SLA clocks read it."""

    at = instant(required=True)
    kind = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(load_default=None, allow_none=True)
    priority = fields.String(load_default=None, allow_none=True)
    customer_tier = fields.String(load_default=None, allow_none=True)
    public = fields.Boolean(load_default=True)
    author = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(("agent", "customer", "system")))
    policy_id = fields.String(load_default=None, allow_none=True)
    from_ = fields.String(data_key="from", attribute="from", load_default=None, allow_none=True)
    to = fields.String(load_default=None, allow_none=True)


class ComputeClocksSchema(StrictSchema):
    events = fields.List(fields.Nested(TicketEventSchema), required=True,
                         validate=validate.Length(min=1, max=10000))
    policy_id = fields.String(load_default=None, allow_none=True,
                              metadata={"description": "default: the first policy matching the "
                                                       "ticket's current priority and tier"})
    now = instant(load_default=None, allow_none=True)


class SlaPreviewSchema(StrictSchema):
    priority = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(SLA_PRIORITIES))
    customer_tier = fields.String(load_default=None, allow_none=True)
    start = instant(required=True)


# answers


class CoverageSchema(Schema):
    library_years = fields.List(fields.Integer(), metadata={
        "description": "years the holiday library (chinesecalendar) knows"})
    declared_years = fields.List(fields.Integer())
    current_year_covered = fields.Boolean()
    next_year_covered = fields.Boolean()
    missing_years = fields.List(fields.Integer(), metadata={
        "description": "this year or the next without holiday data: clocks reaching into "
                       "them are refused until an editor adds and declares the year"})


class CalendarSchema(Schema):
    id = fields.String()
    name = fields.String()
    time_zone = fields.String()
    holiday_source = fields.String()
    hours = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    holidays = fields.List(fields.String())
    workdays = fields.List(fields.String())
    declared_years = fields.List(fields.Integer())
    extra_day_hours = fields.List(fields.String(), allow_none=True)
    coverage = fields.Nested(CoverageSchema)
    version = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()


class SlaTargetOutSchema(Schema):
    minutes = fields.Integer()
    business = fields.Boolean()
    pause_statuses = fields.List(fields.String())


class SlaPolicySchema(Schema):
    id = fields.String()
    name = fields.String()
    position = fields.Integer()
    calendar_id = fields.String(allow_none=True)
    priorities = fields.List(fields.String())
    customer_tiers = fields.List(fields.String())
    targets = fields.Dict(keys=fields.String(), values=fields.Nested(SlaTargetOutSchema))
    warn_at = fields.List(fields.Float())
    version = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()


class SlaWarningSchema(Schema):
    threshold = fields.Float()
    at = fields.String(allow_none=True, metadata={"description": "when it is reached; null "
                                                                 "when paused or already passed"})
    passed = fields.Boolean()


class SlaClockSchema(Schema):
    target = fields.String()
    minutes = fields.Integer()
    business = fields.Boolean()
    state = fields.String(metadata={"description": "not_started, running, paused, achieved, "
                                                   "stopped (solved or closed unachieved)"})
    due_at = fields.String(allow_none=True)
    elapsed_seconds = fields.Integer()
    remaining_seconds = fields.Integer(metadata={"description": "negative when breached"})
    paused = fields.Boolean()
    breached = fields.Boolean()
    breached_at = fields.String(allow_none=True)
    achieved_at = fields.String(allow_none=True)
    stopped_at = fields.String(allow_none=True)
    warnings = fields.List(fields.Nested(SlaWarningSchema))


class SlaClocksSchema(Schema):
    policy_id = fields.String(allow_none=True)
    policy_name = fields.String(allow_none=True)
    ticket = fields.Dict(metadata={"description": "status, priority, customer_tier now"})
    computed_at = fields.String()
    clocks = fields.Dict(keys=fields.String(), values=fields.Nested(SlaClockSchema))


class TicketSlaSchema(SlaClocksSchema):
    """A ticket's SLA now: the policy that applies and each target's clock."""

    ticket_id = fields.String()


class SlaPolicyChanged(Schema):
    """An SLA policy was created or changed, or the policies were reordered (`order`)."""

    change = fields.String(required=True, metadata={"description": "created, updated, reordered"})
    policy = fields.Dict(allow_none=True)
    order = fields.List(fields.String(), required=True)


class BusinessCalendarChanged(Schema):
    """A business calendar was created or changed (hours, holidays, workdays, declared years)."""

    change = fields.String(required=True, metadata={"description": "created, updated"})
    calendar = fields.Dict(required=True)


class CheckSlaSchema(StrictSchema):
    """What `check_sla` needs: the ticket and its event log (the tickets part passes its own)."""

    ticket_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    events = fields.List(fields.Nested(TicketEventSchema), required=True,
                         validate=validate.Length(min=1, max=10000))
    policy_id = fields.String(load_default=None, allow_none=True)
    now = instant(load_default=None, allow_none=True)


class TicketSlaWarning(Schema):
    """A ticket's SLA target passed a warning threshold (`threshold` 0.75 = 75 %) while running."""

    ticket_id = fields.String(required=True)
    policy_id = fields.String(required=True)
    target = fields.String(required=True, metadata={"enum": list(SLA_TARGETS)})
    threshold = fields.Float(required=True)
    due_at = fields.String(required=True)
    remaining_seconds = fields.Integer(required=True)
    ticket = fields.Dict(metadata={"description": "the ticket's snapshot (from check_sla by "
                                                  "ticket id): its assignee_id, priority, ..., "
                                                  "group_manager_id"})
    group_manager_id = fields.String(allow_none=True, metadata={
        "description": "the manager of the ticket's group (null: no group or no manager)"})


class TicketSlaBreached(Schema):
    """A ticket's SLA target fell due unmet."""

    ticket_id = fields.String(required=True)
    policy_id = fields.String(required=True)
    target = fields.String(required=True, metadata={"enum": list(SLA_TARGETS)})
    due_at = fields.String(required=True)
    breached_at = fields.String(required=True)
    ticket = fields.Dict(metadata={"description": "the ticket's snapshot (from check_sla by "
                                                  "ticket id): its assignee_id, priority, ..., "
                                                  "group_manager_id"})
    group_manager_id = fields.String(allow_none=True, metadata={
        "description": "the manager of the ticket's group (null: no group or no manager)"})


EVENT_SCHEMAS["sla_policy_changed"] = SlaPolicyChanged
EVENT_SCHEMAS["ticket_sla_warning"] = TicketSlaWarning
EVENT_SCHEMAS["ticket_sla_breached"] = TicketSlaBreached
EVENT_SCHEMAS["business_calendar_changed"] = BusinessCalendarChanged


# -- knowledge base ----


KB_STATUSES = ("draft", "published", "archived")
KB_FORMATS = ("markdown", "text")


class KbCategoryCreateSchema(StrictSchema):
    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    description = _f.String(allow_none=True, validate=_v.Length(max=2000))


class KbArticleCreateSchema(StrictSchema):
    title = _f.String(required=True, validate=_v.Length(min=1, max=300))
    body = _f.String(required=True, validate=_v.Length(min=1, max=200_000))
    body_format = _f.String(load_default="markdown", validate=_v.OneOf(KB_FORMATS))
    category_id = _f.String(allow_none=True, validate=_v.Length(max=36))
    tags = _f.List(_f.String(validate=_v.Length(min=1, max=50)), load_default=list,
                   validate=_v.Length(max=30))
    language = _f.String(load_default="zh", validate=_v.Length(min=2, max=20))


class KbArticleUpdateSchema(StrictSchema):
    title = _f.String(validate=_v.Length(min=1, max=300))
    body = _f.String(validate=_v.Length(min=1, max=200_000))
    body_format = _f.String(validate=_v.OneOf(KB_FORMATS))
    category_id = _f.String(allow_none=True, validate=_v.Length(max=36))
    tags = _f.List(_f.String(validate=_v.Length(min=1, max=50)), validate=_v.Length(max=30))
    language = _f.String(validate=_v.Length(min=2, max=20))


class KbArticleFiltersSchema(StrictSchema):
    status = _f.String(validate=_v.OneOf(KB_STATUSES))
    category_id = _f.String(validate=_v.Length(max=36))
    language = _f.String(validate=_v.Length(max=20))


class KbSearchQuerySchema(StrictSchema):
    q = _f.String(required=True, validate=_v.Length(min=1, max=500))
    status = _f.String(validate=_v.OneOf(KB_STATUSES))
    category_id = _f.String(validate=_v.Length(max=36))
    limit = _f.Integer(load_default=20, validate=_v.Range(min=1, max=100))


class KbSuggestionRequestSchema(StrictSchema):
    subject = _f.String(required=True, validate=_v.Length(max=500))
    text = _f.String(load_default="", validate=_v.Length(max=20_000))
    limit = _f.Integer(load_default=5, validate=_v.Range(min=1, max=20))


class KbFeedbackCreateSchema(StrictSchema):
    helpful = _f.Boolean(required=True)
    comment = _f.String(allow_none=True, validate=_v.Length(max=2000))


# What the knowledge-base RPCs answer (the gateway documents its routes with these).


class KbCategorySchema(Schema):
    id = _f.String()
    name = _f.String()
    description = _f.String(allow_none=True)
    created_at = _f.String()


class KbCategoryListSchema(Schema):
    items = _f.List(_f.Nested(KbCategorySchema))


class KbContentSchema(Schema):
    """What an article and each of its versions hold."""

    version = _f.Integer()
    title = _f.String()
    body = _f.String()
    body_format = _f.String()
    category_id = _f.String(allow_none=True)
    tags = _f.List(_f.String())
    language = _f.String()
    author_id = _f.String(allow_none=True)
    created_at = _f.String()


class KbArticleSchema(KbContentSchema):
    id = _f.String()
    status = _f.String()
    source_ticket_id = _f.String(allow_none=True)
    helpful_yes = _f.Integer()
    helpful_no = _f.Integer()
    updated_at = _f.String()
    published_at = _f.String(allow_none=True)


class KbVersionSchema(KbContentSchema):
    article_id = _f.String()


class KbVersionListSchema(Schema):
    items = _f.List(_f.Nested(KbVersionSchema))


class KbSearchHitSchema(Schema):
    id = _f.String()
    title = _f.String()
    status = _f.String()
    category_id = _f.String(allow_none=True)
    tags = _f.List(_f.String())
    language = _f.String()
    score = _f.Float()
    title_highlight = _f.String(metadata={"description": "The title, HTML-escaped, the "
                                                         "matches in <mark>."})
    snippet = _f.String(metadata={"description": "Body text around the first match, "
                                                 "HTML-escaped, the matches in <mark>."})


class KbSearchResultSchema(Schema):
    items = _f.List(_f.Nested(KbSearchHitSchema))
    terms = _f.List(_f.String())


class KbFeedbackResultSchema(Schema):
    article_id = _f.String()
    helpful_yes = _f.Integer()
    helpful_no = _f.Integer()
    feedback_count = _f.Integer()


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


# -- tickets ----

TICKET_STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CHANNELS = ("email", "web", "api", "event")
TICKET_TYPES = ("question", "incident", "problem", "task")
TICKET_AUTHORS = ("agent", "customer")
TICKET_ENTRY_KINDS = ("created", "reply", "status_changed", "priority_changed", "tier_changed",
                      "csat_answered", "merged",  # merged: groups part
                      "group_changed")  # moved to another group by hand (from / to: group ids)


def _tag_list(**kwargs):
    return _f.List(_f.String(validate=_v.Length(min=1, max=50)), validate=_v.Length(max=30),
                   **kwargs)


def _optional_id(**kwargs):
    return _f.String(allow_none=True, validate=_v.Length(min=1, max=64), **kwargs)


class TicketCreateSchema(StrictSchema):
    """A new ticket (status new); `description` is the requester's first message."""

    subject = _f.String(required=True, validate=_v.Length(min=1, max=500))
    requester_email = _f.Email(required=True, validate=_v.Length(max=320))
    requester_name = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=200))
    description = _f.String(allow_none=True, load_default=None,
                            validate=_v.Length(max=100_000))
    priority = _f.String(load_default="normal", validate=_v.OneOf(TICKET_PRIORITIES))
    type = _f.String(load_default="question", validate=_v.OneOf(TICKET_TYPES))
    category = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=100))
    tags = _tag_list(load_default=list)
    assignee_id = _optional_id(load_default=None)
    group_id = _optional_id(load_default=None)
    channel = _f.String(load_default="web", validate=_v.OneOf(TICKET_CHANNELS))
    customer_id = _optional_id(load_default=None)
    customer_tier = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=32))
    # groups part: what routing rules and skills match on
    product = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=100))
    language = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=20),
                         metadata={"example": "zh"})


class TicketUpdateSchema(StrictSchema):
    """The fields given change: status (through the allowed transitions), priority, assignee
    (null: unassigned), tags (replaced)."""

    status = _f.String(validate=_v.OneOf(TICKET_STATUSES))
    priority = _f.String(validate=_v.OneOf(TICKET_PRIORITIES))
    assignee_id = _optional_id()
    tags = _tag_list()


class TicketReplyCreateSchema(StrictSchema):
    """A reply: public (to the requester) or an internal note; by an agent or the customer."""

    body = _f.String(required=True, validate=_v.Length(min=1, max=100_000))
    public = _f.Boolean(load_default=True)
    author_kind = _f.String(load_default="agent", validate=_v.OneOf(TICKET_AUTHORS))


class TicketFiltersSchema(StrictSchema):
    status = _f.String(validate=_v.OneOf(TICKET_STATUSES))
    priority = _f.String(validate=_v.OneOf(TICKET_PRIORITIES))
    assignee_id = _f.String(validate=_v.Length(min=1, max=64))
    group_id = _f.String(validate=_v.Length(min=1, max=64))  # groups part


class TicketEntrySchema(Schema):
    id = _f.String(required=True)
    seq = _f.Integer(required=True)
    kind = _f.String(required=True, metadata={"enum": list(TICKET_ENTRY_KINDS)})
    public = _f.Boolean(allow_none=True)
    author_kind = _f.String(allow_none=True)
    author_id = _f.String(allow_none=True)
    body = _f.String(allow_none=True)
    from_value = _f.String(allow_none=True, data_key="from", attribute="from")
    to_value = _f.String(allow_none=True, data_key="to", attribute="to")
    at = _f.String(required=True)


class TicketSchema(Schema):
    """A ticket; `number` is its T-000123; `entries` (get_ticket only) its history."""

    id = _f.String(required=True)
    number = _f.String(required=True, metadata={"example": "T-000123"})
    subject = _f.String(required=True)
    requester_email = _f.String(required=True)
    requester_name = _f.String(allow_none=True)
    status = _f.String(required=True, metadata={"enum": list(TICKET_STATUSES)})
    priority = _f.String(required=True, metadata={"enum": list(TICKET_PRIORITIES)})
    type = _f.String(allow_none=True)
    category = _f.String(allow_none=True)
    tags = _f.List(_f.String(), required=True)
    assignee_id = _f.String(allow_none=True)
    group_id = _f.String(allow_none=True)
    channel = _f.String(required=True)
    customer_id = _f.String(allow_none=True)
    customer_tier = _f.String(allow_none=True)
    product = _f.String(allow_none=True)
    language = _f.String(allow_none=True)
    merged_into_id = _f.String(allow_none=True)
    contact_id = _f.String(allow_none=True, metadata={
        "description": "the sales contact the requester's address is (null: not known)"})
    created_at = _f.String(required=True)
    updated_at = _f.String(required=True)
    entries = _f.List(_f.Nested(TicketEntrySchema))


class TicketCreated(Schema):
    """A ticket was created."""

    ticket = _f.Nested(TicketSchema, required=True)


class TicketStatusChanged(Schema):
    """A ticket's status changed (by an agent, or reopened by a customer's reply)."""

    ticket = _f.Nested(TicketSchema, required=True)
    from_status = _f.String(required=True, data_key="from")
    to_status = _f.String(required=True, data_key="to")


class TicketReplied(Schema):
    """A reply or internal note was added to a ticket."""

    ticket = _f.Nested(TicketSchema, required=True)
    entry = _f.Nested(TicketEntrySchema, required=True)


EVENT_SCHEMAS.update({"ticket_created": TicketCreated,
                      "ticket_status_changed": TicketStatusChanged,
                      "ticket_replied": TicketReplied})


# -- groups, routing and web forms (issue 17: groups part) ----

ROUTING_STRATEGIES = ("round_robin", "least_loaded")
ROUTING_CONDITIONS = ("types", "categories", "products", "customer_tiers", "languages")
FORM_HONEYPOT_FIELD = "website"


class TicketScopeSchema(ScopeSchema):
    """The gateway's scope plus the caller (`user_id`): a member or the manager of a group
    sees the group's tickets, whoever they are assigned to."""

    user_id = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=64))


@deserialize_to_instance
class FormRateLimited(CrmError):
    """Too many posts to a web form (per form or per client address) in this minute;
    `extra["retry_after"]` seconds until the window ends. Here, in the contract, so that the
    gateway re-raises it as itself and answers 429 with Retry-After."""

    status = 429
    title = "Too many requests"


def _values(max_items: int = 50):
    return _f.List(_f.String(validate=_v.Length(min=1, max=100)),
                   validate=_v.Length(max=max_items), load_default=list)


class TicketMemberSkillsSchema(StrictSchema):
    products = _values()
    languages = _values()


class TicketGroupMemberSchema(StrictSchema):
    """A member (a gateway user id), their skills, capacity (open tickets at most; null:
    unlimited) and whether they take new tickets now."""

    user_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    skills = _f.Nested(TicketMemberSkillsSchema, load_default=lambda: {"products": [],
                                                                 "languages": []})
    capacity = _f.Integer(load_default=None, allow_none=True,
                          validate=_v.Range(min=0, max=100_000))
    available = _f.Boolean(load_default=True)


class TicketGroupWriteSchema(StrictSchema):
    """A group (queue). `strategy` chooses the member; `skills_matching` prefers members with
    the ticket's product and language; `is_default` gets the tickets no routing rule routes
    (one group at most: setting it moves it). `members` replaces the list."""

    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    description = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=2000))
    manager_id = _f.String(load_default=None, allow_none=True, validate=_v.Length(min=1, max=64))
    strategy = _f.String(load_default="round_robin", validate=_v.OneOf(ROUTING_STRATEGIES))
    skills_matching = _f.Boolean(load_default=False)
    is_default = _f.Boolean(load_default=False)
    members = _f.List(_f.Nested(TicketGroupMemberSchema), load_default=list,
                      validate=_v.Length(max=500))


class TicketGroupMemberOutSchema(Schema):
    user_id = _f.String(required=True)
    skills = _f.Dict(keys=_f.String(), values=_f.List(_f.String()))
    capacity = _f.Integer(allow_none=True)
    available = _f.Boolean(required=True)
    open_tickets = _f.Integer(required=True)


class TicketGroupSchema(Schema):
    id = _f.String(required=True)
    name = _f.String(required=True)
    description = _f.String(allow_none=True)
    manager_id = _f.String(allow_none=True)
    strategy = _f.String(required=True, metadata={"enum": list(ROUTING_STRATEGIES)})
    skills_matching = _f.Boolean(required=True)
    is_default = _f.Boolean(required=True)
    members = _f.List(_f.Nested(TicketGroupMemberOutSchema), required=True)
    created_at = _f.String(required=True)
    updated_at = _f.String(required=True)


class TicketRoutingConditionsSchema(StrictSchema):
    """Each a list of the values the ticket's field may have (empty: any)."""

    types = _values()
    categories = _values()
    products = _values()
    customer_tiers = _values()
    languages = _values()


class TicketRoutingRuleWriteSchema(StrictSchema):
    """A routing rule; a new one goes last. The first enabled rule whose conditions all match
    sends the ticket to `group_id`."""

    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    group_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    conditions = _f.Nested(TicketRoutingConditionsSchema, load_default=dict)
    enabled = _f.Boolean(load_default=True)


class TicketRoutingRuleSchema(Schema):
    id = _f.String(required=True)
    name = _f.String(required=True)
    position = _f.Integer(required=True)
    group_id = _f.String(required=True)
    conditions = _f.Dict(keys=_f.String(), values=_f.List(_f.String()), required=True)
    enabled = _f.Boolean(required=True)
    created_at = _f.String(required=True)
    updated_at = _f.String(required=True)


class TicketRoutingReorderSchema(StrictSchema):
    rule_ids = _f.List(_f.String(validate=_v.Length(min=1, max=64)), required=True,
                       validate=_v.Length(max=1000))


class RouteTicketSchema(StrictSchema):
    ticket_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    command_id = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=200))


class AssignTicketSchema(StrictSchema):
    ticket_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    assignee_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    command_id = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=200))


class TicketRoutingOutcomeSchema(Schema):
    group_id = _f.String(allow_none=True)
    group_reason = _f.String(allow_none=True)
    rule_id = _f.String(allow_none=True)
    assignee_id = _f.String(allow_none=True)
    assignee_reason = _f.String(allow_none=True)
    skipped = _f.Dict(keys=_f.String(), values=_f.String())


class RoutedTicketSchema(TicketSchema):
    routing = _f.Nested(TicketRoutingOutcomeSchema)


class TicketFormWriteSchema(StrictSchema):
    """A web form. `allowed_origins`: the sites (`https://www.example.cn`) whose pages may
    post it from a browser; `min_fill_seconds` (0: no check); rate limits per minute for
    the form and for one client address."""

    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    allowed_origins = _f.List(
        _f.String(validate=[_v.Length(max=200),
                            _v.Regexp(r"^https?://[^/\s]+$",
                                      error="an origin: scheme://host[:port]")]),
        load_default=list, validate=_v.Length(max=20))
    default_group_id = _f.String(load_default=None, allow_none=True,
                                 validate=_v.Length(min=1, max=64))
    default_type = _f.String(load_default="question", validate=_v.OneOf(TICKET_TYPES))
    enabled = _f.Boolean(load_default=True)
    min_fill_seconds = _f.Integer(load_default=3, validate=_v.Range(min=0, max=3600))
    rate_per_minute = _f.Integer(load_default=30, validate=_v.Range(min=1, max=100_000))
    ip_rate_per_minute = _f.Integer(load_default=5, validate=_v.Range(min=1, max=100_000))


class TicketFormSchema(Schema):
    """A form; `token` only in the answers of its creation and of a token rotation."""

    id = _f.String(required=True)
    key = _f.String(required=True)
    name = _f.String(required=True)
    allowed_origins = _f.List(_f.String(), required=True)
    default_group_id = _f.String(allow_none=True)
    default_type = _f.String(required=True)
    enabled = _f.Boolean(required=True)
    min_fill_seconds = _f.Integer(required=True)
    rate_per_minute = _f.Integer(required=True)
    ip_rate_per_minute = _f.Integer(required=True)
    created_at = _f.String(required=True)
    updated_at = _f.String(required=True)
    token = _f.String()


class PublicTicketFormSchema(Schema):
    """What a site's page needs to post the form: the fill-time `stamp` to send back, the
    hidden `honeypot_field` to leave empty, and the allowed origins (for CORS)."""

    key = _f.String(required=True)
    name = _f.String(required=True)
    stamp = _f.String(required=True)
    honeypot_field = _f.String(required=True)
    min_fill_seconds = _f.Integer(required=True)
    fields = _f.List(_f.String(), required=True)
    allowed_origins = _f.List(_f.String(), required=True)


class TicketFormSubmissionSchema(StrictSchema):
    """A post of a web form: the requester and their message; `website` must stay empty
    (the honeypot), `stamp` is the one GET /forms/{key} issued."""

    name = _f.String(required=True, validate=_v.Length(min=1, max=200))
    email = _f.String(required=True, validate=_v.Length(min=3, max=320))
    subject = _f.String(required=True, validate=_v.Length(min=1, max=500))
    body = _f.String(required=True, validate=_v.Length(min=1, max=20_000))
    product = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=100))
    category = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=100))
    language = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=20))
    website = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=500))
    stamp = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=200))


class TicketFormSubmissionResultSchema(Schema):
    """The same for a ticket created and for a post taken for a bot's (which creates
    nothing), so a bot learns nothing."""

    accepted = _f.Boolean(required=True)


class TicketRouted(Schema):
    """A ticket was routed: its group chosen (by a rule or the default) and/or a member."""

    ticket = _f.Nested(TicketSchema, required=True)
    group_id = _f.String(allow_none=True)
    rule_id = _f.String(allow_none=True)
    assignee_id = _f.String(allow_none=True)
    reason = _f.String(required=True)


class TicketAssigned(Schema):
    """A ticket's assignee changed by `assign_ticket` (a rule's, or a group member's)."""

    ticket = _f.Nested(TicketSchema, required=True)
    from_assignee = _f.String(allow_none=True, data_key="from")
    to_assignee = _f.String(allow_none=True, data_key="to")


EVENT_SCHEMAS.update({"ticket_routed": TicketRouted, "ticket_assigned": TicketAssigned})


class TicketGroupMoveSchema(StrictSchema):
    """Move a ticket to another group (`move_ticket_to_group`; HTTP POST /tickets/{id}/group)."""

    group_id = _f.String(required=True, validate=_v.Length(min=1, max=36), metadata={
        "description": "an existing group (else 422 naming `group_id`)"})
    reason = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=1000),
                       metadata={"description": "why, kept in the ticket's history"})


class TicketGroupChanged(Schema):
    """A ticket was moved to another group by hand (`move_ticket_to_group`)."""

    ticket = _f.Nested(TicketSchema, required=True)
    from_group = _f.String(allow_none=True, data_key="from", metadata={
        "description": "the group it left (null: it had none)"})
    to_group = _f.String(required=True, data_key="to")
    unassigned_id = _f.String(allow_none=True, metadata={
        "description": "the assignee it left, when they are not of the new group; else null"})
    reason = _f.String(allow_none=True)


EVENT_SCHEMAS.update({"ticket_group_changed": TicketGroupChanged})


class TicketMergeSchema(StrictSchema):
    """Merge this (duplicate) ticket `into` another: it closes with a link to it."""

    into = _f.String(required=True, validate=_v.Length(min=1, max=64))


class TicketMerged(Schema):
    """A duplicate ticket (`source`, now closed) was merged into `target`."""

    source = _f.Nested(TicketSchema, required=True)
    target = _f.Nested(TicketSchema, required=True)


EVENT_SCHEMAS.update({"ticket_merged": TicketMerged})


# -- SLA scheduling: ticket_sla_scheduled, check_sla by ticket id, escalate_ticket ----


class CheckSlaByIdSchema(StrictSchema):
    """`check_sla` as a rule command: the ticket by id (its log is read from its entries) and
    the caller's now (the rules service's clock)."""

    ticket_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    now = instant(load_default=None, allow_none=True)


class EscalateTicketSchema(StrictSchema):
    """Raise a ticket's priority: one step, or to `priority` when that is higher."""

    ticket_id = _f.String(required=True, validate=_v.Length(min=1, max=64))
    priority = _f.String(load_default=None, allow_none=True,
                         validate=_v.OneOf(TICKET_PRIORITIES))
    reason = _f.String(load_default=None, allow_none=True, validate=_v.Length(max=500))


class SlaTargetScheduleSchema(Schema):
    state = _f.String(required=True, metadata={
        "description": "not_started, running, paused, achieved, stopped"})
    paused = _f.Boolean(required=True)
    due_at = _f.String(allow_none=True, metadata={"description": "of a running target"})
    warn_at = _f.List(_f.String(), required=True,
                      metadata={"description": "the warning instants still ahead"})
    breach_at = _f.String(allow_none=True, metadata={"description": "if still ahead"})


class TicketSlaScheduled(Schema):
    """The next instants that matter for a ticket's SLA changed (created, status, priority,
    reply, a policy or calendar change, a check). `next_check_at` is the earliest warning or
    breach still ahead among running targets (null: nothing runs); `sequence` grows with each
    schedule of the ticket: a lower one arriving late is superseded."""

    ticket_id = _f.String(required=True)
    ticket = _f.Nested(TicketSchema, required=True)
    sequence = _f.Integer(required=True)
    policy_id = _f.String(allow_none=True, required=True)
    next_check_at = _f.String(allow_none=True, required=True)
    clocks = _f.Dict(keys=_f.String(metadata={"enum": list(SLA_TARGETS)}),
                     values=_f.Nested(SlaTargetScheduleSchema), required=True)


class TicketEscalated(Schema):
    """A ticket's priority was raised by `escalate_ticket` (an SLA breach rule)."""

    ticket = _f.Nested(TicketSchema, required=True)
    from_priority = _f.String(required=True, data_key="from")
    to_priority = _f.String(required=True, data_key="to")
    reason = _f.String(allow_none=True)


EVENT_SCHEMAS.update({"ticket_sla_scheduled": TicketSlaScheduled,
                      "ticket_escalated": TicketEscalated})


# -- e-mail: attachments and outgoing mail (part s-mail) ----


class TicketAttachmentSchema(Schema):
    """A file that came with a ticket's mail (`entry_id`: the entry it came with)."""

    id = _f.String(required=True)
    ticket_id = _f.String(required=True)
    entry_id = _f.String(allow_none=True)
    filename = _f.String(required=True)
    content_type = _f.String(required=True)
    size = _f.Integer(required=True)
    sha256 = _f.String(required=True)
    created_at = _f.String(required=True)


class TicketAttachmentListSchema(Schema):
    items = _f.List(_f.Nested(TicketAttachmentSchema), required=True)


class TicketMailSchema(Schema):
    """An outgoing mail of a public reply and how far it got (pending, sending, sent, failed)."""

    id = _f.String(required=True)
    entry_id = _f.String(required=True)
    message_id = _f.String(required=True)
    to = _f.String(required=True)
    subject = _f.String(required=True)
    status = _f.String(required=True, metadata={"enum": ["pending", "sending", "sent", "failed"]})
    attempts = _f.Integer(required=True)
    last_error = _f.String(allow_none=True)
    sent_at = _f.String(allow_none=True)


class TicketMailListSchema(Schema):
    items = _f.List(_f.Nested(TicketMailSchema), required=True)


# -- CSAT: satisfaction surveys ----

CSAT_RATINGS = ("good", "bad")
CSAT_BAD_REASONS = ("unresolved", "slow", "attitude", "unclear", "other")
CSAT_GROUPINGS = ("agent", "group", "month")


class CsatAnswerSchema(StrictSchema):
    """The requester's answer: good or bad; a bad one names its reason; a comment."""

    rating = _f.String(required=True, validate=_v.OneOf(CSAT_RATINGS))
    reason = _f.String(allow_none=True, load_default=None, validate=_v.OneOf(CSAT_BAD_REASONS),
                       metadata={"description": "required with bad: unresolved, slow, "
                                                "attitude, unclear or other"})
    comment = _f.String(allow_none=True, load_default=None, validate=_v.Length(max=2000))


class CsatFiltersSchema(StrictSchema):
    """Surveys sent in [from_month, to_month] (YYYY-MM, the organisation's time zone)."""

    from_month = _f.String(validate=_v.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                              error="must be YYYY-MM"))
    to_month = _f.String(validate=_v.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                            error="must be YYYY-MM"))
    assignee_id = _f.String(validate=_v.Length(min=1, max=64))
    group_id = _f.String(validate=_v.Length(min=1, max=64))


class CsatReportQuerySchema(CsatFiltersSchema):
    group_by = _f.String(load_default="agent", validate=_v.OneOf(CSAT_GROUPINGS))


class CsatSurveyFiltersSchema(CsatFiltersSchema):
    """The drill-down: the surveys behind a figure; `rating` good / bad, `answered`."""

    rating = _f.String(validate=_v.OneOf(CSAT_RATINGS))
    reason = _f.String(validate=_v.OneOf(CSAT_BAD_REASONS))
    answered = _f.Boolean()


class CsatPublicSurveySchema(Schema):
    """What the link's page shows the requester (nothing about the agent or the customer)."""

    ticket_number = _f.String(required=True)
    subject = _f.String(required=True)
    status = _f.String(required=True, metadata={"enum": ["open", "answered", "expired"]})
    rating = _f.String(allow_none=True)
    reasons = _f.List(_f.String(), required=True)
    expires_at = _f.String(required=True)


class CsatSurveySchema(Schema):
    """A survey as agents and managers see it."""

    id = _f.String(required=True)
    ticket_id = _f.String(required=True)
    ticket_number = _f.String(required=True)
    requester_email = _f.String(required=True)
    assignee_id = _f.String(allow_none=True)
    group_id = _f.String(allow_none=True)
    month = _f.String(required=True)
    created_at = _f.String(required=True)
    expires_at = _f.String(required=True)
    rating = _f.String(allow_none=True)
    reason = _f.String(allow_none=True)
    comment = _f.String(allow_none=True)
    answered_at = _f.String(allow_none=True)


class CsatFiguresSchema(Schema):
    sent = _f.Integer(required=True)
    answered = _f.Integer(required=True)
    good = _f.Integer(required=True)
    bad = _f.Integer(required=True)
    score = _f.String(allow_none=True, metadata={"description": "good / answered, percent, "
                                                                "2 places; null: no answer"})
    response_rate = _f.String(allow_none=True,
                              metadata={"description": "answered / sent, percent"})
    reasons = _f.Dict(keys=_f.String(), values=_f.Integer(),
                      metadata={"description": "bad answers per reason"})


class CsatReportRowSchema(CsatFiguresSchema):
    key = _f.String(allow_none=True, metadata={"description": "the agent's or group's id, or "
                                                              "the month; null: none"})


class CsatReportSchema(Schema):
    group_by = _f.String(required=True)
    items = _f.List(_f.Nested(CsatReportRowSchema), required=True)
    total = _f.Nested(CsatFiguresSchema, required=True)


class CsatSurveyEvent(Schema):
    """A ticket's survey, and whom its answer counts for."""

    survey_id = _f.String(required=True)
    ticket_id = _f.String(required=True)
    ticket_number = _f.String(required=True)
    assignee_id = _f.String(allow_none=True)
    group_id = _f.String(allow_none=True)


class CsatSurveyCreated(CsatSurveyEvent):
    """A solved ticket's survey was created (the link goes to the requester by e-mail)."""

    requester_email = _f.String(required=True)


class CsatAnswered(CsatSurveyEvent):
    """The requester answered a ticket's survey."""

    rating = _f.String(required=True)
    reason = _f.String(allow_none=True)
    comment = _f.String(allow_none=True)


EVENT_SCHEMAS.update({"csat_survey_created": CsatSurveyCreated,
                      "csat_answered": CsatAnswered})


# The service desk's numbers (issue 17): volume, backlog, first-reply and resolution times,
# SLA attainment, reopen rate, the tickets behind each figure, the customer 360's part.

NUMBER_INTERVALS = ("day", "week", "month")
NUMBER_FIGURES = ("volume", "backlog", "first_reply", "resolution", "sla", "reopen")
SLA_TARGET_NAMES = ("first_reply", "next_reply", "periodic_update", "resolution")
DURATION_BUCKET_NAMES = ("0-15m", "15m-1h", "1-4h", "4-8h", "8-24h", ">24h")
AGE_BAND_NAMES = ("0-1d", "1-3d", "3-7d", "7-30d", ">30d")
OPEN_TICKET_STATUSES = ("new", "open", "pending", "on_hold")
_PERIOD_DOC = ("a local day (CRM_TIMEZONE), inclusive, 2000-01-01..2199-12-31; default: the "
               "30 days up to today")


class TicketNumbersFiltersSchema(StrictSchema):
    """The period and what narrows the caller's tickets (never widens them)."""

    date_from = _f.Date(metadata={"description": _PERIOD_DOC})
    date_to = _f.Date(metadata={"description": _PERIOD_DOC})
    interval = _f.String(load_default="day", validate=_v.OneOf(NUMBER_INTERVALS),
                         metadata={"description": "periods: day, week (ISO, Monday first), "
                                                  "month"})
    group_id = _f.String(validate=_v.Length(min=1, max=64))
    assignee_id = _f.String(validate=_v.Length(min=1, max=64),
                            metadata={"description": "the agent"})
    priority = _f.String(validate=_v.OneOf(TICKET_PRIORITIES))
    target = _f.String(validate=_v.OneOf(SLA_TARGET_NAMES),
                       metadata={"description": "SLA attainment: only this target"})


class TicketNumbersParamsSchema(StrictSchema):
    """Which part of a figure the records are of. Each figure reads its own parameters: its
    schema is `TicketNumbersParamsSchema.of(figure)` (`TICKET_NUMBERS_PARAMS`); a parameter
    of another figure is refused, naming it."""

    @staticmethod
    def of(figure: str) -> type[TicketNumbersParamsSchema] | None:
        """The parameters of `figure` (None: no such figure)."""
        return TICKET_NUMBERS_PARAMS.get(figure)


def _period_param() -> _f.Field:
    return _f.String(validate=_v.Length(min=7, max=10),
                     metadata={"description": "a `period` of the report"})


class TicketVolumeParamsSchema(TicketNumbersParamsSchema):
    period = _period_param()
    channel = _f.String(validate=_v.OneOf(TICKET_CHANNELS))


class TicketBacklogParamsSchema(TicketNumbersParamsSchema):
    period = _f.String(validate=_v.Length(min=7, max=10),
                       metadata={"description": "a `period` of the report: open at its end "
                                                "(default: open now)"})
    status = _f.String(validate=_v.OneOf(OPEN_TICKET_STATUSES))
    age_band = _f.String(validate=_v.OneOf(AGE_BAND_NAMES))


class TicketDurationParamsSchema(TicketNumbersParamsSchema):
    bucket = _f.String(validate=_v.OneOf(DURATION_BUCKET_NAMES))


class TicketSlaParamsSchema(TicketNumbersParamsSchema):
    target = _f.String(validate=_v.OneOf(SLA_TARGET_NAMES))
    outcome = _f.String(validate=_v.OneOf(("met", "breached", "open")))
    policy_id = _f.String(validate=_v.Length(min=1, max=36))


class TicketReopenParamsSchema(TicketNumbersParamsSchema):
    outcome = _f.String(validate=_v.OneOf(("solved", "reopened")),
                        metadata={"description": "default: solved"})


# figure of ticket_numbers_drill_down -> its parameters
TICKET_NUMBERS_PARAMS: dict[str, type[TicketNumbersParamsSchema]] = {
    "volume": TicketVolumeParamsSchema,
    "backlog": TicketBacklogParamsSchema,
    "first_reply": TicketDurationParamsSchema,
    "resolution": TicketDurationParamsSchema,
    "sla": TicketSlaParamsSchema,
    "reopen": TicketReopenParamsSchema,
}


class _PeriodOut(Schema):
    date_from = _f.String(required=True)
    date_to = _f.String(required=True)


class _PeriodRowOut(Schema):
    period = _f.String(required=True, metadata={"description": "YYYY-MM-DD of the period's "
                                                               "first day, or YYYY-MM"})
    first_day = _f.String(required=True)
    last_day = _f.String(required=True)


class GroupCountSchema(Schema):
    group_id = _f.String(allow_none=True)
    count = _f.Integer(required=True)


class VolumeFiguresSchema(Schema):
    count = _f.Integer(required=True)
    by_channel = _f.Dict(keys=_f.String(), values=_f.Integer(), required=True)
    by_priority = _f.Dict(keys=_f.String(), values=_f.Integer(), required=True)
    by_group = _f.List(_f.Nested(GroupCountSchema), required=True)


class VolumePeriodSchema(_PeriodRowOut, VolumeFiguresSchema):
    pass


class TicketVolumeReportSchema(_PeriodOut):
    interval = _f.String(required=True)
    periods = _f.List(_f.Nested(VolumePeriodSchema), required=True)
    total = _f.Nested(VolumeFiguresSchema, required=True)


class BacklogPeriodSchema(_PeriodRowOut):
    open = _f.Integer(required=True, metadata={"description": "open at the period's end (or "
                                                              "now, for the current one)"})


class AgeBandSchema(Schema):
    band = _f.String(required=True)
    count = _f.Integer(required=True)


class BacklogNowSchema(Schema):
    at = _f.String(required=True)
    open = _f.Integer(required=True)
    by_status = _f.Dict(keys=_f.String(), values=_f.Integer(), required=True)
    by_age = _f.List(_f.Nested(AgeBandSchema), required=True)


class TicketBacklogReportSchema(_PeriodOut):
    interval = _f.String(required=True)
    periods = _f.List(_f.Nested(BacklogPeriodSchema), required=True)
    now = _f.Nested(BacklogNowSchema, required=True)


class DurationBucketSchema(Schema):
    bucket = _f.String(required=True)
    count = _f.Integer(required=True)


class TicketDurationReportSchema(_PeriodOut):
    target = _f.String(required=True)
    count = _f.Integer(required=True)
    p50_seconds = _f.Integer(allow_none=True)
    p90_seconds = _f.Integer(allow_none=True)
    average_seconds = _f.Integer(allow_none=True)
    buckets = _f.List(_f.Nested(DurationBucketSchema), required=True)
    breached = _f.Integer(required=True, metadata={"description": "of them, past the target"})
    calendar_time = _f.Integer(required=True)
    unit = _f.String(required=True)


class AttainmentSchema(Schema):
    target = _f.String(required=True)
    met = _f.Integer(required=True)
    breached = _f.Integer(required=True)
    open = _f.Integer(required=True)
    attainment_percent = _f.String(allow_none=True, metadata={
        "description": "met / (met + breached), 2 places; null: none decided"})


class PolicyAttainmentSchema(AttainmentSchema):
    policy_id = _f.String(allow_none=True)
    policy_name = _f.String(allow_none=True)


class GroupAttainmentSchema(AttainmentSchema):
    group_id = _f.String(allow_none=True)


class AgentAttainmentSchema(AttainmentSchema):
    assignee_id = _f.String(allow_none=True)


class SlaAttainmentReportSchema(_PeriodOut):
    by_policy = _f.List(_f.Nested(PolicyAttainmentSchema), required=True)
    by_group = _f.List(_f.Nested(GroupAttainmentSchema), required=True)
    by_agent = _f.List(_f.Nested(AgentAttainmentSchema), required=True)
    total = _f.List(_f.Nested(AttainmentSchema), required=True)
    formula = _f.String(required=True)


class ReopenRateReportSchema(_PeriodOut):
    solved = _f.Integer(required=True)
    reopened = _f.Integer(required=True)
    reopen_rate_percent = _f.String(allow_none=True)
    formula = _f.String(required=True)


class TicketRecordSchema(TicketSchema):
    seconds = _f.Integer(allow_none=True, metadata={
        "description": "first_reply / resolution: its measured business seconds"})


class TicketRecordPageSchema(Schema):
    items = _f.List(_f.Nested(TicketRecordSchema), required=True)
    next_cursor = _f.String(allow_none=True)


class CustomerTicketSlaSchema(Schema):
    state = _f.String(required=True)
    breached = _f.Boolean(required=True)
    due_at = _f.String(allow_none=True)


class CustomerTicketSchema(Schema):
    id = _f.String(required=True)
    number = _f.String(required=True)
    subject = _f.String(required=True)
    status = _f.String(required=True)
    priority = _f.String(required=True)
    assignee_id = _f.String(allow_none=True)
    group_id = _f.String(allow_none=True)
    created_at = _f.String(required=True)
    updated_at = _f.String(required=True)
    sla_state = _f.String(required=True, metadata={
        "enum": ["breached", "running", "met", "none"]})
    sla = _f.Dict(keys=_f.String(), values=_f.Nested(CustomerTicketSlaSchema), required=True)


class CustomerTicketsSchema(Schema):
    customer_id = _f.String(required=True)
    open_count = _f.Integer(required=True)
    total = _f.Integer(required=True)
    recent = _f.List(_f.Nested(CustomerTicketSchema), required=True)
# The agents' desk in the console: the queue with each ticket's SLA state, a draft article from
# a solved ticket (services/service_desk/usecases/desk_view.py).

DESK_VIEWS = ("mine", "groups", "unassigned", "all")
SLA_STATES = ("none", "ok", "warning", "breached")


class DeskQueueFiltersSchema(StrictSchema):
    """`view`: mine (assigned to me), groups (my groups' tickets), unassigned (nobody's, that I
    see), all (everything I see); `q` finds the number (T-000123 or 123), the subject, the
    requester's name or address."""

    view = _f.String(load_default="all", validate=_v.OneOf(DESK_VIEWS))
    status = _f.String(validate=_v.OneOf(TICKET_STATUSES))
    priority = _f.String(validate=_v.OneOf(TICKET_PRIORITIES))
    group_id = _f.String(validate=_v.Length(min=1, max=64))
    q = _f.String(validate=_v.Length(min=1, max=200))


class DeskSlaSummarySchema(Schema):
    state = _f.String(required=True, metadata={"enum": list(SLA_STATES)})
    next_target = _f.String(allow_none=True)
    next_due_at = _f.String(allow_none=True)
    breached_targets = _f.List(_f.String(), required=True)


class DeskQueueTicketSchema(TicketSchema):
    sla = _f.Nested(DeskSlaSummarySchema, required=True)


class DeskQueuePageSchema(Schema):
    items = _f.List(_f.Nested(DeskQueueTicketSchema), required=True)
    next_cursor = _f.String(allow_none=True)


class DeskKbDraftSchema(StrictSchema):
    """A draft article from a solved ticket: the title (default the subject) and the body
    (default the ticket's public conversation)."""

    title = _f.String(validate=_v.Length(min=1, max=300))
    body = _f.String(validate=_v.Length(min=1, max=200_000))
