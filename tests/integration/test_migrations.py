"""Each service's migrations create exactly what its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from shared import config
from shared.db import make_engine
from shared.migrations import include_name, migrated_services, upgrade

SERVICES = migrated_services()


def models_metadata(service: str) -> MetaData:
    """The metadata of a service's models.py, with the tables its parts add to it (the sales
    numbers' services/sales/numbers/models.py): the core's models do not import them."""
    for path in sorted((config.PROJECT_ROOT / "services" / service).glob("*/models.py")):
        importlib.import_module(f"services.{service}.{path.parent.name}.models")
    return importlib.import_module(f"services.{service}.models").metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(service, backend, tmp_path, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/{service}.db"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    upgrade(service, url)
    upgrade(service, url)  # a second run is a no-op
    metadata = models_metadata(service)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "include_name": include_name(metadata)})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
