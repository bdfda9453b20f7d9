"""Engines and transactions. SQLite gets WAL, foreign keys, a busy timeout and one writer at a time
(a process lock in front of ``BEGIN IMMEDIATE``: SQLite's own busy handler sleeps and backs off,
which is ruinous under in-process contention)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine


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
        # JSON columns keep sorted keys: undo writes rows back from (key-sorted) audit images, and a
        # restored row must equal the original byte for byte.
        kwargs["json_serializer"] = _sorted_json
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        self._local = threading.local()
        self._writers: list[Connection] = []
        self._write_lock: contextlib.AbstractContextManager[Any]
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            self._write_lock = threading.Lock()
        else:
            self._write_lock = contextlib.nullcontext()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.contextmanager
    def connect(self, *, write: bool) -> Iterator[Connection]:
        """A connection whose next ``begin()`` takes the write lock up front when ``write``.

        On SQLite a writing thread keeps one connection: a connection that did the last write starts
        the next with its page cache still valid, where a pooled one would re-read it."""
        if write and self.is_sqlite:
            with self._write_lock:
                conn = getattr(self._local, "writer", None)
                if conn is None or conn.closed or conn.invalidated:
                    conn = self._local.writer = self.engine.connect()
                    self._writers.append(conn)
                conn.info["krabs_write"] = True
                try:
                    yield conn
                finally:
                    if conn.in_transaction():
                        conn.rollback()
            return
        lock = self._write_lock if write else contextlib.nullcontext()
        with lock, self.engine.connect() as conn:
            conn.info["krabs_write"] = write
            yield conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        with self.connect(write=write) as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        for conn in self._writers:
            with contextlib.suppress(Exception):
                conn.close()
        self._writers.clear()
        self.engine.dispose()


def _sorted_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


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
            "PRAGMA cache_size=-65536",
            "PRAGMA temp_store=MEMORY",
        ):
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("krabs_write") else "BEGIN")
