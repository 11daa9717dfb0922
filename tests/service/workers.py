"""A nameko worker of a service over a real database, for service tests: the real database
dependency and the real outbox recorder, with the given call context."""

from __future__ import annotations

from typing import Any

from nameko.testing.services import worker_factory
from sqlalchemy import Engine, Table
from sqlalchemy.orm import sessionmaker

from shared.context import Context
from shared.db import DatabaseAccess
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


def migrated_database(request: Any, tmp_path: Any, service: str) -> str:
    """The URL of a migrated database of `service`: SQLite, or PostgreSQL when the test is
    parametrised with "postgresql"."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/{service}.db"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    upgrade(service, url)
    return url
