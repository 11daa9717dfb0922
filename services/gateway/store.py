"""The gateway's database handle."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from shared import config as shared_config
from shared.db import DatabaseAccess, make_engine


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

