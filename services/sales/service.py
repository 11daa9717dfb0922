"""nameko entrypoints of the sales service: load input, call the domain, record events, dump.

Customers, contacts, follow-ups, pipelines, opportunities and lead conversion live here; the
numbers part (funnel, forecast, quotas, custom field definitions, import/export) comes in
through the `NumbersRpc` mixin.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, cast, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.sales.analytics import customer_insights
from services.sales.api_numbers import NumbersRpc, custom_clauses
from services.sales.domain import accounts, credit_code
from services.sales.domain import pipeline as stages_domain
from services.sales.domain.custom_fields import merge_custom, validate_custom
from services.sales.events import EVENT_SCHEMAS
from services.sales.models import (
    Contact,
    Conversion,
    Customer,
    Followup,
    Opportunity,
    Pipeline,
    Stage,
    StageHistory,
    outbox,
)
from services.sales.models_numbers import check_unique, load_field_definitions
from services.sales.schemas import (
    NO_SUCH_USER,
    ON_DUPLICATE,
    BoardFiltersSchema,
    ContactCreateSchema,
    ContactFiltersSchema,
    ContactSchema,
    ContactWriteSchema,
    ConversionOptionsSchema,
    CustomerCreateSchema,
    CustomerFiltersSchema,
    CustomerSchema,
    CustomerWriteSchema,
    FollowupCreateSchema,
    FollowupFiltersSchema,
    FollowupSchema,
    MoveSchema,
    OpportunityCreateSchema,
    OpportunityFiltersSchema,
    OpportunitySchema,
    OpportunityWriteSchema,
    PageSchema,
    PipelineSchema,
    PipelineWriteSchema,
    ScopeSchema,
    TagChangeSchema,
)
from shared import config
from shared.context import CallContext, Context
from shared.db import Database
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.paging import escape_like, page_after, page_of
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc

setup_logging("sales")
log = logging.getLogger(__name__)

FUZZY_CANDIDATES = 500
CONVERTED_LEADS_SHOWN = 50
OPPORTUNITY_CRITERIA_FIELDS = (
    "name", "amount", "expected_close_date", "contact_id", "products", "competitors", "source",
    "campaign", "custom",
)  # fmt: skip

# Schemas are built once: constructing one costs more than loading a payload with it.
scope_schema = ScopeSchema()
page_schema = PageSchema()
customer_schema = CustomerSchema()
customer_create_schema = CustomerCreateSchema()
customer_write_schema = CustomerWriteSchema()
customer_filters_schema = CustomerFiltersSchema()
tag_change_schema = TagChangeSchema()
contact_schema = ContactSchema()
contact_create_schema = ContactCreateSchema()
contact_write_schema = ContactWriteSchema()
contact_filters_schema = ContactFiltersSchema()
followup_schema = FollowupSchema()
followup_create_schema = FollowupCreateSchema()
followup_filters_schema = FollowupFiltersSchema()
pipeline_schema = PipelineSchema()
pipeline_write_schema = PipelineWriteSchema()
opportunity_schema = OpportunitySchema()
opportunity_create_schema = OpportunityCreateSchema()
opportunity_write_schema = OpportunityWriteSchema()
opportunity_filters_schema = OpportunityFiltersSchema()
move_schema = MoveSchema()
conversion_options_schema = ConversionOptionsSchema()
board_filters_schema = BoardFiltersSchema()


# -- helpers -----------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def missing(what: str, record_id: Any, field: str, reference: bool) -> Exception:
    """The one answer for a record that does not exist and one the caller may not see:
    NotFound for the record of the path, a ValidationFailed naming the body's field for a
    reference (the message never says which of the two it was)."""
    if reference:
        return ValidationFailed.for_fields({field: [f"no such {what}"]})
    return NotFound(f"{what} {record_id} not found", {"field": field})


def stage_info(stage: Stage) -> stages_domain.StageInfo:
    return stages_domain.StageInfo(
        id=stage.id, name=stage.name, position=stage.position, probability=stage.probability,
        kind=stage.kind, exit_criteria=stage.exit_criteria or {},
    )


def stage_to_dict(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id, "name": stage.name, "position": stage.position,
        "probability": stage.probability, "kind": stage.kind,
        "exit_criteria": stage.exit_criteria or {"fields": [], "activities": []},
    }


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    return customer_schema.dump(customer)


def contact_to_dict(contact: Contact) -> dict[str, Any]:
    return contact_schema.dump(contact)


def followup_to_dict(followup: Followup) -> dict[str, Any]:
    return followup_schema.dump(followup)


def opportunity_to_dict(opportunity: Opportunity, stage: Stage | None) -> dict[str, Any]:
    data = opportunity_schema.dump(opportunity)
    if stage is not None:
        data["stage"] = {"id": stage.id, "name": stage.name, "probability": stage.probability,
                         "kind": stage.kind}
        data["probability"] = stage.probability
        weighted = stages_domain.weighted_amount(opportunity.amount, stage.probability)
        data["weighted_amount"] = (
            None if weighted is None else str(Decimal(weighted).quantize(Decimal("0.01")))
        )
    data.pop("history", None)
    return data


def criteria_view(opportunity: Opportunity) -> dict[str, Any]:
    return {name: getattr(opportunity, name) for name in OPPORTUNITY_CRITERIA_FIELDS}


def validated_credit_code(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return credit_code.validate(raw)
    except credit_code.CreditCodeError as exc:
        raise ValidationFailed.for_fields({"credit_code": [str(exc)]}) from None


class SalesService(NumbersRpc, PlatformEndpoints):
    name = "sales"

    db = Database("sales")
    events = EventOutbox("sales", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # == customers ================================================================================

    @rpc
    def create_customer(
        self, data: dict, scope: dict | None = None, on_duplicate: str = "reject"
    ) -> dict[str, Any]:
        """A new customer; `on_duplicate` reject (default: a similar name is a Conflict) or
        create. The same credit code is always a Conflict."""
        if on_duplicate not in ON_DUPLICATE:
            raise ValidationFailed.for_fields(
                {"on_duplicate": [f"must be one of {', '.join(ON_DUPLICATE)}"]}
            )
        scope = load(scope_schema, scope)
        fields_ = load(customer_create_schema, data)
        self._clean_customer_fields(fields_)
        owner_id = fields_.pop("owner_id") or self.context.actor
        self._check_owner(owner_id, scope)
        try:
            with self.db.begin() as session:
                matches = self._customer_matches(session, fields_["name"],
                                                 fields_.get("credit_code"))
                exact = [m for m in matches if m.reason == "credit_code"]
                if exact or (matches and on_duplicate == "reject"):
                    self._raise_duplicate(session, exact or matches, scope)
                customer = self._new_customer(session, fields_, owner_id)
                snapshot = customer_to_dict(customer)
                self.events.record(session, "customer_created", {"customer": snapshot,
                                                                "lead_id": None})
                return snapshot
        except IntegrityError:
            # A concurrent create took the credit code between the check and the insert.
            raise Conflict("a customer with the same credit code exists",
                           {"field": "credit_code"}) from None

    @rpc
    def update_customer(
        self, customer_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        fields_ = load(customer_write_schema, data)
        self._clean_customer_fields(fields_)
        with self.db.begin() as session:
            customer = self._visible_customer(session, customer_id, scope)
            if "custom" in fields_:
                fields_["custom"] = self._custom(
                    session, "customer", fields_["custom"], customer.custom, customer.id, True
                )
            if fields_.get("credit_code") and fields_["credit_code"] != customer.credit_code:
                other = session.execute(
                    select(Customer.id, Customer.owner_id)
                    .where(Customer.credit_code == fields_["credit_code"])
                ).first()
                if other:
                    # The id only of a customer the caller may see (no existence detail leak).
                    raise Conflict("a customer with the same credit code exists",
                                   {"field": "credit_code",
                                    **({"existing_id": other.id}
                                       if self._visible(other.owner_id, scope) else {})})
            changed = self._apply(customer, fields_)
            if "name" in changed:
                key = accounts.name_key(customer.name)
                customer.name_key, customer.name_block = key, accounts.name_block(key)
            if changed:
                customer.updated_at = utcnow()
                self.events.record(session, "customer_updated", {
                    "customer": customer_to_dict(customer), "changed": changed,
                    "previous_owner_id": None,
                })
            return customer_to_dict(customer)

    @rpc
    def get_customer(
        self, customer_id: str, scope: dict | None = None, include_contacts: bool = True
    ) -> dict[str, Any]:
        """The customer with its contacts and its insights (health score, RFM segment, and
        why), computed by the numbers part."""
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            customer = self._visible_customer(session, customer_id, scope, allow_merged=True)
            result = customer_to_dict(customer)
            if include_contacts:
                contacts = session.scalars(
                    select(Contact).where(Contact.customer_id == customer.id)
                    .order_by(Contact.created_at, Contact.id)
                ).all()
                result["contacts"] = [contact_to_dict(c) for c in contacts]
            # The leads it came from, newest first: their open tasks belong in the 360 view.
            result["converted_lead_ids"] = list(session.scalars(
                select(Conversion.lead_id).where(Conversion.customer_id == customer.id)
                .order_by(Conversion.converted_at.desc(), Conversion.lead_id)
                .limit(CONVERTED_LEADS_SHOWN)
            ))
            result["insights"] = customer_insights(session, customer.id)
            return result

    @rpc
    def list_customers(
        self,
        filters: dict | None = None,
        scope: dict | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(customer_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(Customer).where(self._owner_clause(Customer.owner_id, scope))
        if not filters.pop("include_merged"):
            query = query.where(Customer.merged_into_id.is_(None))
        for field in ("tier", "lifecycle_stage", "owner_id", "team_id", "region", "industry",
                      "source"):
            if field in filters:
                query = query.where(getattr(Customer, field) == filters[field])
        if "credit_code" in filters:
            query = query.where(Customer.credit_code == credit_code.normalise(
                filters["credit_code"]))
        if "created_from" in filters:
            query = query.where(Customer.created_at >= filters["created_from"])
        if "created_to" in filters:
            query = query.where(Customer.created_at < filters["created_to"])
        tags_text = cast(Customer.tags, Text)
        if "tag" in filters:
            # A quoted form matches one whole element of the JSON array, not a part of one.
            quoted = {json.dumps(filters["tag"]), json.dumps(filters["tag"], ensure_ascii=False)}
            query = query.where(or_(*(tags_text.ilike(f"%{escape_like(q)}%", escape="\\")
                                      for q in sorted(quoted))))
        for term in accounts.search_terms(filters.get("q", "")):
            pattern = f"%{escape_like(term)}%"
            query = query.where(or_(
                Customer.name.ilike(pattern, escape="\\"),
                Customer.name_key.ilike(pattern, escape="\\"),
                *(tags_text.ilike(p, escape="\\") for p in json_text_patterns(term)),
            ))
        query = page_after(query, Customer.created_at, Customer.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            query = query.where(*custom_clauses(session, "customer", filters.get("custom")))
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "created_at", customer_to_dict)

    @rpc
    def tag_customer(
        self, customer_id: str, add: list | None = None, remove: list | None = None,
        scope: dict | None = None,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        change = load(tag_change_schema, {"add": add or [], "remove": remove or []})
        with self.db.begin() as session:
            customer = self._visible_customer(session, customer_id, scope)
            tags = accounts.apply_tag_change(customer.tags or [], change["add"], change["remove"])
            if tags != (customer.tags or []):
                customer.tags = tags
                customer.updated_at = utcnow()
                self.events.record(session, "customer_updated", {
                    "customer": customer_to_dict(customer), "changed": ["tags"],
                    "previous_owner_id": None,
                })
            return customer_to_dict(customer)

    @rpc
    def assign_customer(
        self, customer_id: str, owner_id: str, scope: dict | None = None,
        team_id: str | None = None, include_open_opportunities: bool = False,
    ) -> dict[str, Any]:
        """Give the customer (and optionally its open opportunities) to `owner_id`."""
        scope = load(scope_schema, scope)
        if not isinstance(owner_id, str) or not owner_id:
            raise ValidationFailed.for_fields({"owner_id": ["a user id is required"]})
        self._check_owner(owner_id, scope)
        with self.db.begin() as session:
            customer = self._visible_customer(session, customer_id, scope)
            previous = customer.owner_id
            if previous == owner_id and (team_id is None or team_id == customer.team_id):
                return customer_to_dict(customer)
            customer.owner_id = owner_id
            if team_id is not None:
                customer.team_id = team_id
            customer.updated_at = now = utcnow()
            self.events.record(session, "customer_updated", {
                "customer": customer_to_dict(customer), "changed": ["owner_id"],
                "previous_owner_id": previous,
            })
            if include_open_opportunities:
                stages = self._stage_map(session)
                opportunities = session.scalars(select(Opportunity).where(
                    Opportunity.customer_id == customer.id, Opportunity.status == "open"
                )).all()
                for opportunity in opportunities:
                    opportunity.owner_id = owner_id
                    if team_id is not None:
                        opportunity.team_id = team_id
                    opportunity.updated_at = now
                    self.events.record(session, "opportunity_updated", {
                        "opportunity": opportunity_to_dict(
                            opportunity, stages.get(opportunity.stage_id)),
                        "changed": ["owner_id"],
                    })
            return customer_to_dict(customer)

    @rpc
    def find_duplicate_customers(
        self, customer_id: str, scope: dict | None = None
    ) -> list[dict[str, Any]]:
        """Customers that look like this one: the same credit code or a name at least 90 %
        similar (visible ones only), best first: candidates for `merge_customers`."""
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            customer = self._visible_customer(session, customer_id, scope)
            matches = self._customer_matches(session, customer.name, customer.credit_code)
            owners = dict(session.execute(select(Customer.id, Customer.owner_id).where(
                Customer.id.in_([m.customer_id for m in matches]))).all())
            return [m.to_dict() for m in matches if m.customer_id != customer.id
                    and self._visible(owners.get(m.customer_id), scope)]

    @rpc
    def merge_customers(
        self, target_id: str, source_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        """Merge the duplicate `source_id` into `target_id`: its contacts, opportunities and
        follow-ups move, what the target lacks is filled in, the source is kept as merged."""
        scope = load(scope_schema, scope)
        if target_id == source_id:
            raise ValidationFailed.for_fields({"source_id": ["cannot merge a customer into "
                                                             "itself"]})
        with self.db.begin() as session:
            target = self._visible_customer(session, target_id, scope)
            source = self._visible_customer(session, source_id, scope, field="source_id",
                                            reference=True)
            if source.credit_code and target.credit_code and (
                source.credit_code != target.credit_code
            ):
                raise Conflict(
                    "the two customers have different credit codes: they are different "
                    "companies", {"field": "source_id", "existing_id": source.id},
                )
            moved = {}
            for model, name in ((Contact, "contacts"), (Opportunity, "opportunities"),
                                (Followup, "followups")):
                result = session.execute(
                    update(model).where(model.customer_id == source.id)
                    .values(customer_id=target.id)
                )
                moved[name] = result.rowcount or 0
            session.execute(update(Conversion).where(Conversion.customer_id == source.id)
                            .values(customer_id=target.id))
            if source.credit_code and not target.credit_code:
                code, source.credit_code = source.credit_code, None
                session.flush()  # the unique code leaves the source before the target takes it
                target.credit_code = code
            for field in ("tier", "region", "industry", "source", "campaign", "phone", "website",
                          "address"):
                if not getattr(target, field) and getattr(source, field):
                    setattr(target, field, getattr(source, field))
            target.tags = accounts.normalise_tags([*(target.tags or []), *(source.tags or [])])
            target.custom = {**(source.custom or {}), **(target.custom or {})}
            if source.last_activity_at and (
                not target.last_activity_at or source.last_activity_at > target.last_activity_at
            ):
                target.last_activity_at = source.last_activity_at
            source.merged_into_id = target.id
            source.updated_at = target.updated_at = utcnow()
            self.events.record(session, "customer_merged", {
                "customer": customer_to_dict(target), "source_id": source.id, "moved": moved,
            })
            return customer_to_dict(target)

    # == contacts =================================================================================

    @rpc
    def create_contact(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        fields_ = load(contact_create_schema, data)
        self._clean_contact_fields(fields_)
        with self.db.begin() as session:
            customer = self._visible_customer(session, fields_["customer_id"], scope,
                                              field="customer_id", reference=True)
            fields_["custom"] = self._custom(session, "contact", fields_.get("custom") or {},
                                             None, None, False)
            owner_id = fields_.pop("owner_id")
            if owner_id:
                self._check_owner(owner_id, scope)
            owner_id = owner_id or customer.owner_id or self.context.actor
            contact = self._new_contact(session, fields_, owner_id)
            snapshot = contact_to_dict(contact)
            self.events.record(session, "contact_created", {"contact": snapshot})
            return snapshot

    @rpc
    def update_contact(
        self, contact_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        fields_ = load(contact_write_schema, data)
        self._clean_contact_fields(fields_)
        with self.db.begin() as session:
            contact = self._visible_contact(session, contact_id, scope)
            if "custom" in fields_:
                fields_["custom"] = self._custom(
                    session, "contact", fields_["custom"], contact.custom, contact.id, True
                )
            changed = self._apply(contact, fields_)
            if changed:
                contact.updated_at = utcnow()
                self.events.record(session, "contact_updated",
                                   {"contact": contact_to_dict(contact), "changed": changed})
            return contact_to_dict(contact)

    @rpc
    def get_contact(self, contact_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            return contact_to_dict(self._visible_contact(session, contact_id, scope))

    @rpc
    def list_contacts(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(contact_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(Contact).where(self._record_clause(Contact, scope))
        for field in ("customer_id", "role", "owner_id", "consent"):
            if field in filters:
                query = query.where(getattr(Contact, field) == filters[field])
        for term in accounts.search_terms(filters.get("q", "")):
            pattern = f"%{escape_like(term)}%"
            query = query.where(or_(
                *(getattr(Contact, field).ilike(pattern, escape="\\")
                  for field in ("name", "email", "phone", "title")),
            ))
        query = page_after(query, Contact.created_at, Contact.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            query = query.where(*custom_clauses(session, "contact", filters.get("custom")))
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "created_at", contact_to_dict)

    # == follow-ups ===============================================================================

    @rpc
    def record_followup(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A call, email, meeting, visit (check-in required) or note; publishes
        `followup_recorded`. The customer is taken from the opportunity or contact when not
        given."""
        scope = load(scope_schema, scope)
        fields_ = load(followup_create_schema, data)
        owner_id = fields_["owner_id"] or self.context.actor
        if fields_["owner_id"]:
            self._check_owner(owner_id, scope)
        with self.db.begin() as session:
            customer_id = fields_["customer_id"]
            if fields_["opportunity_id"]:
                opportunity = self._visible_opportunity(session, fields_["opportunity_id"],
                                                        scope, reference=True)
                customer_id = self._same_customer(customer_id, opportunity.customer_id,
                                                  "opportunity_id")
            if fields_["contact_id"]:
                contact = self._visible_contact(session, fields_["contact_id"], scope,
                                                reference=True)
                customer_id = self._same_customer(customer_id, contact.customer_id, "contact_id")
            if fields_["lead_id"] and not customer_id:
                # A follow-up on a converted lead belongs to the customer it became, when the
                # caller sees that customer (the gateway checked the lead itself with leads).
                conversion = session.get(Conversion, fields_["lead_id"])
                if conversion is not None and self._visible(
                    self._customer_owner(session, conversion.customer_id), scope
                ):
                    customer_id = conversion.customer_id
            customer = None
            if customer_id:
                customer = self._visible_customer(session, customer_id, scope,
                                                  field="customer_id", reference=True)
            now = utcnow()
            occurred_at = fields_["occurred_at"] or now
            if fields_["next_followup_at"] and fields_["next_followup_at"] < occurred_at:
                raise ValidationFailed.for_fields(
                    {"next_followup_at": ["must not be before occurred_at"]})
            followup = Followup(
                id=new_id(), kind=fields_["kind"], customer_id=customer_id,
                contact_id=fields_["contact_id"], opportunity_id=fields_["opportunity_id"],
                lead_id=fields_["lead_id"], owner_id=owner_id, occurred_at=occurred_at,
                subject=fields_["subject"], notes=fields_["notes"],
                tags=accounts.normalise_tags(fields_["tags"]),
                key_points=fields_["key_points"], check_in=fields_["check_in"],
                next_followup_at=fields_["next_followup_at"], created_at=now,
            )
            session.add(followup)
            if customer is not None and (
                customer.last_activity_at is None or occurred_at > customer.last_activity_at
            ):
                customer.last_activity_at = occurred_at
            snapshot = followup_to_dict(followup)
            self.events.record(session, "followup_recorded", {"followup": snapshot})
            return snapshot

    @rpc
    def list_followups(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(followup_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(Followup).where(self._record_clause(Followup, scope))
        for field in ("customer_id", "contact_id", "opportunity_id", "lead_id", "kind",
                      "owner_id"):
            if field in filters:
                query = query.where(getattr(Followup, field) == filters[field])
        if "occurred_from" in filters:
            query = query.where(Followup.occurred_at >= filters["occurred_from"])
        if "occurred_to" in filters:
            query = query.where(Followup.occurred_at < filters["occurred_to"])
        query = page_after(query, Followup.occurred_at, Followup.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "occurred_at", followup_to_dict)

    # == pipelines ================================================================================

    @rpc
    def list_pipelines(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            pipelines = session.scalars(
                select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.name)
            ).all()
            return [self._pipeline_dict(session, p) for p in pipelines]

    @rpc
    def get_pipeline(self, pipeline_id: str | None = None) -> dict[str, Any]:
        """A pipeline with its ordered stages; no id: the default pipeline."""
        with self.db.read() as session:
            pipeline = (self._pipeline(session, pipeline_id) if pipeline_id
                        else self._default_pipeline(session))
            return self._pipeline_dict(session, pipeline)

    @rpc
    def create_pipeline(self, data: dict) -> dict[str, Any]:
        fields_ = load(pipeline_write_schema, data)
        stages = stages_domain.validate_stages(fields_["stages"])
        if any(s["id"] for s in stages):
            raise ValidationFailed.for_fields({"stages": ["a new pipeline's stages have no id"]})
        with self.db.begin() as session:
            self._check_criteria_fields(session, fields_["stages"])
            self._unique_pipeline_name(session, fields_["name"], None)
            now = utcnow()
            pipeline = Pipeline(id=new_id(), name=fields_["name"].strip(), is_default=False,
                                created_at=now, updated_at=now)
            session.add(pipeline)
            session.flush()
            for stage in stages:
                session.add(self._stage_row(pipeline.id, stage))
            if fields_["is_default"]:
                self._make_default(session, pipeline)
            session.flush()
            result = self._pipeline_dict(session, pipeline)
            self.events.record(session, "pipeline_changed", {"pipeline": result,
                                                            "created": True})
            return result

    @rpc
    def update_pipeline(self, pipeline_id: str, data: dict) -> dict[str, Any]:
        """Replace name and stages. A stage keeps its identity by `id`; a stage left out is
        retired, which needs it to hold no opportunity."""
        fields_ = load(pipeline_write_schema, data)
        stages = stages_domain.validate_stages(fields_["stages"])
        with self.db.begin() as session:
            pipeline = self._pipeline(session, pipeline_id)
            self._check_criteria_fields(session, fields_["stages"])
            self._unique_pipeline_name(session, fields_["name"], pipeline.id)
            existing = {s.id: s for s in session.scalars(
                select(Stage).where(Stage.pipeline_id == pipeline.id))}
            errors: dict[str, list[str]] = {}
            for index, stage in enumerate(stages):
                if stage["id"] and stage["id"] not in existing:
                    errors[f"stages.{index}.id"] = ["not a stage of this pipeline"]
            if errors:
                raise ValidationFailed.for_fields(errors)
            kept = {s["id"] for s in stages if s["id"]}
            for stage_id, row in existing.items():
                if stage_id in kept or not row.active:
                    continue
                count = session.scalar(select(func.count()).select_from(Opportunity).where(
                    Opportunity.stage_id == stage_id))
                if count:
                    raise Conflict(
                        f"stage {row.name} holds {count} opportunities; move them first",
                        {"field": "stages", "stage_id": stage_id, "count": count},
                    )
                row.active = False
                row.position = 1000 + row.position
            for stage in stages:
                row = existing.get(stage["id"]) if stage["id"] else None
                if row is None:
                    session.add(self._stage_row(pipeline.id, stage))
                    continue
                if row.kind != stage["kind"]:
                    count = session.scalar(select(func.count()).select_from(Opportunity).where(
                        Opportunity.stage_id == row.id))
                    if count:
                        raise Conflict(
                            f"stage {row.name} holds {count} opportunities; its kind cannot "
                            "change", {"field": "stages", "stage_id": row.id})
                row.name, row.probability, row.kind = (stage["name"], stage["probability"],
                                                       stage["kind"])
                row.position, row.exit_criteria, row.active = (stage["position"],
                                                               stage["exit_criteria"], True)
            pipeline.name = fields_["name"].strip()
            if fields_["is_default"]:
                self._make_default(session, pipeline)
            elif pipeline.is_default:
                raise ValidationFailed.for_fields({"is_default": [
                    "make another pipeline the default instead of unsetting this one"]})
            pipeline.updated_at = utcnow()
            session.flush()
            result = self._pipeline_dict(session, pipeline)
            self.events.record(session, "pipeline_changed", {"pipeline": result,
                                                            "created": False})
            return result

    # == opportunities ============================================================================

    @rpc
    def create_opportunity(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A new opportunity in the pipeline's first stage, or in a later open stage when the
        exit criteria of the stages before it hold."""
        scope = load(scope_schema, scope)
        fields_ = load(opportunity_create_schema, data)
        with self.db.begin() as session:
            customer = self._visible_customer(session, fields_["customer_id"], scope,
                                              field="customer_id", reference=True)
            owner_id = fields_.pop("owner_id") or self.context.actor
            self._check_owner(owner_id, scope)
            if fields_.get("contact_id"):
                self._contact_of(session, fields_["contact_id"], customer.id)
            fields_["custom"] = self._custom(session, "opportunity",
                                             fields_.get("custom") or {}, None, None, False)
            opportunity = self._new_opportunity(session, customer, fields_, owner_id)
            stage = session.get(Stage, opportunity.stage_id)
            snapshot = opportunity_to_dict(opportunity, stage)
            self.events.record(session, "opportunity_created", {"opportunity": snapshot})
            return snapshot

    @rpc
    def update_opportunity(
        self, opportunity_id: str, data: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if isinstance(data, dict) and ("stage_id" in data or "status" in data):
            field = "stage_id" if "stage_id" in data else "status"
            raise ValidationFailed.for_fields({field: [
                "stages change through move_opportunity (POST /opportunities/<id>/move), "
                "where the exit criteria are checked"]})
        fields_ = load(opportunity_write_schema, data)
        with self.db.begin() as session:
            opportunity = self._visible_opportunity(session, opportunity_id, scope)
            if "owner_id" in fields_:
                self._check_owner(fields_["owner_id"], scope)
            if fields_.get("contact_id"):
                self._contact_of(session, fields_["contact_id"], opportunity.customer_id)
            if "custom" in fields_:
                fields_["custom"] = self._custom(session, "opportunity", fields_["custom"],
                                                 opportunity.custom, opportunity.id, True)
            if "amount" in fields_ and fields_["amount"] is not None:
                fields_["amount"] = Decimal(fields_["amount"]).quantize(Decimal("0.01"))
            changed = self._apply(opportunity, fields_)
            stage = session.get(Stage, opportunity.stage_id)
            if changed:
                opportunity.updated_at = utcnow()
                self.events.record(session, "opportunity_updated", {
                    "opportunity": opportunity_to_dict(opportunity, stage), "changed": changed,
                })
            return opportunity_to_dict(opportunity, stage)

    @rpc
    def get_opportunity(self, opportunity_id: str, scope: dict | None = None) -> dict[str, Any]:
        """The opportunity with its stage history (when each stage was entered and left)."""
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            opportunity = self._visible_opportunity(session, opportunity_id, scope)
            stages = self._stage_map(session)
            result = opportunity_to_dict(opportunity, stages.get(opportunity.stage_id))
            rows = session.scalars(
                select(StageHistory).where(StageHistory.opportunity_id == opportunity.id)
                .order_by(StageHistory.entered_at, StageHistory.id)
            ).all()
            result["history"] = [
                {"stage_id": h.stage_id,
                 "stage_name": stages[h.stage_id].name if h.stage_id in stages else None,
                 "entered_at": h.entered_at.isoformat(),
                 "left_at": h.left_at.isoformat() if h.left_at else None,
                 "moved_by": h.moved_by}
                for h in rows
            ]
            return result

    @rpc
    def list_opportunities(
        self, filters: dict | None = None, scope: dict | None = None,
        cursor: str | None = None, limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(opportunity_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = self._opportunity_query(filters, scope)
        query = page_after(
            query, Opportunity.created_at, Opportunity.id, page["cursor"], page["limit"]
        )
        with self.db.read() as session:
            query = query.where(*custom_clauses(session, "opportunity", filters.get("custom")))
            rows = session.scalars(query).all()
            stages = self._stage_map(session)
        return page_of(rows, page["limit"], "created_at",
                       lambda o: opportunity_to_dict(o, stages.get(o.stage_id)))

    @rpc
    def move_opportunity(
        self, opportunity_id: str, stage_id: str, reason: str | None = None,
        scope: dict | None = None,
    ) -> dict[str, Any]:
        """Move to another stage of the opportunity's pipeline (the kanban drag; the rules use
        it too). Refused with PreconditionFailed listing `missing` exit criteria; won and lost
        need a reason. The stage history gets the stage left and the stage entered."""
        scope = load(scope_schema, scope)
        move = load(move_schema, {"stage_id": stage_id, "reason": reason})
        with self.db.begin() as session:
            opportunity = self._visible_opportunity(session, opportunity_id, scope)
            stages = session.scalars(select(Stage).where(
                Stage.pipeline_id == opportunity.pipeline_id)).all()
            by_id = {s.id: s for s in stages}
            target = by_id.get(move["stage_id"])
            if target is None or not target.active:
                raise ValidationFailed.for_fields(
                    {"stage_id": ["not a stage of this opportunity's pipeline"]})
            current = by_id[opportunity.stage_id]
            if target.id == current.id:
                return opportunity_to_dict(opportunity, current)
            activities = [
                stages_domain.Activity(kind, tuple(tags or ()))
                for kind, tags in session.execute(
                    select(Followup.kind, Followup.tags)
                    .where(Followup.opportunity_id == opportunity.id)
                )
            ]
            stages_domain.check_move(
                [stage_info(s) for s in stages if s.active], stage_info(current),
                stage_info(target), criteria_view(opportunity), activities, move["reason"],
            )
            now = utcnow()
            session.execute(
                update(StageHistory)
                .where(StageHistory.opportunity_id == opportunity.id,
                       StageHistory.left_at.is_(None))
                .values(left_at=now)
            )
            session.add(StageHistory(opportunity_id=opportunity.id, stage_id=target.id,
                                     entered_at=now, moved_by=self.context.actor))
            opportunity.stage_id = target.id
            opportunity.stage_entered_at = opportunity.updated_at = now
            opportunity.status = stages_domain.status_for(stage_info(target))
            closed = target.kind in ("won", "lost")
            opportunity.closed_at = now if closed else None
            opportunity.won_lost_reason = move["reason"].strip() if closed else None
            snapshot = opportunity_to_dict(opportunity, target)
            self.events.record(session, "opportunity_stage_changed", {
                "opportunity": snapshot, "from_stage_id": current.id, "to_stage_id": target.id,
                "from_stage": current.name, "to_stage": target.name, "reason": move["reason"],
            })
            if closed:
                self.events.record(session, f"opportunity_{target.kind}", {
                    "opportunity": snapshot, "reason": opportunity.won_lost_reason,
                })
            if target.kind == "won":
                self._promote_customer(session, opportunity.customer_id)
            return snapshot

    @rpc
    def opportunity_board(
        self, filters: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        """The kanban: one column per stage of the pipeline (default: the default pipeline)
        with its count, amounts per currency, weighted amounts and the newest cards."""
        filters = load(board_filters_schema, filters)
        scope = load(scope_schema, scope)
        per_stage = filters.pop("per_stage")
        include_closed = filters.pop("include_closed")
        with self.db.read() as session:
            pipeline = (self._pipeline(session, filters["pipeline_id"], field="pipeline_id",
                                       reference=True)
                        if filters.get("pipeline_id") else self._default_pipeline(session))
            filters["pipeline_id"] = pipeline.id
            stages = session.scalars(select(Stage).where(
                Stage.pipeline_id == pipeline.id, Stage.active.is_(True)
            ).order_by(Stage.position)).all()
            if not include_closed:
                stages = [s for s in stages if s.kind == "open"]
            base = self._opportunity_query(filters, scope)
            where = base.whereclause
            sums = session.execute(
                select(Opportunity.stage_id, Opportunity.currency, func.count(),
                       func.sum(Opportunity.amount))
                .where(where).group_by(Opportunity.stage_id, Opportunity.currency)
            ).all()
            counts: dict[str, int] = defaultdict(int)
            amounts: dict[str, dict[str, Decimal]] = defaultdict(dict)
            for stage_id, currency, count, total in sums:
                counts[stage_id] += count
                amounts[stage_id][currency] = Decimal(total or 0)
            columns = []
            totals: dict[str, Decimal] = defaultdict(Decimal)
            weighted_totals: dict[str, Decimal] = defaultdict(Decimal)
            for stage in stages:
                cards = []
                if per_stage and counts.get(stage.id):
                    cards = session.scalars(
                        base.where(Opportunity.stage_id == stage.id)
                        .order_by(Opportunity.updated_at.desc(), Opportunity.id.desc())
                        .limit(per_stage)
                    ).all()
                weighted = {}
                for currency, total in amounts.get(stage.id, {}).items():
                    weighted[currency] = total * stage.probability / 100
                    if stage.kind == "open":
                        totals[currency] += total
                        weighted_totals[currency] += weighted[currency]
                columns.append({
                    "stage": stage_to_dict(stage),
                    "count": counts.get(stage.id, 0),
                    "amounts": _money_map(amounts.get(stage.id, {})),
                    "weighted_amounts": _money_map(weighted),
                    "items": [opportunity_to_dict(o, stage) for o in cards],
                })
            return {
                "pipeline": {"id": pipeline.id, "name": pipeline.name,
                             "is_default": pipeline.is_default},
                "columns": columns,
                "open_totals": {"amounts": _money_map(totals),
                                "weighted_amounts": _money_map(weighted_totals)},
            }

    # == lead conversion ==========================================================================

    @rpc
    def convert_lead(
        self, lead: dict, options: dict | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        """Turn a qualified lead (as `leads.get_lead` returned it) into a customer (found by
        credit code or a close name, or created), a contact and an opportunity, in one
        transaction. Converting the same lead again answers the first result."""
        if not isinstance(lead, dict) or not isinstance(lead.get("id"), str) or not lead["id"]:
            raise ValidationFailed.for_fields({"lead": ["the lead (with its id) is required"]})
        scope = load(scope_schema, scope)
        options = load(conversion_options_schema, options)
        try:
            with self.db.begin() as session:
                existing = session.get(Conversion, lead["id"])
                if existing is not None:
                    return self._replayed_conversion(session, existing, scope)
                return self._convert(session, lead, options, scope)
        except IntegrityError:
            # A concurrent conversion of the same lead won the race: answer its result.
            with self.db.read() as session:
                existing = session.get(Conversion, lead["id"])
                if existing is None:
                    raise Conflict(
                        "a concurrent change took the customer's credit code; retry",
                        {"field": "credit_code"},
                    ) from None
                return self._replayed_conversion(session, existing, scope)

    def _convert(
        self, session: Session, lead: dict, options: dict, scope: dict
    ) -> dict[str, Any]:
        if lead.get("status") != "qualified":
            raise PreconditionFailed(
                f"only a qualified lead can be converted; this one is {lead.get('status')}",
                {"field": "status", "status": lead.get("status")},
            )
        actor = self.context.actor
        owner_id = options["owner_id"] or lead.get("owner_id") or actor
        self._check_owner(owner_id, scope)
        overrides = dict(options["customer"])
        self._clean_customer_fields(overrides)
        customer_name = overrides.get("name") or lead.get("company") or lead.get("name")
        code = overrides.get("credit_code") or validated_credit_code(
            (lead.get("attributes") or {}).get("credit_code"))
        customer: Customer | None = None
        if options["customer_id"]:
            customer = self._visible_customer(session, options["customer_id"], scope,
                                              field="customer_id", reference=True)
        else:
            for match in self._customer_matches(session, customer_name, code):
                candidate = session.get(Customer, match.customer_id)
                if self._visible(candidate.owner_id, scope):
                    customer = candidate
                    break
                if match.reason == "credit_code":
                    # The same credit code is the same company: a second customer cannot be
                    # made, and linking one the converter cannot see would hand them its data.
                    raise Conflict(
                        "a customer with the lead's credit code exists outside your view: ask "
                        "your manager to assign it to you, or convert into a customer_id you "
                        "can see", {"field": "credit_code"})
        created = customer is None
        if customer is None:
            values = {
                "name": customer_name, "lifecycle_stage": "prospect",
                "source": lead.get("source"), "campaign": lead.get("campaign"),
                "region": lead.get("region"), "industry": lead.get("industry"),
                "team_id": options["team_id"], **overrides, "credit_code": code,
            }
            customer = self._new_customer(session, values, owner_id)
            self.events.record(session, "customer_created", {
                "customer": customer_to_dict(customer), "lead_id": lead["id"]})
        contact = self._new_contact(session, {
            "customer_id": customer.id, "name": lead.get("name") or customer_name,
            "title": lead.get("title"), "email": lead.get("email"), "phone": lead.get("phone"),
            "consent": False, "lead_id": lead["id"],
            "custom": self._custom(session, "contact", {}, None, None, False),
        }, owner_id)
        self.events.record(session, "contact_created", {"contact": contact_to_dict(contact)})
        opportunity = None
        if options["create_opportunity"]:
            wanted = options["opportunity"]
            products = wanted.get("products") or lead.get("product_interest") or []
            name = wanted.get("name") or " - ".join(
                [customer.name, *([", ".join(products)] if products else [])])[:200]
            opportunity = self._new_opportunity(session, customer, {
                "name": name, "contact_id": contact.id, "amount": wanted.get("amount"),
                "currency": wanted.get("currency"),
                "expected_close_date": wanted.get("expected_close_date"),
                "pipeline_id": wanted.get("pipeline_id"), "products": products,
                "source": lead.get("source"), "campaign": lead.get("campaign"),
                "lead_id": lead["id"], "team_id": options["team_id"],
                "custom": self._custom(session, "opportunity", {}, None, None, False),
            }, owner_id)
            self.events.record(session, "opportunity_created", {
                "opportunity": opportunity_to_dict(
                    opportunity, session.get(Stage, opportunity.stage_id))})
        # Follow-ups logged on the lead belong to the customer from now on.
        session.execute(update(Followup).where(
            Followup.lead_id == lead["id"], Followup.customer_id.is_(None)
        ).values(customer_id=customer.id))
        conversion = Conversion(
            lead_id=lead["id"], customer_id=customer.id, contact_id=contact.id,
            opportunity_id=opportunity.id if opportunity else None, customer_created=created,
            converted_by=actor, converted_at=utcnow(),
        )
        session.add(conversion)
        session.flush()
        self.events.record(session, "lead_converted", {
            "lead_id": lead["id"], "customer_id": customer.id, "contact_id": contact.id,
            "opportunity_id": conversion.opportunity_id, "converted_by": actor,
            "customer_created": created, "source": lead.get("source"),
            "campaign": lead.get("campaign"),
        })
        return self._conversion_result(session, conversion, replayed=False)

    def _replayed_conversion(
        self, session: Session, conversion: Conversion, scope: dict
    ) -> dict[str, Any]:
        """The first result of a repeated conversion, to a caller who sees its customer."""
        if not self._visible(self._customer_owner(session, conversion.customer_id), scope):
            raise Conflict("this lead was converted into a customer outside your view",
                           {"field": "lead_id"})
        return self._conversion_result(session, conversion, replayed=True)

    def _conversion_result(
        self, session: Session, conversion: Conversion, replayed: bool
    ) -> dict[str, Any]:
        customer = session.get(Customer, conversion.customer_id)
        contact = session.get(Contact, conversion.contact_id) if conversion.contact_id else None
        opportunity = (session.get(Opportunity, conversion.opportunity_id)
                       if conversion.opportunity_id else None)
        return {
            "lead_id": conversion.lead_id, "customer_id": conversion.customer_id,
            "contact_id": conversion.contact_id, "opportunity_id": conversion.opportunity_id,
            "customer_created": conversion.customer_created, "replayed": replayed,
            "converted_by": conversion.converted_by,
            "converted_at": conversion.converted_at.isoformat(),
            "customer": customer_to_dict(customer),
            "contact": contact_to_dict(contact) if contact else None,
            "opportunity": opportunity_to_dict(opportunity, session.get(
                Stage, opportunity.stage_id)) if opportunity else None,
        }

    # == helpers ==================================================================================

    def _custom(
        self, session: Session, entity: str, values: dict, stored: dict | None,
        record_id: str | None, partial: bool,
    ) -> dict[str, Any]:
        """Custom field values checked against the entity's definitions (numbers part)."""
        definitions = load_field_definitions(session, entity)
        cleaned = validate_custom(definitions, values, partial=partial)
        check_unique(session, entity, cleaned, record_id, definitions)
        return merge_custom(stored, cleaned)

    @staticmethod
    def _clean_customer_fields(fields_: dict[str, Any]) -> None:
        if "credit_code" in fields_:
            fields_["credit_code"] = validated_credit_code(fields_["credit_code"])
        if fields_.get("tags") is not None:
            fields_["tags"] = accounts.normalise_tags(fields_["tags"])
        if fields_.get("phone"):
            fields_["phone"] = accounts.normalise_phone(fields_["phone"], config.default_region())
        if "name" in fields_:
            fields_["name"] = fields_["name"].strip()
            if not fields_["name"]:
                raise ValidationFailed.for_fields({"name": ["must not be blank"]})

    @staticmethod
    def _clean_contact_fields(fields_: dict[str, Any]) -> None:
        problems: dict[str, list[str]] = {}
        for field, normalise in (
            ("email", accounts.normalise_email),
            ("phone", lambda raw: accounts.normalise_phone(raw, config.default_region())),
        ):
            if fields_.get(field):
                try:
                    fields_[field] = normalise(fields_[field])
                except ValidationFailed as err:
                    problems.update(err.errors)
        if problems:
            raise ValidationFailed.for_fields(problems)

    def _new_customer(
        self, session: Session, values: dict[str, Any], owner_id: str | None
    ) -> Customer:
        now = utcnow()
        key = accounts.name_key(values["name"])
        custom = self._custom(session, "customer", values.get("custom") or {}, None, None, False)
        customer = Customer(
            id=new_id(), name=values["name"], name_key=key, name_block=accounts.name_block(key),
            credit_code=values.get("credit_code"), tier=values.get("tier"),
            lifecycle_stage=values.get("lifecycle_stage") or "prospect",
            tags=values.get("tags") or [], owner_id=owner_id, team_id=values.get("team_id"),
            region=values.get("region"), industry=values.get("industry"),
            source=values.get("source"), campaign=values.get("campaign"),
            phone=values.get("phone"), website=values.get("website"),
            address=values.get("address"), custom=custom, created_at=now, updated_at=now,
        )
        session.add(customer)
        session.flush()
        return customer

    @staticmethod
    def _new_contact(session: Session, values: dict[str, Any], owner_id: str | None) -> Contact:
        now = utcnow()
        contact = Contact(
            id=new_id(), customer_id=values["customer_id"], name=values["name"],
            title=values.get("title"), role=values.get("role"), phone=values.get("phone"),
            email=values.get("email"), wechat=values.get("wechat"),
            preferred_channel=values.get("preferred_channel"), birthday=values.get("birthday"),
            consent=bool(values.get("consent")), custom=values.get("custom") or {},
            owner_id=owner_id, lead_id=values.get("lead_id"), created_at=now, updated_at=now,
        )
        session.add(contact)
        session.flush()
        return contact

    def _new_opportunity(
        self, session: Session, customer: Customer, values: dict[str, Any], owner_id: str | None
    ) -> Opportunity:
        pipeline = (self._pipeline(session, values["pipeline_id"], field="pipeline_id",
                                   reference=True)
                    if values.get("pipeline_id") else self._default_pipeline(session))
        stages = session.scalars(select(Stage).where(
            Stage.pipeline_id == pipeline.id, Stage.active.is_(True)
        ).order_by(Stage.position)).all()
        first = next(s for s in stages if s.kind == "open")
        target = first
        if values.get("stage_id"):
            target = next((s for s in stages if s.id == values["stage_id"]), None)
            if target is None or target.kind != "open":
                raise ValidationFailed.for_fields({"stage_id": [
                    "must be an open stage of the pipeline (win or lose it with a move)"]})
        amount = values.get("amount")
        now = utcnow()
        opportunity = Opportunity(
            id=new_id(), customer_id=customer.id, contact_id=values.get("contact_id"),
            pipeline_id=pipeline.id, stage_id=target.id, name=values["name"],
            amount=None if amount is None else Decimal(amount).quantize(Decimal("0.01")),
            currency=values.get("currency") or config.default_currency(),
            expected_close_date=values.get("expected_close_date"), owner_id=owner_id,
            team_id=values.get("team_id") or customer.team_id,
            products=values.get("products") or [], competitors=values.get("competitors") or [],
            source=values.get("source") or customer.source,
            campaign=values.get("campaign") or customer.campaign, lead_id=values.get("lead_id"),
            status="open", custom=values.get("custom") or {}, stage_entered_at=now,
            created_at=now, updated_at=now,
        )
        if target.id != first.id:
            # Starting past the first stage must meet what the stages before it ask for.
            stages_domain.check_move(
                [stage_info(s) for s in stages], stage_info(first), stage_info(target),
                criteria_view(opportunity), [], None,
            )
        session.add(opportunity)
        session.flush()
        session.add(StageHistory(opportunity_id=opportunity.id, stage_id=target.id,
                                 entered_at=now, moved_by=self.context.actor))
        return opportunity

    def _promote_customer(self, session: Session, customer_id: str) -> None:
        """A won deal makes a prospect a customer."""
        customer = session.get(Customer, customer_id)
        if customer is not None and customer.lifecycle_stage == "prospect":
            customer.lifecycle_stage = "customer"
            customer.updated_at = utcnow()
            self.events.record(session, "customer_updated", {
                "customer": customer_to_dict(customer), "changed": ["lifecycle_stage"],
                "previous_owner_id": None,
            })

    @staticmethod
    def _customer_matches(
        session: Session, name: str | None, code: str | None
    ) -> list[accounts.CustomerMatch]:
        key = accounts.name_key(name) if name else ""
        conditions = []
        if code:
            conditions.append(Customer.credit_code == code)
        if key:
            conditions.append(Customer.name_block == accounts.name_block(key))
        if not conditions:
            return []
        rows = session.execute(
            select(Customer.id, Customer.name, Customer.credit_code)
            .where(or_(*conditions), Customer.merged_into_id.is_(None))
            .order_by(Customer.created_at.desc()).limit(FUZZY_CANDIDATES)
        ).all()
        return accounts.find_matches(name, code, rows)

    @staticmethod
    def _apply(record: Any, fields_: dict[str, Any]) -> list[str]:
        changed = []
        for name, value in fields_.items():
            if getattr(record, name) != value:
                setattr(record, name, value)
                changed.append(name)
        return sorted(changed)

    @staticmethod
    def _same_customer(given: str | None, actual: str, field: str) -> str:
        if given and given != actual:
            raise ValidationFailed.for_fields({field: ["belongs to another customer than "
                                                       "customer_id"]})
        return actual

    @staticmethod
    def _contact_of(session: Session, contact_id: str, customer_id: str) -> Contact:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.customer_id != customer_id:
            raise ValidationFailed.for_fields({"contact_id": ["not a contact of this customer"]})
        return contact

    @staticmethod
    def _visible(owner_id: str | None, scope: dict) -> bool:
        return scope["all"] or (owner_id is not None and owner_id in scope["owner_ids"])

    def _check_owner(self, owner_id: str | None, scope: dict, field: str = "owner_id") -> None:
        """A user a record is given to (or a follow-up attributed to) must be in the caller's
        scope; one outside it answers like a user that does not exist."""
        if not self._visible(owner_id, scope):
            raise ValidationFailed.for_fields({field: [NO_SUCH_USER]})

    def _raise_duplicate(
        self, session: Session, matches: list[accounts.CustomerMatch], scope: dict
    ) -> None:
        """The Conflict for `matches` (exact credit codes first): ids, names and scores only of
        customers the caller sees; one they do not see is reported as existing, nothing more."""
        owners = dict(session.execute(select(Customer.id, Customer.owner_id).where(
            Customer.id.in_([m.customer_id for m in matches]))).all())
        visible = [m for m in matches if self._visible(owners.get(m.customer_id), scope)]
        exact = matches[0].reason == "credit_code"
        field = "credit_code" if exact else "name"
        what = "the same credit code" if exact else "a similar name"
        if exact and not any(m.reason == "credit_code" for m in visible):
            raise Conflict(f"a customer with {what} exists outside your view: ask your "
                           "manager to assign it to you", {"field": field, "matches": []})
        if not visible:
            raise Conflict(f"a customer with {what} exists outside your view: ask your "
                           "manager, or send on_duplicate=create to keep both",
                           {"field": field, "matches": []})
        raise Conflict(f"a customer with {what} exists",
                       {"existing_id": visible[0].customer_id, "field": field,
                        "matches": [m.to_dict() for m in visible]})

    @staticmethod
    def _owner_clause(column, scope: dict):
        if scope["all"]:
            return true()
        if not scope["owner_ids"]:
            return false()
        return column.in_(scope["owner_ids"])

    def _record_clause(self, model, scope: dict):
        """A contact, follow-up or opportunity is visible through its own owner or through
        its customer's."""
        if scope["all"]:
            return true()
        customers = select(Customer.id).where(self._owner_clause(Customer.owner_id, scope))
        return or_(self._owner_clause(model.owner_id, scope), model.customer_id.in_(customers))

    def _visible_customer(
        self, session: Session, customer_id: str, scope: dict, allow_merged: bool = False,
        field: str = "customer_id", reference: bool = False,
    ) -> Customer:
        """The customer when the caller sees it. Missing and hidden answer alike: NotFound
        for the record a request is about (its path id), ValidationFailed naming `field` for
        one a body refers to (`reference`)."""
        customer = session.get(Customer, customer_id) if isinstance(customer_id, str) else None
        if customer is None or not self._visible(customer.owner_id, scope):
            raise missing("customer", customer_id, field, reference)
        if customer.merged_into_id and not allow_merged:
            survivor_owner = self._customer_owner(session, customer.merged_into_id)
            if self._visible(survivor_owner, scope):
                raise Conflict(
                    f"customer {customer_id} was merged into {customer.merged_into_id}",
                    {"field": field, "existing_id": customer.merged_into_id})
            raise Conflict(f"customer {customer_id} was merged into a customer outside your "
                           "view", {"field": field})
        return customer

    def _customer_owner(self, session: Session, customer_id: str | None) -> str | None:
        if not customer_id:
            return None
        return session.scalar(select(Customer.owner_id).where(Customer.id == customer_id))

    def _visible_contact(
        self, session: Session, contact_id: str, scope: dict, field: str = "contact_id",
        reference: bool = False,
    ) -> Contact:
        contact = session.get(Contact, contact_id) if isinstance(contact_id, str) else None
        if contact is None or not (
            self._visible(contact.owner_id, scope)
            or self._visible(self._customer_owner(session, contact.customer_id), scope)
        ):
            raise missing("contact", contact_id, field, reference)
        return contact

    def _visible_opportunity(
        self, session: Session, opportunity_id: str, scope: dict, field: str = "opportunity_id",
        reference: bool = False,
    ) -> Opportunity:
        opportunity = (session.get(Opportunity, opportunity_id)
                       if isinstance(opportunity_id, str) else None)
        if opportunity is None or not (
            self._visible(opportunity.owner_id, scope)
            or self._visible(self._customer_owner(session, opportunity.customer_id), scope)
        ):
            raise missing("opportunity", opportunity_id, field, reference)
        return opportunity

    def _opportunity_query(self, filters: dict[str, Any], scope: dict):
        query = select(Opportunity).where(self._record_clause(Opportunity, scope))
        for field in ("customer_id", "pipeline_id", "stage_id", "status", "owner_id", "team_id",
                      "source", "lead_id"):
            if field in filters:
                query = query.where(getattr(Opportunity, field) == filters[field])
        if "close_from" in filters:
            query = query.where(Opportunity.expected_close_date >= filters["close_from"])
        if "close_to" in filters:
            query = query.where(Opportunity.expected_close_date <= filters["close_to"])
        for term in accounts.search_terms(filters.get("q", "")):
            query = query.where(Opportunity.name.ilike(f"%{escape_like(term)}%", escape="\\"))
        return query

    @staticmethod
    def _stage_map(session: Session) -> dict[str, Stage]:
        # Stages are few (pipelines x stages): one read beats a join per row.
        return {s.id: s for s in session.scalars(select(Stage))}

    @staticmethod
    def _pipeline(
        session: Session, pipeline_id: str, field: str = "pipeline_id", reference: bool = False
    ) -> Pipeline:
        pipeline = session.get(Pipeline, pipeline_id) if isinstance(pipeline_id, str) else None
        if pipeline is None:
            raise missing("pipeline", pipeline_id, field, reference)
        return pipeline

    @staticmethod
    def _default_pipeline(session: Session) -> Pipeline:
        pipeline = session.scalar(select(Pipeline).where(Pipeline.is_default.is_(True)))
        if pipeline is None:
            raise PreconditionFailed("no default pipeline: create one or run the migrations",
                                     {"field": "pipeline_id"})
        return pipeline

    @staticmethod
    def _pipeline_dict(session: Session, pipeline: Pipeline) -> dict[str, Any]:
        stages = session.scalars(select(Stage).where(
            Stage.pipeline_id == pipeline.id, Stage.active.is_(True)
        ).order_by(Stage.position)).all()
        data = pipeline_schema.dump(pipeline)
        data["stages"] = [stage_to_dict(s) for s in stages]
        return data

    @staticmethod
    def _stage_row(pipeline_id: str, stage: dict[str, Any]) -> Stage:
        return Stage(id=new_id(), pipeline_id=pipeline_id, position=stage["position"],
                     name=stage["name"], probability=stage["probability"],
                     exit_criteria=stage["exit_criteria"], kind=stage["kind"], active=True)

    @staticmethod
    def _check_criteria_fields(session: Session, stages: list[dict[str, Any]]) -> None:
        """A criterion on a custom field nobody defined could never be met: refused at save."""
        defined = {d["key"] for d in load_field_definitions(session, "opportunity")}
        errors = stages_domain.undefined_custom_criteria(stages, defined)
        if errors:
            raise ValidationFailed.for_fields(errors)

    @staticmethod
    def _make_default(session: Session, pipeline: Pipeline) -> None:
        session.execute(update(Pipeline).where(Pipeline.id != pipeline.id)
                        .values(is_default=False))
        pipeline.is_default = True

    @staticmethod
    def _unique_pipeline_name(session: Session, name: str, pipeline_id: str | None) -> None:
        other = session.scalar(select(Pipeline.id).where(Pipeline.name == name.strip()))
        if other and other != pipeline_id:
            raise Conflict(f"a pipeline named {name.strip()!r} exists",
                           {"field": "name", "existing_id": other})


def _money_map(values: dict[str, Any]) -> dict[str, str]:
    return {currency: str(Decimal(v).quantize(Decimal("0.01"))) for currency, v in
            sorted(values.items())}


def json_text_patterns(text: str) -> list[str]:
    """LIKE patterns finding `text` inside a JSON document stored as text. JSON serialisation
    escapes non-ASCII ("客户" is stored as "\\u5ba2\\u6237"): the escaped form is searched too."""
    escaped = json.dumps(text)[1:-1]
    forms = [text] if escaped == text else [text, escaped]
    return [f"%{escape_like(form)}%" for form in forms]
