"""Alembic per service: `python -m shared.migrations leads gateway` upgrades each to head
(every service with migrations/ when none is named).

Each service keeps `migrations/` (env.py calls `run_env` with the service's metadata).
"""

from __future__ import annotations

import sys

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from shared import config
from shared.db import make_engine, normalise_url


def alembic_config(service: str, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(config.PROJECT_ROOT / "services" / service / "migrations")
    )
    cfg.set_main_option("sqlalchemy.url", normalise_url(url or config.database_url(service)))
    return cfg


def upgrade(service: str, url: str | None = None) -> None:
    command.upgrade(alembic_config(service, url), "head")


def include_name(metadata: MetaData):
    """Autogenerate's filter: leaves out the tables a service's migrations make by hand and its
    models do not map (`metadata.info["migration_only_tables"]`, e.g. a full-text index: an FTS5
    virtual table on SQLite, with its `<name>_*` shadow tables)."""
    hand_made = tuple(metadata.info.get("migration_only_tables", ()))

    def include(name: str | None, type_: str, parent_names: dict) -> bool:
        table = name if type_ == "table" else parent_names.get("table_name")
        return not any(table == t or (table or "").startswith(t + "_") for t in hand_made)

    return include


def run_env(metadata: MetaData) -> None:
    """The body of a service's migrations/env.py."""
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, statement_timeout=0)  # a migration may rewrite a big table
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=include_name(metadata),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def migrated_services() -> list[str]:
    """Every service that keeps migrations/, in name order."""
    return sorted(p.parent.name for p in (config.PROJECT_ROOT / "services").glob("*/migrations"))


if __name__ == "__main__":
    for name in sys.argv[1:] or migrated_services():
        upgrade(name)
        print(f"migrated {name}")
