"""The statement timeout of every database connection (shared/db.py): a runaway statement is
cancelled on SQLite (progress handler) and PostgreSQL (`statement_timeout`), a transaction
may narrow it, and the connection serves the next statement."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.db import is_statement_timeout, limit_statements, make_engine

# counts for ever (on PostgreSQL until the timeout, well before an integer overflow)
FOREVER = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT count(*) FROM c")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/timeout.db"
    return request.getfixturevalue("pg_url_factory")()


def test_a_runaway_statement_is_cancelled_and_the_connection_goes_on(url):
    engine = make_engine(url, statement_timeout=0.3)
    try:
        with engine.connect() as connection:
            with pytest.raises(OperationalError) as err:
                connection.execute(text(FOREVER))
            assert is_statement_timeout(err.value)
            connection.rollback()
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_transaction_narrows_the_timeout_and_the_default_comes_back(url):
    engine = make_engine(url, statement_timeout=30)
    try:
        with Session(engine) as session:
            limit_statements(session, 0.2)
            with pytest.raises(OperationalError) as err:
                session.execute(text(FOREVER))
            assert is_statement_timeout(err.value)
            session.rollback()
            # a new transaction: quick statements run under the default again
            assert session.execute(text("SELECT 2")).scalar() == 2
            session.commit()
        assert not is_statement_timeout(ValueError("interrupted"))
    finally:
        engine.dispose()
