"""Each service's migrations create exactly what its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db import make_engine
from shared.migrations import migrated_services, upgrade

SERVICES = migrated_services()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(service, backend, tmp_path, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/{service}.db"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    upgrade(service, url)
    upgrade(service, url)  # a second run is a no-op
    metadata = importlib.import_module(f"services.{service}.models").metadata
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
