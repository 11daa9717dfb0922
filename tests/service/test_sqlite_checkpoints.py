"""SQLite's write-ahead log is copied into the database by a thread of its own, not by the
commit that happens to fill it, and it starts anew under steady writes."""

from __future__ import annotations

import shutil
import sqlite3
import time

from sqlalchemy import text

from shared.db import _Checkpointer, make_engine


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def rows_in_the_database_file(path, tmp_path) -> int:
    """The rows the database file holds without its WAL."""
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as connection:
        try:
            return connection.execute("SELECT count(*) FROM t").fetchone()[0]
        except sqlite3.OperationalError:  # not even the table yet
            return 0


def test_the_wal_is_checkpointed_by_its_own_thread_not_by_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(_Checkpointer, "INTERVAL", 0.05)
    path = tmp_path / "service.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            _Checkpointer.FALLBACK_PAGES)
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    for n in range(50):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"row {n}"})
    assert wait_until(lambda: rows_in_the_database_file(path, tmp_path) == 50)
    engine.dispose()


def test_under_steady_writes_the_wal_starts_anew(tmp_path, monkeypatch):
    monkeypatch.setattr(_Checkpointer, "INTERVAL", 0.05)
    monkeypatch.setattr(_Checkpointer, "RESTART_PAGES", 100)
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # about 3 pages a commit, without a pause
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 9000})
    with engine.begin() as connection:
        written = connection.execute(text("SELECT count(*) FROM t")).scalar() * 3
    wal_pages = (path.parent / "busy.db-wal").stat().st_size // 4096
    assert written > 3000 and wal_pages < written / 3, (written, wal_pages)
    engine.dispose()


def test_the_thread_ends_with_its_database_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_Checkpointer, "INTERVAL", 0.05)
    path = tmp_path / "gone.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    time.sleep(0.3)  # the thread has seen the file
    assert str(path) in _Checkpointer._started
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"gone.db{suffix}").unlink(missing_ok=True)
    assert wait_until(lambda: str(path) not in _Checkpointer._started)
