"""Revision 0003 of the sales service re-keys stored customers with the shared kernel's company
key (the leads service's), on SQLite and PostgreSQL; its frozen key function agrees with the
service's."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import insert, select

from services.sales.domain import accounts
from services.sales.models import Customer
from shared import config
from shared.db import make_engine
from shared.migrations import alembic_config, upgrade
from tests.unit.test_sales_domain import SAME_COMPANY_NAMES

pytestmark = pytest.mark.integration

REVISION = config.PROJECT_ROOT / "services/sales/migrations/versions/0003_name_keys.py"


def frozen_revision():
    spec = importlib.util.spec_from_file_location("sales_0003_name_keys", REVISION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_frozen_key_is_the_services_key():
    revision = frozen_revision()
    for name in [*SAME_COMPANY_NAMES, "", "  ", "株式会社", "北京", "中国平安保险（集团）"]:
        assert revision.name_key(name) == accounts.name_key(name), name
        assert revision.name_block(revision.name_key(name)) == accounts.name_block(
            accounts.name_key(name))


def test_the_frozen_revision_imports_no_service_code():
    text = REVISION.read_text()
    assert "import services" not in text and "from services" not in text
    assert "from shared" not in text and "import shared" not in text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_stored_customers_are_rekeyed(backend, tmp_path, request):
    url = (f"sqlite:///{tmp_path}/sales.db" if backend == "sqlite"
           else request.getfixturevalue("pg_url_factory")())
    command.upgrade(alembic_config("sales", url), "0002")
    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Customer.__table__), [
                {"id": f"c{index:04d}", "name": name, "name_key": "stale", "name_block": "st",
                 "lifecycle_stage": "prospect", "tags": [], "custom": {}, "created_at": now,
                 "updated_at": now}
                for index, name in enumerate(SAME_COMPANY_NAMES)
            ])
        upgrade("sales", url)
        with engine.connect() as connection:
            rows = connection.execute(select(Customer.name, Customer.name_key,
                                             Customer.name_block)).all()
    finally:
        engine.dispose()
    assert len(rows) == len(SAME_COMPANY_NAMES)
    for name, key, block in rows:
        assert (key, block) == (accounts.name_key(name),
                                accounts.name_block(accounts.name_key(name))), name
