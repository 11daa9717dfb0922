"""SQL of custom-field values: a value typed for comparison on either database, and the
WHERE clauses of custom-field filters (`{"<key>[__op]": value}`) on customers, contacts and
opportunities.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Integer, Numeric, cast, func, literal, or_, select

from services.sales.numbers.domain import custom_fields as cf


def custom_value_expr(model: Any, key: str, type_: str, dialect: str) -> Any:
    """SQL expression of one custom value, typed for comparison, on either database."""
    column = model.custom
    if dialect == "postgresql":
        text = column.op("->>")(key)
    else:
        text = func.json_extract(column, f'$."{key}"')
    if type_ == "number":
        return cast(text, Integer)
    if type_ == "decimal":
        return cast(text, Numeric(30, 10) if dialect == "postgresql" else Float)
    return text



def custom_filter_clause(
    model: Any, definitions: list[dict[str, Any]], filters: dict[str, Any], dialect: str
) -> list[Any]:
    """WHERE clauses for custom-field filters on `model` (Customer, Contact, Opportunity):
    `filters` is {"<key>": value} or {"<key>__<op>": value}, op in eq, ne, gte, lte, in,
    contains (multi-choice: holds the option), exists. Raises ValidationFailed naming
    `custom.<key>`."""
    clauses = []
    for definition, op, value in cf.parse_filters(definitions, filters):
        key, type_ = definition["key"], definition["type"]
        if op == "exists":
            expr = custom_value_expr(model, key, "text" if type_ == "multi_choice" else type_,
                                     dialect)
            clauses.append(expr.is_not(None) if value else expr.is_(None))
            continue
        if type_ == "multi_choice" or op == "contains":
            if type_ == "multi_choice":
                clauses.append(_json_array_contains(model, key, value, dialect))
            else:
                expr = custom_value_expr(model, key, "text", dialect)
                clauses.append(expr.contains(str(value)))
            continue
        expr = custom_value_expr(model, key, type_, dialect)
        typed = _typed(type_, value, dialect)
        if type_ == "boolean" and op in ("eq", "ne"):
            clause = _json_bool(model, key, dialect)
            clauses.append(clause if value == (op == "eq") else ~clause)
            continue
        if op == "eq":
            clauses.append(expr == typed)
        elif op == "ne":
            clauses.append(or_(expr != typed, expr.is_(None)))
        elif op == "gte":
            clauses.append(expr >= typed)
        elif op == "lte":
            clauses.append(expr <= typed)
        elif op == "in":
            clauses.append(expr.in_([_typed(type_, v, dialect) for v in value]))
    return clauses


def _typed(type_: str, value: Any, dialect: str) -> Any:
    if type_ == "decimal":
        return Decimal(value) if dialect == "postgresql" else float(value)
    return value


def _json_bool(model: Any, key: str, dialect: str) -> Any:
    if dialect == "postgresql":
        return model.custom.op("->>")(key) == "true"
    # SQLite's json_extract gives 1 / 0 for true / false
    return func.json_extract(model.custom, f'$."{key}"') == 1


def _json_array_contains(model: Any, key: str, option: str, dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        # the column is json (not jsonb): containment needs the cast
        return cast(model.custom, JSONB).op("->")(key).op("@>")(func.jsonb_build_array(option))
    each = func.json_each(model.custom, f'$."{key}"').table_valued("value")
    return select(literal(1)).select_from(each).where(each.c.value == option).exists()
