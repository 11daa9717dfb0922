"""`python -m services.gateway.seed`: the demo organisation, idempotently.

Prints {username: {id, role, api_key}} as JSON. Ids and keys are kept in
`<data dir>/demo-credentials.json` so every run (and `make run`) hands out the same ones.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from services.gateway.identity.api_keys import generate_api_key, hash_api_key
from services.gateway.identity.directory import DirectoryEvents
from services.gateway.identity.models import ApiKey, Team, User
from services.gateway.identity.passwords import password_method
from services.gateway.store import Store, new_id
from shared import config as shared_config
from shared.migrations import upgrade

DEMO_PASSWORD = "demo-password"
EAST, SOUTH = "华东销售部", "华南销售部"

# username, display name, role, team
DEMO_USERS: tuple[tuple[str, str, str, str | None], ...] = (
    ("admin", "系统管理员", "admin", None),
    ("manager", "王经理", "manager", EAST),
    ("zhangwei", "张伟", "sales_rep", EAST),
    ("lina", "李娜", "sales_rep", EAST),
    ("chenjing", "陈静", "sales_rep", SOUTH),
    ("liuyang", "刘洋", "service_agent", None),
)
TEAM_MANAGERS = {EAST: "manager", SOUTH: None}


def credentials_path() -> Path:
    return shared_config.data_dir() / "demo-credentials.json"


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
    os.replace(tmp, path)


def _team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
    return team


def _user(session: Session, known: dict[str, Any], username: str, display_name: str,
          role: str, team_id: str | None) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(
            id=known.get("id") or new_id(),
            username=username,
            display_name=display_name,
            email=f"{username}@demo.crm.local",
            password_hash=generate_password_hash(DEMO_PASSWORD, method=password_method()),
            role=role,
            team_id=team_id,
            active=True,
        )
        session.add(user)
    else:
        user.role, user.team_id, user.active = role, team_id, True
    session.flush()
    return user


def _api_key(session: Session, user: User, known_key: str | None) -> str:
    if known_key:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(known_key)))
        if row is not None and row.revoked_at is None and row.user_id == user.id:
            return known_key
    key, prefix, key_hash = generate_api_key()
    session.add(ApiKey(user_id=user.id, name="demo", prefix=prefix, key_hash=key_hash))
    return key


def seed(store: Store | None = None, directory: DirectoryEvents | None = None
         ) -> dict[str, dict[str, Any]]:
    """Create or refresh the demo organisation; every user and team is announced again
    (`user_changed`, `team_changed`) so that a consumer that started empty catches up."""
    path = credentials_path()
    known = _load(path)
    store = store or Store()
    events = DirectoryEvents.recorder(None)
    result: dict[str, dict[str, Any]] = {}
    with store.begin() as session:
        teams = {name: _team(session, name) for name in TEAM_MANAGERS}
        for username, display_name, role, team_name in DEMO_USERS:
            team_id = teams[team_name].id if team_name else None
            entry = known.get(username, {})
            user = _user(session, entry, username, display_name, role, team_id)
            result[username] = {
                "id": user.id,
                "role": user.role,
                "api_key": _api_key(session, user, entry.get("api_key")),
            }
        for name, manager in TEAM_MANAGERS.items():
            teams[name].manager_id = result[manager]["id"] if manager else None
        session.flush()
        for team in teams.values():
            DirectoryEvents.record_team(events, session, team)
        for user in session.scalars(select(User).order_by(User.username)):
            DirectoryEvents.record_user(events, session, user)
    _save(path, result)
    if directory is not None:
        directory.publish(events)
    return result


def main() -> None:
    upgrade("gateway")
    store = Store()
    directory = DirectoryEvents(store)
    try:
        result = seed(store, directory)
    finally:
        directory.close()
        store.dispose()
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
