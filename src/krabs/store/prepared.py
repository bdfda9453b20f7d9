"""Hot statements compiled once and run straight on the DBAPI cursor.

SQLAlchemy spends ~40 µs of Python per execution (execution context, parameter processing, result
setup) around a ~10 µs SQLite insert; a write runs about ten statements. ``Prepared`` compiles a
statement once per dialect, keeps its SQL, the order of its parameters and their type processors
(JSON, booleans), and executes on the connection's DBAPI cursor inside the transaction SQLAlchemy
already began. Driver errors are wrapped as SQLAlchemy's (``IntegrityError`` and the rest), so
callers catch the same exceptions. SQLite and PostgreSQL (psycopg, named ``%(name)s`` parameters)
take this path inside a transaction (``fast(conn)``); elsewhere the statement goes through
SQLAlchemy as usual."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from operator import itemgetter
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.result import IteratorResult, Result, SimpleResultMetaData

_BOOL = frozenset({bool})


class _Compiled:
    __slots__ = (
        "bulk_converted", "converted", "defaults", "flags", "getter", "keys", "names", "sql"
    )  # fmt: skip

    def __init__(self, stmt: Any, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("expanding (IN) and literal-execute parameters need SQLAlchemy")
        self.sql: str = compiled.string
        #: The driver's parameter names for a named paramstyle (psycopg's ``%(name)s``), else None.
        self.keys: tuple[str, ...] | None = None
        if compiled.positional:
            self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        else:  # only the binds the SQL uses (``binds`` also lists ones renamed away)
            escaped = compiled.escaped_bind_names
            self.names = tuple(n for n in compiled.binds if f"%({escaped.get(n, n)})s" in self.sql)
            self.keys = tuple(escaped.get(n, n) for n in self.names)
        procs = compiled._bind_processors
        processors = [procs.get(n) for n in self.names]
        # A bind's own value (a literal such as the 1 of ``last_seq + 1``) unless the caller gives
        # one; an INSERT's column binds are ``required`` and have none.
        self.defaults: dict[str, Any] = {
            n: compiled.binds[n].effective_value
            for n in self.names
            if not compiled.binds[n].required
            and (compiled.binds[n].value is not None or compiled.binds[n].callable is not None)
        }
        #: The parameters are picked out in C (over the defaults, if any), then the few with a
        #: type processor (JSON) converted: ``bind`` runs for every statement of every write.
        self.getter: Callable[[Mapping[str, Any]], Any] | None = None
        self.converted: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (i, p) for i, p in enumerate(processors) if p is not None
        )
        # Booleans on a driver that stores them as the integers they are (SQLite): the processor
        # only checks the type and turns True into 1. ``values`` checks the type a batch at a time
        # instead of converting row by row (an import writes two million identity flags).
        bool_cols = {
            i
            for i, n in enumerate(self.names)
            if isinstance(compiled.binds[n].type, sa.Boolean) and dialect.name == "sqlite"
        }
        self.flags: tuple[int, ...] = tuple(i for i, _ in self.converted if i in bool_cols)
        self.bulk_converted = tuple((i, p) for i, p in self.converted if i not in bool_cols)
        if self.names:
            self.getter = operator.itemgetter(*self.names)

    def bind(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters, in order (or by name); a missing one is a ``KeyError``
        naming it."""
        getter = self.getter
        if getter is None:
            return () if self.keys is None else {}
        picked = getter({**self.defaults, **params} if self.defaults else params)
        values: tuple[Any, ...] = (picked,) if len(self.names) == 1 else picked
        if self.converted:
            converted = list(values)
            for i, convert in self.converted:
                converted[i] = convert(converted[i])
            values = tuple(converted)
        return values if self.keys is None else dict(zip(self.keys, values, strict=True))

    def values(self, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        """Driver parameters for rows given as values in ``names`` order (every parameter named):
        reordered and type-processed without a dict per row where the driver takes positions."""
        ordered = self._ordered(names, rows)
        if self.keys is None:
            return ordered
        keys = self.keys
        return [dict(zip(keys, r, strict=True)) for r in ordered]

    def _ordered(
        self, names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Sequence[Sequence[Any]]:
        try:
            pos = [names.index(n) for n in self.names]
        except ValueError:
            raise ValueError(
                f"values for {self.names} need every one of them, got {names}"
            ) from None
        procs = self.bulk_converted
        for i in self.flags:
            at = pos[i]
            if not {type(r[at]) for r in rows} <= _BOOL:
                procs = self.converted  # the processor raises SQLAlchemy's own error
                break
        in_order = pos == list(range(len(names)))
        if in_order and not procs:
            return rows
        if in_order and len(procs) == 1:
            # The common bulk case (one JSON column, values already in order): tuple slices.
            i, proc = procs[0]
            return [(*r[:i], proc(r[i]), *r[i + 1 :]) for r in rows]
        get = itemgetter(*pos) if len(pos) > 1 else (lambda r: (r[pos[0]],))
        if not procs:
            return [get(r) for r in rows]
        out: list[Sequence[Any]] = []
        for r in rows:
            v = list(get(r))
            for i, proc in procs:
                v[i] = proc(v[i])
            out.append(v)
        return out


class Prepared:
    """One statement, compiled on first use per dialect (thread-safe, idempotent)."""

    def __init__(self, stmt: Any, column_keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = tuple(column_keys) if column_keys is not None else None
        # Keyed by the dialect object: its type processors carry the engine's JSON serializer.
        self._by_dialect: dict[Dialect, _Compiled] = {}
        self._lock = threading.Lock()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect)
        if found is None:
            with self._lock:
                found = self._by_dialect.get(dialect)
                if found is None:
                    found = _Compiled(self.stmt, dialect, self.column_keys)
                    self._by_dialect[dialect] = found
        return found

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
        """Run with one parameter set; for a SELECT, its rows as plain tuples of driver values
        (no result processing: select only columns that need none)."""
        if not fast(conn):
            result = conn.execute(self.stmt, dict(params))
            return [tuple(r) for r in result] if result.returns_rows else None
        c = self._compiled(conn.dialect)
        args = c.bind(params)
        cursor = driver_execute(conn, c.sql, args)
        return cursor.fetchall() if cursor.description is not None else None

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if not fast(conn):
            conn.execute(self.stmt, [dict(r) for r in rows])
            return
        c = self._compiled(conn.dialect)
        if len(rows) == 1:
            driver_execute(conn, c.sql, c.bind(rows[0]))
        else:
            driver_executemany(conn, c.sql, [c.bind(r) for r in rows])

    def executemany_values(
        self, conn: Connection, names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """``executemany`` for rows given as value tuples in ``names`` order: a bulk import's
        million rows need no dict each (building and binding those cost more than SQLite's insert)."""
        if not rows:
            return
        if not fast(conn):
            conn.execute(self.stmt, [dict(zip(names, r, strict=True)) for r in rows])
            return
        c = self._compiled(conn.dialect)
        driver_executemany(conn, c.sql, c.values(names, rows))


def marks(values: Sized) -> str:
    """``?, ?, …``: one marker per value, for an ``IN (…)`` list of ``select_rows`` SQL."""
    return ",".join("?" * len(values))


def select_rows(conn: Connection, sql: str, args: tuple[Any, ...]) -> Sequence[Any]:
    """A SELECT written once, with ``?`` markers, for every backend: on SQLite run on the driver
    inside the caller's transaction, elsewhere through SQLAlchemy's driver-level execute with the
    driver's own markers. For lookups a bulk import runs thousands of times with ``IN`` lists of
    varying length, where SQLAlchemy's statement and row handling cost more than the lookup."""
    if "%" in sql:
        raise ValueError("select_rows: no % in the SQL (it is the other drivers' marker)")
    if fast(conn):
        named = conn.dialect.name != "sqlite"  # psycopg: %s markers (format and pyformat alike)
        return list(driver_execute(conn, sql.replace("?", "%s") if named else sql, args).fetchall())
    style = conn.dialect.paramstyle
    if style == "qmark":  # SQLite outside a transaction
        return conn.exec_driver_sql(sql, args).all()
    if style not in ("format", "pyformat"):
        raise ValueError(f"select_rows: no {style} markers")
    return conn.exec_driver_sql(sql.replace("?", "%s"), args).all()


def fast(conn: Connection) -> bool:
    """SQLite or PostgreSQL, inside a transaction SQLAlchemy began (so the DBAPI work is part of
    it)."""
    return conn.dialect.name in _FAST_DIALECTS and conn.in_transaction()


_FAST_DIALECTS = frozenset({"sqlite", "postgresql"})


def driver_execute(conn: Connection, sql: str, args: Any) -> Any:
    """Run on the connection's DBAPI connection; its cursor. sqlite3 runs straight on the
    connection; psycopg's connection has no ``executemany``, so both go through a cursor there."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        if conn.dialect.name == "sqlite":
            return raw.execute(sql, args)
        cursor = raw.cursor()
        cursor.execute(sql, args)
        return cursor
    except Exception as exc:
        reraise(conn, sql, args, exc)


def driver_executemany(conn: Connection, sql: str, rows: Sequence[Any]) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        if conn.dialect.name == "sqlite":
            raw.executemany(sql, rows)
        else:
            raw.cursor().executemany(sql, rows)
    except Exception as exc:
        reraise(conn, sql, rows, exc)


def reraise(conn: Connection, sql: str, params: Any, exc: Exception) -> NoReturn:
    """Raise what SQLAlchemy would have raised: driver errors as ``sa.exc.DBAPIError``s."""
    dbapi = conn.dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error):
        raise exc
    raise sa.exc.DBAPIError.instance(sql, params, exc, dbapi.Error, dialect=conn.dialect) from exc


_INSERTS: dict[tuple[sa.Table, tuple[str, ...]], Prepared] = {}


def insert_of(table: sa.Table, names: tuple[str, ...]) -> Prepared:
    """The INSERT of exactly these columns (cached)."""
    key = (table, names)
    found = _INSERTS.get(key)
    if found is None:
        found = _INSERTS.setdefault(key, Prepared(table.insert(), column_keys=names))
    return found


class _Reused:
    """A SELECT compiled once for the driver, with what turns its rows into SQLAlchemy rows."""

    __slots__ = ("compiled", "metadata", "stmt")

    def __init__(self, stmt: sa.Select[Any], dialect: Dialect) -> None:
        self.stmt = stmt
        self.compiled = _Compiled(stmt, dialect, None)
        entries = stmt.compile(dialect=dialect)._result_columns
        keys = [str(e.keyname) for e in entries]
        if len(set(keys)) != len(keys):
            raise ValueError("ambiguous result columns")
        self.metadata = SimpleResultMetaData(
            keys,
            extra=[tuple(e.objects) for e in entries],
            _processors=[e.type._cached_result_processor(dialect, None) for e in entries],
        )


_SEEN: dict[tuple[int, int], tuple[Any, _Reused | None]] = {}
_SEEN_LIMIT = 1024


def reused_select(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> Result[Any] | None:
    """Run a SELECT that is executed again and again (a statement built once, with bind
    parameters) on the driver, returning the same rows SQLAlchemy would (attribute, key and column
    access, type processing). None when this statement does not qualify: not SQLite or PostgreSQL, not a plain
    SELECT, or the first time it is seen (a statement built per call never is seen twice)."""
    if not fast(conn) or not isinstance(stmt, sa.Select):
        return None
    key = (id(stmt), id(conn.dialect))
    seen = _SEEN.get(key)
    if seen is None or seen[0] is not stmt:
        if len(_SEEN) >= _SEEN_LIMIT:
            _SEEN.clear()
        _SEEN[key] = (stmt, None)
        return None
    reused = seen[1]
    if reused is None:
        try:
            reused = _Reused(stmt, conn.dialect)
        except Exception:
            return None
        _SEEN[key] = (stmt, reused)
    rows = driver_execute(conn, reused.compiled.sql, reused.compiled.bind(params)).fetchall()
    return IteratorResult(reused.metadata, iter(rows))
