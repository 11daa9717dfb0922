"""SQLite's write-ahead log is copied into the database by a thread of its own, not by the
commit that happens to fill it, and it starts anew under steady writes; with the
`sqlite_checkpoints` fast path off, SQLite checkpoints by itself.

The tests follow the checkpointer by counting its checkpoints, never by the clock: what a
test asserts holds after a checkpoint that began after the writes, however slow the machine.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from eventlet import patcher
from sqlalchemy import text

from shared import fastpaths
from shared.db import _Checkpointer, make_engine

# The checkpointer is an OS thread: waiting for it needs the real threading module, not
# eventlet's green one.
os_threading = patcher.original("threading")
PATIENCE = 120.0  # seconds before a test gives up on a checkpointer that stopped working


class CheckpointCounter:
    """Counts the checkpointer's completed checkpoints per database file (the threads of
    earlier tests' files still run), and waits for the next ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._counts: dict[str, int] = {}
        self._changed = os_threading.Condition()
        checkpoint = _Checkpointer._checkpoint  # bound to the class

        def counted(cls, connection: sqlite3.Connection) -> None:
            checkpoint(connection)
            ((_, _, path),) = connection.execute("PRAGMA database_list").fetchall()
            with self._changed:
                self._counts[path] = self._counts.get(path, 0) + 1
                self._changed.notify_all()

        monkeypatch.setattr(_Checkpointer, "_checkpoint", classmethod(counted))

    def of(self, path) -> int:
        with self._changed:
            return self._counts.get(str(path), 0)

    def wait_for(self, path, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self._counts.get(str(path), 0) >= count,
                                          timeout=PATIENCE), (
                f"the checkpointer of {path} made {self.of(path)} of {count} checkpoints")

    def wait_for_one_begun_now(self, path) -> None:
        """Wait until a checkpoint of `path` that began after this call has finished: the
        one running now may have begun before."""
        self.wait_for(path, self.of(path) + 2)


@pytest.fixture
def checkpoints(monkeypatch: pytest.MonkeyPatch) -> CheckpointCounter:
    monkeypatch.setattr(_Checkpointer, "INTERVAL", 0.05)
    monkeypatch.delenv(fastpaths.SETTING, raising=False)
    return CheckpointCounter(monkeypatch)


def rows_in_the_database_file(path, tmp_path) -> int:
    """The rows the database file holds without its WAL."""
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as connection:
        try:
            return connection.execute("SELECT count(*) FROM t").fetchone()[0]
        except sqlite3.OperationalError:  # not even the table yet
            return 0


def test_the_wal_is_checkpointed_by_its_own_thread_not_by_commits(tmp_path, checkpoints):
    path = tmp_path / "service.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            _Checkpointer.FALLBACK_PAGES)
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    for n in range(50):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"row {n}"})
    checkpoints.wait_for_one_begun_now(path)
    assert rows_in_the_database_file(path, tmp_path) == 50
    engine.dispose()


def wal_restarts(path) -> int:
    """How many times the WAL has started anew: its header's checkpoint sequence number,
    which SQLite raises each time a writer begins the log again from its first frame."""
    try:
        with open(f"{path}-wal", "rb") as wal:
            header = wal.read(16)
    except FileNotFoundError:
        return 0
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else 0


def test_under_steady_writes_the_wal_starts_anew(tmp_path, checkpoints, monkeypatch):
    monkeypatch.setattr(_Checkpointer, "RESTART_PAGES", 100)
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    # Commits without a pause (about 3 pages each) until the WAL has started anew 3 times.
    # A WAL that never restarts grows until the connections' own fallback checkpoint at
    # FALLBACK_PAGES: the writes stop well before that, however slow the machine.
    first = wal_restarts(path)
    commits = 0
    while wal_restarts(path) - first < 3:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 9000})
        commits += 1
        assert commits * 3 < _Checkpointer.FALLBACK_PAGES / 2, (
            f"the WAL started anew {wal_restarts(path) - first} times in {commits} commits, "
            f"with {checkpoints.of(path)} checkpoints")
    engine.dispose()


def test_the_thread_ends_with_its_database_file(tmp_path, checkpoints):
    path = tmp_path / "gone.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    checkpoints.wait_for(path, 1)  # the thread has opened the file
    assert str(path) in _Checkpointer._started
    (thread,) = [t for t in os_threading.enumerate() if t.name == f"sqlite-checkpoint {path}"]
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"gone.db{suffix}").unlink(missing_ok=True)
    thread.join(PATIENCE)
    assert not thread.is_alive()
    assert str(path) not in _Checkpointer._started


def test_with_the_fast_path_off_sqlite_checkpoints_by_itself(tmp_path, monkeypatch):
    monkeypatch.setenv(fastpaths.SETTING, "all,-sqlite_checkpoints")
    path = tmp_path / "plain.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # SQLite's default: the commit that fills the WAL to 1,000 pages checkpoints it.
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    for _ in range(400):  # about 1,200 pages: past one automatic checkpoint
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 9000})
    assert str(path) not in _Checkpointer._started
    assert not [t for t in os_threading.enumerate() if t.name == f"sqlite-checkpoint {path}"]
    # The WAL restarted after SQLite's own checkpoint rather than holding every page.
    assert (path.parent / "plain.db-wal").stat().st_size // 4096 < 1200
    assert rows_in_the_database_file(path, tmp_path) > 0
    engine.dispose()
