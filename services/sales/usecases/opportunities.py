"""Opportunities: open, change, move through the stages (won, lost), read, list, the kanban."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.sales.domain import accounts
from services.sales.domain import pipeline as stages_domain
from services.sales.models import (
    Contact,
    Customer,
    Followup,
    Opportunity,
    Stage,
    StageHistory,
    inbox,
)
from services.sales.numbers.usecases.custom_fields import custom_clauses
from services.sales.usecases import customers, pipelines, publish
from services.sales.usecases.common import (
    Ports,
    apply_fields,
    check_owner,
    custom_values,
    new_id,
    record_clause,
    visible_customer,
    visible_opportunity,
)
from services.sales.usecases.views import (
    active_stages,
    money_map,
    opportunity_to_dict,
    stage_info,
    stage_map,
    stage_to_dict,
)
from shared import config
from shared.envelope import utcnow
from shared.errors import ValidationFailed
from shared.inbox import first_command
from shared.paging import escape_like, page_after, page_of

LIST_FILTERS = ("customer_id", "pipeline_id", "stage_id", "status", "owner_id", "team_id",
                "source", "lead_id")
CENTS = Decimal("0.01")


def create(ports: Ports, values: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """A new opportunity in the pipeline's first stage, or in a later open stage when the
    exit criteria of the stages before it hold."""
    with ports.db.begin() as session:
        customer = visible_customer(session, values["customer_id"], scope, reference=True)
        owner_id = values.pop("owner_id") or ports.actor
        check_owner(owner_id, scope)
        if values.get("contact_id"):
            contact_of(session, values["contact_id"], customer.id)
        values["custom"] = custom_values(session, "opportunity", values.get("custom") or {},
                                         None, None, False)
        opportunity = new_opportunity(ports, session, customer, values, owner_id)
        snapshot = opportunity_to_dict(opportunity, session.get(Stage, opportunity.stage_id))
        ports.events.record(session, "opportunity_created", {"opportunity": snapshot})
        return snapshot


def refuse_stage_fields(data: Any) -> None:
    """Stages change by a move, where the exit criteria are checked, never by an update."""
    if isinstance(data, dict) and ("stage_id" in data or "status" in data):
        field = "stage_id" if "stage_id" in data else "status"
        raise ValidationFailed.for_fields({field: [
            "stages change through move_opportunity (POST /opportunities/<id>/move), "
            "where the exit criteria are checked"]})


def change(ports: Ports, opportunity_id: str, values: dict[str, Any],
           scope: dict[str, Any]) -> dict[str, Any]:
    with ports.db.begin() as session:
        opportunity = visible_opportunity(session, opportunity_id, scope)
        if "owner_id" in values:
            check_owner(values["owner_id"], scope)
        if values.get("contact_id"):
            contact_of(session, values["contact_id"], opportunity.customer_id)
        if "custom" in values:
            values["custom"] = custom_values(session, "opportunity", values["custom"],
                                             opportunity.custom, opportunity.id, True)
        if "amount" in values and values["amount"] is not None:
            values["amount"] = Decimal(values["amount"]).quantize(CENTS)
        changed = apply_fields(opportunity, values)
        stage = session.get(Stage, opportunity.stage_id)
        if changed:
            opportunity.updated_at = utcnow()
            publish.opportunity_updated(ports.events, session, opportunity, stage, changed)
        return opportunity_to_dict(opportunity, stage)


def read(ports: Ports, opportunity_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The opportunity with its stage history (when each stage was entered and left)."""
    with ports.db.read() as session:
        opportunity = visible_opportunity(session, opportunity_id, scope)
        stages = stage_map(session)
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


def list_page(ports: Ports, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    query = page_after(query_of(filters, scope), Opportunity.created_at, Opportunity.id,
                       page["cursor"], page["limit"])
    with ports.db.read() as session:
        query = query.where(*custom_clauses(session, "opportunity", filters.get("custom")))
        rows = session.scalars(query).all()
        stages = stage_map(session)
    return page_of(rows, page["limit"], "created_at",
                   lambda o: opportunity_to_dict(o, stages.get(o.stage_id)))


def move(ports: Ports, opportunity_id: str, wanted: dict[str, Any],
         scope: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    """Move to another stage of the opportunity's pipeline (the kanban drag; the rules use it
    too). Refused with PreconditionFailed listing `missing` exit criteria; won and lost need a
    reason. The stage history gets the stage left and the stage entered. A repeat with the
    same `command_id` does nothing and answers the opportunity as it is now."""
    with ports.db.begin() as session:
        repeat = command_id is not None and not first_command(
            session, inbox, command_id, "move_opportunity", opportunity_id)
        opportunity = visible_opportunity(session, opportunity_id, scope)
        if repeat:
            return opportunity_to_dict(opportunity, session.get(Stage, opportunity.stage_id))
        stages = session.scalars(select(Stage).where(
            Stage.pipeline_id == opportunity.pipeline_id)).all()
        activities = [
            stages_domain.Activity(kind, tuple(tags or ()))
            for kind, tags in session.execute(select(Followup.kind, Followup.tags)
                                              .where(Followup.opportunity_id == opportunity.id))
        ]
        now = utcnow()
        moved = stages_domain.move(opportunity, [stage_info(s) for s in stages],
                                   wanted["stage_id"], activities, wanted["reason"], now)
        target = next(s for s in stages if s.id == opportunity.stage_id)
        if moved is None:
            return opportunity_to_dict(opportunity, target)
        session.execute(update(StageHistory).where(
            StageHistory.opportunity_id == opportunity.id, StageHistory.left_at.is_(None)
        ).values(left_at=now))
        session.add(StageHistory(opportunity_id=opportunity.id, stage_id=target.id,
                                 entered_at=now, moved_by=ports.actor))
        snapshot = opportunity_to_dict(opportunity, target)
        ports.events.record(session, "opportunity_stage_changed", {
            "opportunity": snapshot, "from_stage_id": moved.left.id,
            "to_stage_id": moved.entered.id, "from_stage": moved.left.name,
            "to_stage": moved.entered.name, "reason": wanted["reason"],
        })
        if moved.closed:
            ports.events.record(session, f"opportunity_{moved.closed}", {
                "opportunity": snapshot, "reason": opportunity.won_lost_reason,
            })
        if moved.closed == "won":
            customers.promote_on_win(ports, session, opportunity.customer_id)
        return snapshot


def board(ports: Ports, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """The kanban: one column per stage of the pipeline (default: the default pipeline) with
    its count, amounts per currency, weighted amounts and the newest cards."""
    per_stage = filters.pop("per_stage")
    include_closed = filters.pop("include_closed")
    with ports.db.read() as session:
        pipeline = (pipelines.find(session, filters["pipeline_id"], reference=True)
                    if filters.get("pipeline_id") else pipelines.default_pipeline(session))
        filters["pipeline_id"] = pipeline.id
        stages = active_stages(session, pipeline.id)
        if not include_closed:
            stages = [s for s in stages if s.kind == "open"]
        base = query_of(filters, scope)
        sums = session.execute(
            select(Opportunity.stage_id, Opportunity.currency, func.count(),
                   func.sum(Opportunity.amount))
            .where(base.whereclause).group_by(Opportunity.stage_id, Opportunity.currency)
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
                "amounts": money_map(amounts.get(stage.id, {})),
                "weighted_amounts": money_map(weighted),
                "items": [opportunity_to_dict(o, stage) for o in cards],
            })
        return {
            "pipeline": {"id": pipeline.id, "name": pipeline.name,
                         "is_default": pipeline.is_default},
            "columns": columns,
            "open_totals": {"amounts": money_map(totals),
                            "weighted_amounts": money_map(weighted_totals)},
        }


# -- shared with the other use cases ----------------------------------------------------------


def query_of(filters: dict[str, Any], scope: dict[str, Any]) -> Any:
    query = select(Opportunity).where(record_clause(Opportunity, scope))
    for field in LIST_FILTERS:
        if field in filters:
            query = query.where(getattr(Opportunity, field) == filters[field])
    if "close_from" in filters:
        query = query.where(Opportunity.expected_close_date >= filters["close_from"])
    if "close_to" in filters:
        query = query.where(Opportunity.expected_close_date <= filters["close_to"])
    for term in accounts.search_terms(filters.get("q", "")):
        query = query.where(Opportunity.name.ilike(f"%{escape_like(term)}%", escape="\\"))
    return query


def contact_of(session: Session, contact_id: str, customer_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None or contact.customer_id != customer_id:
        raise ValidationFailed.for_fields({"contact_id": ["not a contact of this customer"]})
    return contact


def new_opportunity(ports: Ports, session: Session, customer: Customer, values: dict[str, Any],
                    owner_id: str | None) -> Opportunity:
    pipeline = (pipelines.find(session, values["pipeline_id"], reference=True)
                if values.get("pipeline_id") else pipelines.default_pipeline(session))
    amount = values.get("amount")
    now = utcnow()
    opportunity = Opportunity(
        id=new_id(), customer_id=customer.id, contact_id=values.get("contact_id"),
        pipeline_id=pipeline.id, name=values["name"],
        amount=None if amount is None else Decimal(amount).quantize(CENTS),
        currency=values.get("currency") or config.default_currency(),
        expected_close_date=values.get("expected_close_date"), owner_id=owner_id,
        team_id=values.get("team_id") or customer.team_id,
        products=values.get("products") or [], competitors=values.get("competitors") or [],
        source=values.get("source") or customer.source,
        campaign=values.get("campaign") or customer.campaign, lead_id=values.get("lead_id"),
        status="open", custom=values.get("custom") or {}, stage_entered_at=now,
        created_at=now, updated_at=now,
    )
    start = stages_domain.starting_stage(
        [stage_info(s) for s in active_stages(session, pipeline.id)], values.get("stage_id"),
        stages_domain.criteria_view(opportunity))
    opportunity.stage_id = start.id
    session.add(opportunity)
    session.flush()
    session.add(StageHistory(opportunity_id=opportunity.id, stage_id=start.id, entered_at=now,
                             moved_by=ports.actor))
    return opportunity
