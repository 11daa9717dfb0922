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
