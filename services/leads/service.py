"""nameko entrypoints of the leads service: load input, call the domain, record events, dump."""

from __future__ import annotations

import copy
import logging
import uuid
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from services.leads import domain
from services.leads.events import EVENT_SCHEMAS
from services.leads.models import (
    Behaviour,
    HistoryEntry,
    Lead,
    ScoringModelVersion,
    inbox,
    outbox,
)
from services.leads.schemas import (
    ON_DUPLICATE,
    BehaviourSchema,
    LeadCreateSchema,
    LeadFiltersSchema,
    LeadSchema,
    PageSchema,
    ScopeSchema,
)
from shared import config
from shared.consumer import event_handler
from shared.context import CallContext, Context
from shared.db import Database, insert_object
from shared.envelope import utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.inbox import first_delivery, record_command, recorded_command
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.paging import escape_like, page_after, page_of
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc

setup_logging("leads")
log = logging.getLogger(__name__)

CLOSED_STATUSES = ("converted",)
DEFAULT_MODEL = domain.validate_scoring_model(domain.DEFAULT_SCORING_MODEL)


class ScoringModels:
    """The model in force. Saved versions never change, so a process keeps the one it loaded
    and asks only for the newest version number (another process may have saved a newer one)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = DEFAULT_MODEL

    def current(self, session: Session) -> dict[str, Any]:
        # Plain SQL: this runs for every capture, and the ORM's statement path costs more
        # than the query itself.
        version = session.connection().exec_driver_sql(
            "SELECT max(version) FROM scoring_models"
        ).scalar()
        if version is None:
            return DEFAULT_MODEL
        if self._loaded["version"] != version:
            self._loaded = session.get(ScoringModelVersion, version).model
        return self._loaded


scoring_models = ScoringModels()
FUZZY_CANDIDATES = 500
# Built once (capture runs it every time): leads with the same email or phone, and the newest
# ones whose company key starts alike, for the fuzzy comparison. A NULL parameter matches none.
# On the table, not the entity: run on the connection, it skips the ORM's statement handling.
_leads = Lead.__table__.c
DUPLICATE_CANDIDATES = (
    select(_leads.id, _leads.email, _leads.phone, _leads.company, _leads.owner_id)
    .where(
        or_(
            _leads.email == bindparam("email"),
            _leads.phone == bindparam("phone"),
            _leads.company_block == bindparam("block"),
        ),
        _leads.merged_into_id.is_(None),
    )
    .order_by(_leads.created_at.desc())
    .limit(FUZZY_CANDIDATES)
)
# Schemas are built once: constructing one costs more than loading a payload with it.
lead_schema = LeadSchema()
create_schema = LeadCreateSchema()
filters_schema = LeadFiltersSchema()
behaviour_schema = BehaviourSchema()
scope_schema = ScopeSchema()
page_schema = PageSchema()


def lead_to_dict(lead: Lead) -> dict[str, Any]:
    data = lead_schema.dump(lead)
    data["in_pool"] = lead.owner_id is None
    return data


class LeadsService(PlatformEndpoints):
    name = "leads"

    db = Database("leads")
    events = EventOutbox("leads", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # -- capture ---------------------------------------------------------------------------

    @rpc
    def create_lead(
        self,
        data: dict,
        on_duplicate: str = "reject",
        owner_id: str | None = None,
        scope: dict | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if on_duplicate not in ON_DUPLICATE:
            raise ValidationFailed.for_fields(
                {"on_duplicate": [f"must be one of {', '.join(ON_DUPLICATE)}"]}
            )
        if owner_id is not None and not scope["all"] and owner_id not in scope["owner_ids"]:
            raise Forbidden("a lead can be captured only for an owner within your scope",
                            {"field": "owner_id"})
        fields_ = load(create_schema, data)
        problems: dict[str, list[str]] = {}
        for field, normalise in (
            ("email", domain.normalise_email),
            ("phone", lambda raw: domain.normalise_phone(raw, config.default_region())),
        ):
            if fields_.get(field):
                try:
                    fields_[field] = normalise(fields_[field])
                except ValidationFailed as err:
                    problems.update(err.errors)
        if problems:
            raise ValidationFailed.for_fields(problems)

        with self.db.begin() as session:
            if idempotency_key:  # a retry after a lost reply gets the original answer
                done = recorded_command(session, inbox, idempotency_key, "create_lead")
                if done:
                    outcome, _, lead_id = done.partition(":")
                    return {"outcome": outcome,
                            "lead": lead_to_dict(session.get(Lead, lead_id))}
            identity = domain.LeadIdentity(
                "", fields_.get("email"), fields_.get("phone"), fields_.get("company")
            )
            matches, owners = self._find_duplicates(session, identity)
            # Only what the caller's scope shows is named; merging needs edit rights.
            merge_into = domain.resolve_duplicates(matches, owners, scope, on_duplicate)
            if merge_into is not None:
                lead = session.get(Lead, merge_into, with_for_update=True)
                self._absorb(lead, fields_)
                self._history(session, lead, "merged", {"incoming": data})
                self._rescore(session, lead, "merged")
                self.events.record(
                    session, "lead_merged", {"lead": lead_to_dict(lead), "source_id": None}
                )
                if idempotency_key:
                    record_command(session, inbox, idempotency_key, "create_lead",
                                   f"merged:{lead.id}")
                return {"outcome": "merged", "lead": lead_to_dict(lead)}

            now = utcnow()
            key = domain.company_key(fields_["company"]) if fields_.get("company") else None
            lead = Lead(
                id=str(uuid.uuid4()),
                **fields_,
                company_key=key or None,
                company_block=(key or "")[:2] or None,
                status="new",
                score=0,
                score_breakdown={},
                owner_id=owner_id,
                claimed_at=now if owner_id else None,
                created_at=now,
                updated_at=now,
            )
            # Scored first, so the row is inserted once with its score; inserted without the
            # ORM's unit of work (it is new: nothing to track), as history rows are.
            self._rescore(session, lead, None)
            insert_object(session, lead)
            self._history(session, lead, "created", {"source": lead.source})
            snapshot = lead_to_dict(lead)
            self.events.record(
                session,
                "lead_created",
                {"lead": snapshot, "duplicate_of": [m.lead_id for m in matches]},
            )
            self._record_qualification(session, lead, None)
            if idempotency_key:
                record_command(session, inbox, idempotency_key, "create_lead",
                               f"created:{lead.id}")
            return {"outcome": "created", "lead": snapshot}

    @staticmethod
    def _find_duplicates(
        session: Session, identity: domain.LeadIdentity
    ) -> tuple[list[domain.DuplicateMatch], dict[str, str | None]]:
        """The matches, best first, and the owner of each candidate (for visibility)."""
        block = domain.company_key(identity.company)[:2] if identity.company else None
        rows = session.connection().execute(
            DUPLICATE_CANDIDATES,
            {"email": identity.email, "phone": identity.phone, "block": block or None},
        ).all()
        existing = [domain.LeadIdentity(*row[:4]) for row in rows]
        owners = {row[0]: row[4] for row in rows}
        return domain.find_duplicates(identity, existing), owners

    @staticmethod
    def _absorb(lead: Lead, incoming: dict[str, Any]) -> None:
        """Fill what the lead lacks from a duplicate; never overwrite what is stored."""
        for field in ("company", "title", "email", "phone", "region", "industry", "campaign"):
            if not getattr(lead, field) and incoming.get(field):
                setattr(lead, field, incoming[field])
        lead.product_interest = sorted(
            set(lead.product_interest or []) | set(incoming.get("product_interest") or [])
        )
        lead.attributes = {**(incoming.get("attributes") or {}), **(lead.attributes or {})}
        lead.updated_at = utcnow()

    # -- reads -----------------------------------------------------------------------------

    @rpc
    def get_lead(self, lead_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            lead = self._visible_lead(session, lead_id, scope)
            behaviours = session.scalars(
                select(Behaviour)
                .where(Behaviour.lead_id == lead.id)
                .order_by(Behaviour.occurred_at.desc())
                .limit(100)
            ).all()
            history = session.scalars(
                select(HistoryEntry)
                .where(HistoryEntry.lead_id == lead.id)
                .order_by(HistoryEntry.id.desc())
                .limit(200)
            ).all()
            result = lead_to_dict(lead)
            if lead.merged_into_id:  # the lead it went into is named only to who may see it
                into = session.get(Lead, lead.merged_into_id)
                if into is None or not domain.lead_visible(into.owner_id, scope):
                    result["merged_into_id"] = None
            result["score_breakdown"] = lead.score_breakdown
            result["behaviours"] = [
                {"type": b.type, "occurred_at": b.occurred_at.isoformat(),
                 "attributes": b.attributes}
                for b in behaviours
            ]
            result["history"] = [
                {"kind": h.kind, "data": h.data, "actor": h.actor, "at": h.at.isoformat(),
                 "correlation_id": h.correlation_id}
                for h in history
            ]
            return result

    @rpc
    def list_leads(
        self,
        filters: dict | None = None,
        scope: dict | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        filters = load(filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(Lead).where(Lead.merged_into_id.is_(None), self._scope_clause(scope))
        for field in ("status", "owner_id", "source", "qualification"):
            if field in filters:
                query = query.where(getattr(Lead, field) == filters[field])
        if "in_pool" in filters:
            query = query.where(
                Lead.owner_id.is_(None) if filters["in_pool"] else Lead.owner_id.is_not(None)
            )
        if "score_min" in filters:
            query = query.where(Lead.score >= filters["score_min"])
        if "score_max" in filters:
            query = query.where(Lead.score <= filters["score_max"])
        if "created_from" in filters:
            query = query.where(Lead.created_at >= filters["created_from"])
        if "created_to" in filters:
            query = query.where(Lead.created_at < filters["created_to"])
        for term in domain.search_terms(filters.get("q", "")):
            pattern = f"%{escape_like(term)}%"
            query = query.where(
                or_(Lead.name.ilike(pattern, escape="\\"), Lead.company.ilike(pattern, escape="\\"))
            )
        query = page_after(query, Lead.created_at, Lead.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            leads = session.scalars(query).all()
        return page_of(leads, page["limit"], "created_at", lead_to_dict)

    # -- changes ---------------------------------------------------------------------------

    @rpc
    def record_behaviour(
        self, lead_id: str, behaviour: dict, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        fields_ = load(behaviour_schema, behaviour)
        occurred_at = fields_["occurred_at"] or utcnow()
        with self.db.begin() as session:
            lead = self._visible_lead(session, lead_id, scope, lock=True)
            session.add(
                Behaviour(lead_id=lead.id, type=fields_["type"], occurred_at=occurred_at,
                          attributes=fields_["attributes"])
            )
            lead.last_activity_at = max(lead.last_activity_at or occurred_at, occurred_at)
            session.flush()
            self.events.record(
                session,
                "lead_behaviour_recorded",
                {"lead": lead_to_dict(lead), "behaviour_type": fields_["type"],
                 "occurred_at": occurred_at.isoformat()},
            )
            previous = lead.qualification
            self._rescore(session, lead, f"behaviour:{fields_['type']}")
            self._record_qualification(session, lead, previous)
            return lead_to_dict(lead)

    @rpc
    def change_status(
        self, lead_id: str, status: str, reason: str | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.begin() as session:
            lead = self._visible_lead(session, lead_id, scope, lock=True)
            domain.check_status_change(lead.status, status, reason)
            previous = lead.status
            lead.status = status
            lead.disqualify_reason = reason if status == "disqualified" else None
            lead.updated_at = lead.last_activity_at = utcnow()
            self._history(session, lead, "status_changed",
                          {"from": previous, "to": status, "reason": reason})
            self.events.record(
                session,
                "lead_status_changed",
                {"lead": lead_to_dict(lead), "status": status, "previous_status": previous,
                 "reason": reason},
            )
            return lead_to_dict(lead)

    @event_handler("sales", "lead_converted")
    def on_sales_lead_converted(self, envelope: dict[str, Any]) -> None:
        """The sales service turned the lead into a customer, contact and opportunity: the lead
        shows it, whatever its status was (sales is where conversion is decided)."""
        data = envelope["data"]
        with self.db.begin() as session:
            if not first_delivery(session, inbox, envelope["event_id"], "on_sales_lead_converted"):
                return
            lead = session.get(Lead, data["lead_id"])
            if lead is None or lead.status == "converted":
                log.warning("lead_converted for %s: no such lead or already converted",
                            data["lead_id"])
                return
            previous = lead.status
            lead.status = "converted"
            lead.conversion = {
                "customer_id": data.get("customer_id"),
                "contact_id": data.get("contact_id"),
                "opportunity_id": data.get("opportunity_id"),
                "converted_by": data.get("converted_by"),
                "converted_at": envelope["occurred_at"],
            }
            lead.updated_at = lead.last_activity_at = utcnow()
            self._history(session, lead, "converted", {"from": previous, **lead.conversion})
            self.events.record(
                session,
                "lead_status_changed",
                {"lead": lead_to_dict(lead), "status": "converted", "previous_status": previous,
                 "reason": "converted by sales"},
            )

    @rpc
    def claim_lead(
        self, lead_id: str, user_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if not isinstance(user_id, str) or not user_id:
            raise ValidationFailed.for_fields({"user_id": ["a user id is required"]})
        with self.db.begin() as session:
            # A lead owned by someone the caller cannot see is hidden: 404 as a missing one,
            # so a claim does not tell that it exists (or who holds it).
            lead = self._visible_lead(session, lead_id, scope, lock=True)
            if not scope["all"] and user_id not in scope["owner_ids"]:
                raise Forbidden("you may claim leads only for yourself")
            domain.check_claim(lead.owner_id, lead.status, user_id,
                               reveal_owner=domain.lead_visible(lead.owner_id, scope))
            lead.owner_id = user_id
            lead.claimed_at = lead.updated_at = utcnow()
            self._history(session, lead, "claimed", {"owner_id": user_id})
            self.events.record(
                session, "lead_claimed", {"lead": lead_to_dict(lead), "owner_id": user_id}
            )
            return lead_to_dict(lead)

    @rpc
    def release_lead(
        self, lead_id: str, reason: str | None = None, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.begin() as session:
            lead = self._visible_lead(session, lead_id, scope, lock=True)
            actor = self.context.actor or ""
            domain.check_release(lead.owner_id, actor, scope["all"] or bool(scope["owner_ids"]))
            previous = lead.owner_id
            lead.owner_id = None
            lead.claimed_at = None
            lead.updated_at = utcnow()
            self._history(session, lead, "released", {"previous_owner_id": previous,
                                                      "reason": reason})
            self.events.record(
                session,
                "lead_released",
                {"lead": lead_to_dict(lead), "previous_owner_id": previous, "reason": reason},
            )
            return lead_to_dict(lead)

    @rpc
    def assign_lead(
        self, lead_id: str, owner_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if not isinstance(owner_id, str) or not owner_id:
            raise ValidationFailed.for_fields({"owner_id": ["a user id is required"]})
        with self.db.begin() as session:
            lead = self._visible_lead(session, lead_id, scope, lock=True)
            # The gateway checks the assignee too; this keeps every caller (rules acting for
            # a manager included) to assignees inside its scope.
            if not scope["all"] and owner_id not in scope["owner_ids"]:
                raise Forbidden("leads can be assigned only to users within your scope")
            if lead.owner_id == owner_id:
                return lead_to_dict(lead)
            previous = lead.owner_id
            lead.owner_id = owner_id
            lead.claimed_at = lead.updated_at = utcnow()
            self._history(session, lead, "assigned",
                          {"owner_id": owner_id, "previous_owner_id": previous})
            self.events.record(
                session,
                "lead_assigned",
                {"lead": lead_to_dict(lead), "owner_id": owner_id, "previous_owner_id": previous},
            )
            return lead_to_dict(lead)

    @rpc
    def merge_leads(
        self, target_id: str, source_id: str, scope: dict | None = None
    ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if target_id == source_id:
            raise ValidationFailed.for_fields({"source_id": ["cannot merge a lead into itself"]})
        with self.db.begin() as session:
            # Both are looked up before any other answer: a hidden one is a 404 like a missing
            # one, whichever of the two it is.
            # Locked in id order, so that two merges of the same pair cannot deadlock.
            for lead_id in sorted(i for i in {target_id, source_id} if isinstance(i, str)):
                session.get(Lead, lead_id, with_for_update=True)
            target = self._visible_lead(session, target_id, scope, "id")
            source = self._visible_lead(session, source_id, scope, "source_id")
            for lead, field in ((target, "id"), (source, "source_id")):
                if not domain.may_merge(lead.owner_id, scope):
                    raise Forbidden(
                        f"you may not merge lead {lead.id}: claim it from the public pool first",
                        {"field": field},
                    )
            for lead, field in ((target, "id"), (source, "source_id")):
                if lead.merged_into_id:
                    self._already_merged(session, lead, field, scope)
            self._absorb(target, lead_to_dict(source))
            session.execute(
                update(Behaviour).where(Behaviour.lead_id == source.id).values(lead_id=target.id)
            )
            source.merged_into_id = target.id
            source.updated_at = utcnow()
            self._history(session, target, "merged", {"source_id": source.id})
            self._history(session, source, "merged_into", {"target_id": target.id})
            previous = target.qualification
            self._rescore(session, target, "merged")
            self._record_qualification(session, target, previous)
            self.events.record(
                session, "lead_merged", {"lead": lead_to_dict(target), "source_id": source.id}
            )
            return lead_to_dict(target)

    # -- scoring model ---------------------------------------------------------------------

    @rpc
    def get_scoring_model(self) -> dict[str, Any]:
        with self.db.read() as session:
            return copy.deepcopy(self._scoring_model(session))

    @rpc
    def set_scoring_model(self, model: dict) -> dict[str, Any]:
        if not isinstance(model, dict):
            raise ValidationFailed.for_fields({"_schema": ["expected a JSON object"]})
        model = domain.validate_scoring_model(model)
        with self.db.begin() as session:
            current = session.scalar(select(func.max(ScoringModelVersion.version)))
            model["version"] = (current or DEFAULT_MODEL["version"]) + 1
            session.add(ScoringModelVersion(version=model["version"], model=model,
                                            created_at=utcnow(), actor=self.context.actor))
            leads = session.scalars(
                select(Lead).where(Lead.merged_into_id.is_(None),
                                   Lead.status.not_in(CLOSED_STATUSES))
            )
            rescored = 0
            for index, lead in enumerate(leads, 1):
                if index % 5000 == 0:  # a large base takes a while: show progress
                    log.info("scoring model %s: %s leads rescored so far", model["version"], index)
                previous = lead.qualification
                if self._rescore(session, lead, "model_changed", model):
                    rescored += 1
                self._record_qualification(session, lead, previous)
            self.events.record(session, "scoring_model_changed",
                               {"version": model["version"], "rescored": rescored})
            return model

    # -- helpers ---------------------------------------------------------------------------

    def _scoring_model(self, session: Session) -> dict[str, Any]:
        return scoring_models.current(session)

    def _rescore(
        self, session: Session, lead: Lead, reason: str | None, model: dict | None = None
    ) -> bool:
        """Recompute the score; record history and `lead_scored` when it moved.

        `reason` None is the first scoring of a new lead: no behaviours yet, no event of its
        own (lead_created carries the score)."""
        model = model or self._scoring_model(session)
        behaviours = [] if reason is None else session.scalars(
            select(Behaviour.type).where(Behaviour.lead_id == lead.id)
        ).all()
        fields_ = {column.key: getattr(lead, column.key) for column in Lead.__table__.columns}
        result = domain.score_lead(fields_, behaviours, model)
        previous = lead.score
        lead.score = result.total
        lead.score_breakdown = {**result.to_dict(), "model_version": model.get("version", 0)}
        lead.qualification = domain.upgraded_qualification(
            lead.qualification, result.total, model["thresholds"]
        )
        if reason is None or previous == result.total:
            return False
        lead.updated_at = utcnow()
        self._history(session, lead, "scored",
                      {"from": previous, "to": result.total, "reason": reason})
        self.events.record(
            session,
            "lead_scored",
            {"lead": lead_to_dict(lead), "score": result.total, "previous_score": previous,
             "reason": reason},
        )
        return True

    def _record_qualification(self, session: Session, lead: Lead, previous: str | None) -> None:
        if lead.qualification == previous:
            return
        self._history(session, lead, "qualified",
                      {"from": previous, "to": lead.qualification, "score": lead.score})
        self.events.record(
            session,
            "lead_qualified",
            {"lead": lead_to_dict(lead), "qualification": lead.qualification,
             "previous_qualification": previous},
        )

    def _history(self, session: Session, lead: Lead, kind: str, data: dict[str, Any]) -> None:
        # The lead's row exists (create_lead inserts it first); history is only ever added.
        insert_object(session, HistoryEntry(
            lead_id=lead.id, kind=kind, data=data, actor=self.context.actor,
            correlation_id=self.context.correlation_id, at=utcnow()))

    def _visible_lead(
        self, session: Session, lead_id: str, scope: dict, field: str = "lead_id",
        lock: bool = False,
    ) -> Lead:
        """The lead if the caller may see it; otherwise the same NotFound as for a missing
        one (same detail, same field), so nothing tells that it exists.

        `lock` for a change: the row is locked (PostgreSQL; SQLite has one writer anyway) so
        that two claims of one pool lead cannot both succeed, the second overwriting the
        first; the second waits and then sees the lead owned."""
        lead = (session.get(Lead, lead_id, with_for_update=lock)
                if isinstance(lead_id, str) else None)
        if lead is None or not domain.lead_visible(lead.owner_id, scope):
            raise NotFound(f"lead {lead_id} not found", {"field": field})
        return lead

    @staticmethod
    def _already_merged(session: Session, lead: Lead, field: str, scope: dict) -> None:
        """Conflict for a lead that was merged before; the lead it went into is named only
        when the caller may see it."""
        into = session.get(Lead, lead.merged_into_id)
        if into is not None and domain.lead_visible(into.owner_id, scope):
            raise Conflict(f"lead {lead.id} was already merged into {into.id}",
                           {"field": field, "existing_id": into.id})
        raise Conflict(f"lead {lead.id} was already merged into another lead",
                       {"field": field, "existing_id": None})

    @staticmethod
    def _scope_clause(scope: dict):
        if scope["all"]:
            return Lead.id.is_not(None)
        clauses = [Lead.owner_id.in_(scope["owner_ids"])] if scope["owner_ids"] else []
        if scope["include_pool"]:
            clauses.append(Lead.owner_id.is_(None))
        return or_(*clauses) if clauses else Lead.id.is_(None)
