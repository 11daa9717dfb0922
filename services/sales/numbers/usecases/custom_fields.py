"""Custom field definitions (define, change, list) and what the core's writes and lists use:
the entity's definitions, the uniqueness check, and the WHERE clauses of custom filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.sales.models import Contact, Customer, Opportunity
from services.sales.numbers.contract import ENTITIES
from services.sales.numbers.domain import custom_fields as cf
from services.sales.numbers.models import CustomFieldDefinition
from services.sales.numbers.queries.custom_filters import custom_filter_clause, custom_value_expr
from shared.db import DatabaseAccess
from shared.errors import Conflict, NotFound, ValidationFailed

MODEL_OF: dict[str, Any] = {"customer": Customer, "contact": Contact, "opportunity": Opportunity}


def define(db: DatabaseAccess, data: dict) -> dict[str, Any]:
    definition = cf.validate_definition(data)
    now = datetime.now(UTC)
    with db.begin() as session:
        taken = session.scalar(select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.entity == definition["entity"],
            CustomFieldDefinition.key == definition["key"]))
        if taken:
            raise Conflict(f"{definition['entity']} already has a field {definition['key']}",
                           {"field": "key", "existing_id": taken})
        row = CustomFieldDefinition(id=str(uuid.uuid4()), created_at=now, updated_at=now,
                                    **_columns(definition))
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"{definition['entity']} already has a field "
                           f"{definition['key']}", {"field": "key"}) from None
        return row.to_dict()


def update(db: DatabaseAccess, field_id: str, data: dict) -> dict[str, Any]:
    with db.begin() as session:
        row = session.get(CustomFieldDefinition, field_id) if isinstance(field_id, str) else None
        if row is None:
            raise NotFound(f"custom field {field_id} not found", {"field": "field_id"})
        definition = cf.validate_definition(data, existing=row.to_dict() | {
            "created_at": None, "updated_at": None, "id": None})
        for name, value in _columns(definition).items():
            setattr(row, name, value)
        row.updated_at = datetime.now(UTC)
        return row.to_dict()


def list_fields(
    db: DatabaseAccess, entity: str | None, include_inactive: bool
) -> list[dict[str, Any]]:
    if entity is not None and entity not in ENTITIES:
        raise ValidationFailed.for_fields({"entity": [f"must be one of {', '.join(ENTITIES)}"]})
    with db.read() as session:
        return [d for e in ([entity] if entity else ENTITIES)
                for d in load_field_definitions(session, e, include_inactive=include_inactive)]


def _columns(definition: dict[str, Any]) -> dict[str, Any]:
    columns = {k: v for k, v in definition.items() if k not in ("min", "max")}
    columns["min_value"], columns["max_value"] = definition["min"], definition["max"]
    return columns


def load_field_definitions(
    session: Session, entity: str, *, include_inactive: bool = False
) -> list[dict[str, Any]]:
    """The entity's custom field definitions in display order (active ones unless asked)."""
    query = select(CustomFieldDefinition).where(CustomFieldDefinition.entity == entity)
    if not include_inactive:
        query = query.where(CustomFieldDefinition.active.is_(True))
    query = query.order_by(CustomFieldDefinition.position, CustomFieldDefinition.key)
    return [row.to_dict() for row in session.scalars(query)]


def custom_clauses(session: Session, entity: str, custom: dict[str, Any] | None) -> list[Any]:
    """WHERE clauses for `custom` filters ({"<key>[__op]": value}) on an entity's records;
    a bad key, operator or value raises ValidationFailed naming `custom.<key>`."""
    if not custom:
        return []
    definitions = load_field_definitions(session, entity, include_inactive=True)
    return custom_filter_clause(MODEL_OF[entity], definitions, custom,
                                session.get_bind().dialect.name)


def check_unique(
    session: Session,
    entity: str,
    cleaned: dict[str, Any],
    record_id: str | None,
    definitions: list[dict[str, Any]] | None = None,
) -> None:
    """`ValidationFailed` naming `custom.<key>` when another record of the entity already
    holds a value of a unique custom field. The message names no record (the other one may be
    outside the caller's view)."""
    if definitions is None:
        definitions = load_field_definitions(session, entity)
    model = MODEL_OF[entity]
    dialect = session.get_bind().dialect.name
    errors: dict[str, list[str]] = {}
    for definition in definitions:
        key = definition["key"]
        if not definition.get("unique") or cleaned.get(key) is None:
            continue
        value = cleaned[key]
        expr = custom_value_expr(model, key, definition["type"], dialect)
        if definition["type"] not in ("number", "decimal"):
            compare = str(value)
        else:
            compare = value if definition["type"] == "number" else float(value) \
                if dialect != "postgresql" else Decimal(value)
        query = select(model.id).where(expr == compare)
        if record_id is not None:
            query = query.where(model.id != record_id)
        if hasattr(model, "merged_into_id"):
            query = query.where(model.merged_into_id.is_(None))
        other = session.scalar(query.limit(1))
        if other is not None:
            # Neither the other record's id nor its value: it may be outside the caller's view.
            errors[f"custom.{key}"] = [f"must be unique: another {entity} already has this value"]
    if errors:
        raise ValidationFailed.for_fields(errors)
