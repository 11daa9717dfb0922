"""Choosing a lead's owner for an `assign` action: the team (by territory, product line or
named), its members with their settings and load, the rotation (domain/assignment.py
chooses)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import assignment
from services.rules.domain.authority import Authority
from services.rules.models import MemberSetting, Rotation
from services.rules.usecases.cached import TeamView, directory
from services.rules.usecases.projections import RECORDS
from services.rules.usecases.support import PermanentFailure
from shared.db import insert_row

ROTATIONS = Rotation.__table__
LAST_CHOSEN = select(ROTATIONS.c.last_user_id).where(ROTATIONS.c.group_key == bindparam("group"))
UPDATE_ROTATION = update(ROTATIONS).where(ROTATIONS.c.group_key == bindparam("group"))
SETTINGS = MemberSetting.__table__
MEMBER_SETTINGS = select(SETTINGS).where(SETTINGS.c.user_id.in_(bindparam("ids", expanding=True)))
OPEN_LEADS_BY_OWNER = (
    select(RECORDS.c.owner_id, func.count())
    .where(RECORDS.c.record_type == "lead", RECORDS.c.is_open.is_(True),
           RECORDS.c.owner_id.in_(bindparam("ids", expanding=True)))
    .group_by(RECORDS.c.owner_id)
)


def assignment_team(action: dict[str, Any], record: dict[str, Any]) -> str | None:
    region = record.get("region")
    territories = action.get("territories") or {}
    if region and region in territories:
        return territories[region]
    lines = action.get("product_lines") or {}
    for product in record.get("product_interest") or []:
        if product in lines:
            return lines[product]
    return action.get("team")


def members(
    session: Session, team: TeamView, roles: list[str], strategy: str = "least_loaded"
) -> list[assignment.Member]:
    """The team's members in `roles` with their settings and, where the choice depends on
    it (least-loaded, or a capacity to respect), their open leads."""
    users = [u for u in directory(session).users.values()
             if u.team_id == team.id and u.role in roles]
    ids = [u.id for u in users]
    connection = session.connection()
    settings = {row.user_id: row for row in connection.execute(MEMBER_SETTINGS, {"ids": ids})}
    loads: dict[str, int] = {}
    if strategy != "round_robin" or any(row.capacity is not None
                                        for row in settings.values()):
        loads = dict(connection.execute(OPEN_LEADS_BY_OWNER, {"ids": ids}).all())
    return [
        assignment.Member(
            user_id=u.id, active=u.active,
            out_of_office_until=settings[u.id].out_of_office_until if u.id in settings
            else None,
            capacity=settings[u.id].capacity if u.id in settings else None,
            load=loads.get(u.id, 0),
        )
        for u in users
    ]


def choose_assignee(
    session: Session, clock: Clock, action: dict[str, Any], record: dict[str, Any],
    commit: bool, authority: Authority | None = None,
) -> dict[str, Any]:
    """The owner the action gives the lead to; `commit` moves the rotation on."""
    team_name = assignment_team(action, record)
    if not team_name:
        raise PermanentFailure(f"no team for region {record.get('region')!r}")
    team = directory(session).team(team_name)
    if team is None:
        raise PermanentFailure(f"team {team_name!r} is not in the directory")
    strategy = action.get("strategy", "round_robin")
    candidates = members(session, team, action.get("roles") or ["sales_rep"], strategy)
    if authority is not None and not authority.is_organisation:
        candidates = [m for m in candidates if m.user_id in authority.owner_ids]
        if not candidates:
            raise PermanentFailure(f"nobody in {team.name} is within the rule's authority "
                                   "(a manager's rules assign within their teams)")
    group = f"team:{team.id}"
    connection = session.connection()
    last = connection.execute(LAST_CHOSEN, {"group": group}).first()
    choice = assignment.choose(candidates, strategy, last.last_user_id if last else None,
                               clock.now())
    if choice.user_id is None:
        raise PermanentFailure(f"{choice.reason} in {team.name}: {choice.skipped}")
    if commit:
        values = {"last_user_id": choice.user_id, "updated_at": clock.now()}
        if last is None:
            insert_row(session, ROTATIONS, {"group_key": group, **values})
        else:
            connection.execute(UPDATE_ROTATION, {"group": group, **values})
    return {"owner_id": choice.user_id, "team": team.name, "reason": choice.reason,
            "skipped": choice.skipped}
