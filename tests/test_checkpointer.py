"""SQLite's WAL checkpoints run off the write path: a COMMIT never copies the log into the database
file; the store's checkpoint thread does, woken by writes, and truncates a large log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from krabs.store import checkpointer
from krabs.store.db import Store

TABLE = sa.Table(
    "t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text)
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/cp.db")
    TABLE.metadata.create_all(s.engine)
    yield s
    s.dispose()


def write_rows(store: Store, n: int, start: int = 0) -> None:
    with store.transaction(write=True) as conn:
        conn.execute(TABLE.insert(), [{"id": start + i, "v": "x" * 500} for i in range(n)])


def log_state(store: Store) -> tuple[int, int]:
    """(frames in the log, frames checkpointed), by a PASSIVE checkpoint of nothing new."""
    raw = store.engine.raw_connection()
    try:
        _busy, frames, done = raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, done
    finally:
        raw.close()


def wait_for(predicate, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_connections_do_not_checkpoint_on_commit(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.checkpointer is not None
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    monkeypatch.setattr(store.checkpointer, "written", lambda: None)  # no thread: commits alone
    db = tmp_path / "cp.db"
    size = db.stat().st_size
    write_rows(store, 12000)  # ~1,500 pages: SQLite's default checkpoints past 1,000
    # All of it is still only in the log: the database file has not grown.
    assert (tmp_path / "cp.db-wal").stat().st_size > 1000 * 4096
    assert db.stat().st_size == size


def test_the_thread_checkpoints_after_writes(store: Store) -> None:
    assert store.checkpointer is not None
    before = store.checkpointer.runs
    write_rows(store, 2000)
    assert wait_for(lambda: store.checkpointer is not None and store.checkpointer.runs > before)
    frames, done = log_state(store)
    assert frames == done  # everything the writes logged is in the database file


def test_a_large_log_is_truncated_once_writes_pause(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The truncate blocks writers while it syncs the file: not while writes keep coming."""
    monkeypatch.setattr(checkpointer, "LARGE_FRAMES", 100)
    monkeypatch.setattr(checkpointer, "IDLE_SECONDS", 0.4)
    write_rows(store, 3000)
    wal = tmp_path / "cp.db-wal"
    # A write every 0.1 s for 1.5 s: the log is checkpointed but never truncated meanwhile.
    for n in range(15):
        write_rows(store, 5, start=10_000 + 5 * n)
        assert wal.stat().st_size > 0
        time.sleep(0.1)
    assert store.checkpointer is not None and store.checkpointer.runs > 1
    # Then no writes: the log is truncated.
    assert wait_for(lambda: not wal.exists() or wal.stat().st_size == 0)


def test_disposing_the_store_stops_the_thread(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/stop.db")
    TABLE.metadata.create_all(s.engine)
    write_rows(s, 10)
    cp = s.checkpointer
    assert cp is not None and cp._daemon.thread is not None
    s.dispose()
    assert not cp._daemon.thread.is_alive()
