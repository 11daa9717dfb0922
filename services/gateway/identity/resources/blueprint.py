"""The identity blueprint, and what its routes share: the answers for users, teams and keys,
the problems they raise and paging by a sort key."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.gateway.identity.directory import user_fields
from services.gateway.identity.models import ApiKey, Team, User
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem

blp = Blueprint("identity", __name__, description="Authentication, users, teams and API keys.")


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise validation_problem({"cursor": ["Not a cursor from this list."]}) from None


def page(rows: list[Any], limit: int, sort_value: Any) -> tuple[list[Any], str | None]:
    """`limit + 1` rows were fetched: the extra one says whether another page exists."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(sort_value(rows[-1]))


def user_dict(user: User) -> dict[str, Any]:
    return {**user_fields(user), "created_at": user.created_at}


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "user_id": key.user_id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


def team_dict(session: Session, team: Team) -> dict[str, Any]:
    members = session.scalars(select(User.id).where(User.team_id == team.id).order_by(User.id))
    return {
        "id": team.id,
        "name": team.name,
        "manager_id": team.manager_id,
        "member_ids": list(members),
        "created_at": team.created_at,
    }


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, f"{what} not found.", type_=PROBLEM_BASE + "not-found")


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, detail, type_=PROBLEM_BASE + "forbidden")
