"""Engines and transactions. SQLite gets WAL, foreign keys, a busy timeout and one writer at a time
(a process lock in front of ``BEGIN IMMEDIATE``: SQLite's own busy handler sleeps and backs off,
which is ruinous under in-process contention).

Group commit: inside ``Store.batch()`` every connection the batching thread asks for is the batch's
one connection, already in its transaction, and every transaction begun on it is a SAVEPOINT. So a
call runs exactly as it would alone (it sees the writes of the calls before it, and its failure
rolls back only its own savepoint), while the batch pays for one ``COMMIT``."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from krabs.store.checkpointer import WalCheckpointer

log = logging.getLogger("krabs.store")

#: ``conn.info`` key of a group commit's memo (``Store.batch_memo``).
BATCH_MEMO = "krabs_batch_memo"


def _forget_memo(conn: Connection, *_args: Any) -> None:
    memo = conn.info.get(BATCH_MEMO)
    if memo:
        memo.clear()


class WriterBusy(Exception):
    """SQLite's single writer is held by a long transaction (an import): the caller's small write
    would wait for all of it."""


class _WriteLock:
    """The process lock in front of SQLite's writer, knowing since when it is held: a caller with
    a write that can wait (a read's run event) asks ``acquire_unless_busy`` instead of queueing
    behind a minutes-long import."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._since = 0.0
        self._on_release = on_release

    def __enter__(self) -> None:
        self._lock.acquire()
        self._since = time.monotonic()

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        self._since = 0.0
        self._lock.release()
        self._on_release()

    def acquire_unless_busy(self, patience: float, long_hold: float) -> bool:
        """Take the lock if it is free within ``patience`` seconds, or not at all when its holder
        has already held it ``long_hold`` seconds (it is in a long transaction)."""
        if self._lock.acquire(blocking=False):
            self._since = time.monotonic()
            return True
        since = self._since
        if since and time.monotonic() - since >= long_hold:
            return False
        if self._lock.acquire(timeout=patience):
            self._since = time.monotonic()
            return True
        return False


def _normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """One database: an engine plus the write discipline of its dialect."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = _normalize_url(url)
        self.dialect = sa.engine.make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        elif self.dialect == "sqlite":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 4)
            # The driver's per-connection cache of parsed statements (128 by default): a write
            # runs ~16 of them and the whole registry several hundred; a miss re-parses the SQL.
            kwargs["connect_args"] = {"cached_statements": 1024}
        # JSON columns keep sorted keys: undo writes rows back from (key-sorted) audit images, and a
        # restored row must equal the original byte for byte.
        kwargs["json_serializer"] = _sorted_json
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        self._local = threading.local()
        self._writers: list[Connection] = []
        #: Run with SQLite's writer held, on the writing connection, before it begins (see
        #: ``add_before_write``).
        self._before_write: list[Callable[[Connection], None]] = []
        #: SQLite's single writer, taken in this process before its write transactions begin
        #: (PostgreSQL has none: concurrent writers are its own business).
        self._sqlite_lock: _WriteLock | None = None
        self.checkpointer: WalCheckpointer | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            self.checkpointer = WalCheckpointer(self.engine.raw_connection)
            self._sqlite_lock = _WriteLock(self.checkpointer.written)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.contextmanager
    def connect(self, *, write: bool) -> Iterator[Connection]:
        """A connection whose next ``begin()`` takes the write lock up front when ``write``.

        On SQLite a writing thread keeps one connection: a connection that did the last write starts
        the next with its page cache still valid, where a pooled one would re-read it. Inside a
        ``batch()`` this thread gets the batch's connection, for reads too."""
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            yield batch
            return
        if write and self._sqlite_lock is not None:
            with self._sqlite_lock:
                conn = self._writer()
                self._run_before_write(conn)
                try:
                    yield conn
                finally:
                    if conn.in_transaction():
                        conn.rollback()
            return
        with self.engine.connect() as conn:
            conn.info["krabs_write"] = write
            yield conn

    def add_before_write(self, hook: Callable[[Connection], None]) -> None:
        """On SQLite, ``hook(conn)`` runs whenever a writer takes the database, before its own
        transaction begins: work deferred while a long transaction held it goes first (the run
        event spool). A hook must not raise."""
        if self.is_sqlite:
            self._before_write.append(hook)

    def _run_before_write(self, conn: Connection) -> None:
        for hook in self._before_write:
            hook(conn)

    def _writer(self) -> Connection:
        conn: Connection | None = getattr(self._local, "writer", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.writer = self.engine.connect()
            self._writers.append(conn)
        conn.info["krabs_write"] = True
        return conn

    def begin(self, conn: Connection) -> Any:
        """Begin on ``conn``: a transaction, or a SAVEPOINT inside a batch's transaction. Either
        way the returned object's ``commit()``/``rollback()`` settle just this unit."""
        if not conn.in_transaction():
            return conn.begin()
        if self.is_sqlite:
            return Savepoint(conn)
        return conn.begin_nested()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        with self.connect(write=write) as conn, self.begin(conn):
            yield conn

    @contextlib.contextmanager
    def transaction_unless_busy(
        self, *, patience: float = 1.0, long_hold: float = 0.2
    ) -> Iterator[Connection]:
        """A write transaction, unless SQLite's writer is held by a long transaction (held for
        ``long_hold`` seconds already, or not free within ``patience``): then ``WriterBusy`` is
        raised before anything is written. For writes that may be deferred, such as a read's run
        event during an import; elsewhere (PostgreSQL, inside a batch) a plain ``transaction``."""
        lock = self._sqlite_lock
        if lock is None or getattr(self._local, "batch", None) is not None:
            with self.transaction(write=True) as conn:
                yield conn
            return
        if not lock.acquire_unless_busy(patience, long_hold):
            raise WriterBusy("the database's writer is held by a long transaction")
        try:
            conn = self._writer()
            self._run_before_write(conn)
            try:
                with conn.begin():
                    yield conn
            finally:
                if conn.in_transaction():
                    conn.rollback()
        finally:
            lock.release()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once what this thread wrote is durable: now, or when its batch commits (it is
        dropped if the batch fails, because then nothing it describes happened)."""
        hooks: list[Callable[[], None]] | None = getattr(self._local, "after_commit", None)
        if hooks is None:
            fn()
        else:
            hooks.append(fn)

    @staticmethod
    def batch_memo(conn: Connection) -> dict[Any, Any] | None:
        """Inside a group commit, a dict for facts the batch's calls can pass on to the next
        (the audit head each write moved), or None. No other writer can change the database
        while the batch holds it; every rollback on the connection (a call's savepoint, a nested
        one, the batch) empties it, so what it holds is always what the database holds."""
        memo: dict[Any, Any] | None = conn.info.get(BATCH_MEMO)
        return memo

    @contextlib.contextmanager
    def batch(self) -> Iterator[Callable[[], bool]]:
        """One SQLite write transaction for many calls (group commit); see the module docstring.
        Yields ``intact()``: false once SQLite has rolled the transaction back on its own (disk
        full, I/O error), after which further statements would autocommit one by one. Raises if the
        batch cannot commit, and then nothing of it was written."""
        assert self._sqlite_lock is not None, "group commit is for SQLite's single writer"
        hooks: list[Callable[[], None]] = []
        with self._sqlite_lock:
            conn = self._writer()
            self._run_before_write(conn)
            tx = conn.begin()
            raw = conn.connection.dbapi_connection
            assert raw is not None

            def intact() -> bool:
                return bool(raw.in_transaction)

            self._local.batch, self._local.after_commit = conn, hooks
            conn.info[BATCH_MEMO] = {}
            try:
                yield intact
                self._local.batch = self._local.after_commit = None
                if not intact():
                    raise RuntimeError("SQLite rolled the batch's transaction back")
                tx.commit()
            finally:
                self._local.batch = self._local.after_commit = None
                conn.info.pop(BATCH_MEMO, None)
                if conn.in_transaction():
                    conn.rollback()
        for fn in hooks:
            try:
                fn()
            except Exception:  # the batch is committed: a failing hook must not undo that
                log.exception("after-commit hook failed")

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        for conn in self._writers:
            with contextlib.suppress(Exception):
                conn.close()
        self._writers.clear()
        self.engine.dispose()


_sorted_encoder = json.JSONEncoder(sort_keys=True)


def _sorted_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)``, by one encoder instead of a new one per value."""
    return _sorted_encoder.encode(value)


class Savepoint:
    """A SAVEPOINT issued on the driver: SQLAlchemy's ``begin_nested`` compiles and executes two
    statements through its full machinery, which costs more than the rest of a small write's SQL.
    Used (on SQLite) for each call in a group commit; nests correctly with ``begin_nested``.

    Named by nesting depth on its connection, not uniquely: the same few SQL texts stay in the
    driver's statement cache instead of being parsed anew for every call. Releasing one releases
    any left open inside it (SQLite's rule), so the depth is reset to the released one's."""

    _DEPTH = "krabs_savepoint_depth"

    def __init__(self, conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        self._raw, self._info = raw, conn.connection.info
        self._depth = int(self._info.get(self._DEPTH, 0)) + 1
        self._name = f"krabs_sp_{self._depth}"
        self._active = True
        raw.execute(f"SAVEPOINT {self._name}")
        self._info[self._DEPTH] = self._depth

    def _release(self) -> None:
        self._active = False
        self._raw.execute(f"RELEASE SAVEPOINT {self._name}")
        self._info[self._DEPTH] = self._depth - 1

    def commit(self) -> None:
        if self._active:
            self._release()

    def rollback(self) -> None:
        if self._active:
            self._raw.execute(f"ROLLBACK TO SAVEPOINT {self._name}")
            self._release()
            memo = self._info.get(BATCH_MEMO)
            if memo:
                memo.clear()

    def __enter__(self) -> Savepoint:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


def _fold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None


def contains_ci(column: Any, pattern: str, dialect: str) -> Any:
    """Case-insensitive LIKE for any script: SQLite's own ``lower``/``LIKE`` fold only ASCII, so on
    SQLite both sides go through Python's ``casefold`` (registered on every connection)."""
    if dialect == "sqlite":
        return sa.func.krabs_fold(column).like(pattern.casefold(), escape="\\")
    return column.ilike(pattern, escape="\\")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        dbapi_conn.create_function("krabs_fold", 1, _fold, deterministic=True)
        cur = dbapi_conn.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
            "PRAGMA wal_autocheckpoint=0",  # checkpoints run off the write path: checkpointer.py
            "PRAGMA cache_size=-65536",
            "PRAGMA temp_store=MEMORY",
            # Deleted and overwritten content is zeroed, not left in free space: a GDPR erasure
            # must not leave the erased bytes in the file.
            "PRAGMA secure_delete=ON",
        ):
            cur.execute(pragma)
        cur.close()

    # SQLAlchemy's own rollbacks (a nested ``begin_nested`` in a handler, a whole transaction)
    # empty a group commit's memo like ``Savepoint.rollback`` does.
    event.listen(engine, "rollback", _forget_memo)
    event.listen(engine, "rollback_savepoint", _forget_memo)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("krabs_write") else "BEGIN")
        conn.info[Savepoint._DEPTH] = 0  # whatever a failed transaction left is gone with it
