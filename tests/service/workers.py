"""A nameko worker of a service over a real database, for service tests: the real database
dependency and the real outbox recorder, with the given call context."""

from __future__ import annotations

from typing import Any

from nameko.testing.services import worker_factory
from sqlalchemy import Engine, MetaData, Table
from sqlalchemy.orm import sessionmaker

from shared.context import Context
from shared.db import DatabaseAccess, get_engine
from shared.migrations import upgrade
from shared.outbox import EventRecorder


def service_worker(service_cls: type, engine: Engine, outbox: Table, schemas: dict,
                   ctx: Context, **dependencies: Any) -> Any:
    return worker_factory(
        service_cls,
        db=DatabaseAccess(sessionmaker(engine, expire_on_commit=False)),
        events=EventRecorder(service_cls.name, outbox, schemas, ctx),
        context=ctx,
        **dependencies,
    )


def database_url(request: Any, tmp_path: Any, name: str) -> str:
    """A fresh database: SQLite, or PostgreSQL when the test is parametrised with
    "postgresql"."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.db"
    return request.getfixturevalue("pg_url_factory")()


def migrated_database(request: Any, tmp_path: Any, service: str) -> str:
    """The URL of a migrated database of `service` (see `database_url`)."""
    url = database_url(request, tmp_path, service)
    upgrade(service, url)
    return url


def tables_database(request: Any, tmp_path: Any, metadata: MetaData) -> DatabaseAccess:
    """Database access to a fresh database (see `database_url`) with `metadata`'s tables."""
    engine = get_engine(database_url(request, tmp_path, "tables"))
    metadata.create_all(engine)
    return DatabaseAccess(sessionmaker(engine, expire_on_commit=False))
