"""The gateway's database: the MetaData and declarative base its tables are declared on (the
identity package's and the gateway's own, see models.py), and the handle to it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from shared import config as shared_config
from shared.db import DatabaseAccess, make_engine
from shared.kernel.naming import service_metadata

# Named constraints keep alembic batch migrations on SQLite deterministic.
metadata = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store(DatabaseAccess):
    """`begin()` and `read()` sessions on the gateway's own database."""

    def __init__(self, url: str | None = None):
        self.url = url or shared_config.database_url("gateway")
        self.engine: Engine = make_engine(self.url)
        self.sessionmaker: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        super().__init__(self.sessionmaker)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return False

    def dispose(self) -> None:
        self.engine.dispose()
