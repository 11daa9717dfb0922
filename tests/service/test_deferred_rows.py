"""`shared.db.defer_insert` on SQLite and PostgreSQL: rows go in at commit, grouped by table
and columns, and a rollback forgets them."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from shared.db import DatabaseAccess, defer_insert
from tests.service.workers import tables_database

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True),
              Column("name", String(20)), Column("note", String(20), default="none"))
tags = Table("tags", metadata, Column("id", Integer, primary_key=True), Column("tag", String(20)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> DatabaseAccess:
    return tables_database(request, tmp_path, metadata)


def rows(db: DatabaseAccess, table: Table) -> list[tuple]:
    with db.read() as session:
        return [tuple(row) for row in session.execute(select(table).order_by(table.c.id))]


def test_deferred_rows_are_inserted_at_commit_with_their_defaults(db):
    with db.begin() as session:
        defer_insert(session, items, {"id": 1, "name": "a"})
        defer_insert(session, tags, {"id": 1, "tag": "x"})
        defer_insert(session, items, {"id": 2, "name": "b", "note": "given"})  # other columns
        defer_insert(session, items, {"id": 3, "name": "c"})
        # not yet written: like the unit of work's flush, they go in at the commit
        assert session.scalar(select(func.count()).select_from(items)) == 0
    assert rows(db, items) == [(1, "a", "none"), (2, "b", "given"), (3, "c", "none")]
    assert rows(db, tags) == [(1, "x")]


def test_a_rollback_forgets_deferred_rows(db):
    with db._factory() as session:  # one session, two transactions
        with pytest.raises(RuntimeError), session.begin():
            defer_insert(session, items, {"id": 1, "name": "lost"})
            raise RuntimeError("the change fails")
        with session.begin():
            defer_insert(session, items, {"id": 1, "name": "kept"})
    assert rows(db, items) == [(1, "kept", "none")]
