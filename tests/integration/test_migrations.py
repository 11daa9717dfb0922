"""Each service's migrations create exactly what its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.orm import Session

from services.contracts.models import Instalment, Receipt
from shared import config
from shared.db import make_engine
from shared.migrations import alembic_config, include_name, migrated_services, upgrade

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


# Migration 0010r: the contracts' instalment and receipt amounts, decimal strings until
# 0009ca, become numbers (NUMERIC(20, 2) / integer cents) exactly, and go back to the same
# strings on the downgrade.

MONEY_ROWS = {"inst-1": ("1234.56", "0.01"), "inst-2": ("99999999999999.99", "12.30"),
              "inst-3": ("0.10", "0.00")}
RECEIPT_ROWS = {"rec-1": "0.01", "rec-2": "100000.00", "rec-3": "33.33"}


def _contracts_url(backend: str, tmp_path, request) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/contracts.db"
    return request.getfixturevalue("pg_url_factory")()


def _seed_string_amounts(connection, instalments: dict, receipts: dict) -> None:
    for row_id, (amount, paid) in instalments.items():
        connection.execute(text(
            "INSERT INTO contract_instalments (id, contract_id, seq, due_date, amount, paid, "
            "status) VALUES (:id, 'c-1', 1, '2027-01-15', :amount, :paid, 'partly_paid')"),
            {"id": row_id, "amount": amount, "paid": paid})
    for row_id, amount in receipts.items():
        connection.execute(text(
            "INSERT INTO contract_receipts (id, contract_id, amount, received_on, "
            "allocations, created_at) VALUES (:id, 'c-1', :amount, '2027-01-20', '[]', "
            ":now)"), {"id": row_id, "amount": amount, "now": datetime.now(UTC)})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_contracts_money_columns_convert_exactly_up_and_down(backend, tmp_path, request):
    url = _contracts_url(backend, tmp_path, request)
    cfg = alembic_config("contracts", url)
    command.upgrade(cfg, "0009ca")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _seed_string_amounts(connection, MONEY_ROWS, RECEIPT_ROWS)
        command.upgrade(cfg, "0010r")
        with engine.connect() as connection:
            stored = connection.execute(text(
                "SELECT id, amount, paid FROM contract_instalments ORDER BY id")).all()
            total = connection.execute(text(
                "SELECT sum(amount) FROM contract_receipts")).scalar_one()
        if backend == "sqlite":  # integer cents
            assert [tuple(r) for r in stored] == [
                ("inst-1", 123456, 1), ("inst-2", 9999999999999999, 1230), ("inst-3", 10, 0)]
            assert total == 10003334
        else:
            assert [tuple(r) for r in stored] == [
                (i, Decimal(a), Decimal(p)) for i, (a, p) in sorted(MONEY_ROWS.items())]
            assert total == Decimal("100033.34")
        # the models read them as exact Decimals, sums included
        with Session(engine) as session:
            assert session.get(Instalment, "inst-2").amount == Decimal("99999999999999.99")
            assert session.scalar(select(func.sum(Receipt.amount))) == Decimal("100033.34")
            outstanding = session.scalar(select(func.sum(Instalment.amount - Instalment.paid)))
            # 1234.55 + 99999999999987.69 + 0.10: beyond a float's 15-16 digits, exact
            assert outstanding == Decimal("100000000001222.34")
        command.downgrade(cfg, "0009ca")
        with engine.connect() as connection:
            back = {r[0]: (r[1], r[2]) for r in connection.execute(text(
                "SELECT id, amount, paid FROM contract_instalments"))}
            receipts = {r[0]: r[1] for r in connection.execute(text(
                "SELECT id, amount FROM contract_receipts"))}
        assert back == MONEY_ROWS
        assert receipts == RECEIPT_ROWS
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_contracts_money_migration_refuses_an_amount_it_would_round(backend, tmp_path,
                                                                     request):
    url = _contracts_url(backend, tmp_path, request)
    cfg = alembic_config("contracts", url)
    command.upgrade(cfg, "0009ca")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _seed_string_amounts(connection, {"inst-x": ("10.005", "0.00")}, {})
        with pytest.raises(ValueError, match=r"contract_instalments\.amount of inst-x"):
            command.upgrade(cfg, "0010r")
        with engine.connect() as connection:  # nothing was changed
            assert connection.execute(text(
                "SELECT amount FROM contract_instalments")).scalar_one() == "10.005"
    finally:
        engine.dispose()
