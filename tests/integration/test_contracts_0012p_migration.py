"""Migration 0012p of the contracts service (c-receipts) over rows stored before it, on SQLite
and PostgreSQL: receipts get `source` (erp from the inbox's ERP references or the outbox's
`receipt_recorded`) and the payer's name, signed contracts whose order came from a quote get
`quote_id`, free-form clauses become {code, title, text} with the old list kept; the
downgrade puts the clauses back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text

from shared.db import make_engine
from shared.inbox import command_id
from shared.migrations import alembic_config

NOW = datetime(2026, 12, 1, tzinfo=UTC)
OLD_CLAUSES = [{"title": "保密", "text": "双方保密"}, {"code": "pay", "content": "30 日内"},
               {"name": "违约", "penalty": "10%"}]
CANONICAL = [{"code": "warranty", "title": "质保", "text": "一年"}]


def contract_row(conn, cid: str, number: str, status: str, clauses: list) -> None:
    conn.execute(text(
        "INSERT INTO contracts (id, number, status, title, customer_id, owner_id, amount, "
        "currency, parties, clauses, created_at, updated_at) VALUES (:id, :number, :status, "
        "'t', 'cust', 'rep', '100.00', 'CNY', '[]', :clauses, :now, :now)"),
        {"id": cid, "number": number, "status": status, "clauses": json.dumps(clauses),
         "now": NOW})


def receipt_row(conn, rid: str, cid: str, reference: str | None) -> None:
    conn.execute(text(
        "INSERT INTO contract_receipts (id, contract_id, amount, received_on, method, "
        "reference, allocations, created_at) VALUES (:id, :cid, '1.00', '2026-12-01', 'erp', "
        ":reference, '[]', :now)"), {"id": rid, "cid": cid, "reference": reference, "now": NOW})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0012p_over_stored_rows(backend, tmp_path, request):
    url = (f"sqlite:///{tmp_path}/contracts.db" if backend == "sqlite"
           else request.getfixturevalue("pg_url_factory")())
    config = alembic_config("contracts", url)
    command.upgrade(config, "0009ca")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            contract_row(conn, "c-old", "HT-2026-000001", "active", OLD_CLAUSES)
            contract_row(conn, "c-ok", "HT-2026-000002", "draft", CANONICAL)
            receipt_row(conn, "r-erp", "c-old", "ERP-1")
            receipt_row(conn, "r-outbox", "c-old", "ERP-2")
            receipt_row(conn, "r-user", "c-old", "BANK-9")
            conn.execute(text(
                "INSERT INTO inbox (event_id, handler, processed_at) VALUES (:id, :h, :now)"),
                {"id": command_id("erp.payment_received:ERP-1"),
                 "h": "contracts.erp.payment_received:reference", "now": NOW})
            envelope = {"event_type": "receipt_recorded", "data": {
                "receipt": {"id": "r-outbox"}, "source": "erp", "payer": " 苏州精工 "}}
            conn.execute(text(
                "INSERT INTO outbox (event_id, event_type, envelope, created_at) VALUES "
                "('e-1', 'receipt_recorded', :env, :now)"),
                {"env": json.dumps(envelope, ensure_ascii=False), "now": NOW})
            conn.execute(text(
                "INSERT INTO contract_orders (id, number, contract_id, customer_id, amount, "
                "currency, lines, source, status, created_at, updated_at) VALUES ('o-1', "
                "'SO-2026-000001', 'c-old', 'cust', '100.00', 'CNY', '[]', :source, "
                "'created', :now, :now)"),
                {"source": json.dumps({"kind": "quote", "quote_id": "q-1",
                                       "quote_version": 2}), "now": NOW})
        command.upgrade(config, "0012p")
        with engine.connect() as conn:
            receipts = dict(((r, (s, p)) for r, s, p in conn.execute(text(
                "SELECT id, source, payer_name FROM contract_receipts"))))
            contracts = {cid: (qid, json.loads(c) if isinstance(c, str) else c,
                               json.loads(o) if isinstance(o, str) else o)
                         for cid, qid, c, o in conn.execute(text(
                             "SELECT id, quote_id, clauses, clauses_original FROM contracts"))}
        assert receipts == {"r-erp": ("erp", None), "r-outbox": ("erp", "苏州精工"),
                            "r-user": ("user", None)}
        assert contracts["c-old"][0] == "q-1" and contracts["c-ok"][0] is None
        assert contracts["c-old"][1] == [
            {"code": "clause-1", "title": "保密", "text": "双方保密"},
            {"code": "pay", "title": None, "text": "30 日内"},
            {"code": "clause-3", "title": "违约",
             "text": json.dumps({"name": "违约", "penalty": "10%"}, ensure_ascii=False,
                                sort_keys=True)}]
        assert contracts["c-old"][2] == OLD_CLAUSES
        assert contracts["c-ok"][1] == CANONICAL and contracts["c-ok"][2] is None
        command.downgrade(config, "0009ca")
        with engine.connect() as conn:
            (clauses,) = conn.execute(text(
                "SELECT clauses FROM contracts WHERE id = 'c-old'")).one()
        assert (json.loads(clauses) if isinstance(clauses, str) else clauses) == OLD_CLAUSES
    finally:
        engine.dispose()
