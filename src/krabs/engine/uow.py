"""The unit of work handed to handlers: a connection inside the call's transaction, scoped to one
account, that records a before- and after-image of every row it writes. Those images are the audit
payload, the dry-run diff and what undo restores, so handlers write only through it."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from krabs.engine.bulk import BulkCreate, IdBlock
from krabs.engine.context import Principal
from krabs.store.prepared import insert_of, reused_select


@functools.cache
def column_names(table: sa.Table) -> tuple[str, ...]:
    """Plain-str column names (SQLAlchemy's ``quoted_name`` would leak into images and hashes)."""
    return tuple(str(c.name) for c in table.columns)


_second: dict[int, tuple[int, str]] = {}


def utcnow(offset: int = 0) -> str:
    """Now (plus ``offset`` whole seconds) as ``2026-05-16T14:22:08.123456Z``. Several calls per
    write: the date-and-time part is formatted once a second per offset, a quarter of what
    ``datetime.strftime`` costs each time."""
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    sec += offset
    cached = _second.get(offset)
    if cached is None or cached[0] != sec:
        if len(_second) > 16:
            _second.clear()
        cached = _second[offset] = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{ns // 1000:06d}Z"


@dataclass(frozen=True)
class Change:
    table: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "create"
        if self.after is None:
            return "delete"
        return "update"

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "id": self.id, "before": self.before, "after": self.after}


@dataclass
class UnitOfWork:
    conn: Connection
    principal: Principal
    run_id: str | None
    dialect: str
    default_region: str | None = None
    #: Where files the call produces (exports) are written; None when the engine has no data dir.
    data_dir: Path | None = None
    #: Where the audit signing key lives (``Settings.signing_dir``); None: records go unsigned.
    signing_dir: Path | None = None
    #: ``(account_id, run_id)`` -> the row of a run whose creation is still spooled, else None
    #: (``RunResolver.pending``): reads of such a run see it before it is written.
    pending_run: Callable[[str, str], dict[str, Any] | None] | None = None
    #: A dry-run: the same handler, rolled back. Side effects outside the transaction (the
    #: checkpoint cache) must not believe what it wrote.
    dry_run: bool = False
    now: str = field(default_factory=utcnow)
    changes: list[Change | BulkCreate] = field(default_factory=list)
    #: Set by a handler that wants its action's undo token (destructive operations always get one).
    wants_undo: bool = False
    #: The id the audit step will give this call's action, known before the handler runs.
    action_id: str | None = None
    #: Set by ``action.undo``: the action this one reverses.
    undo_of: str | None = None
    #: Set by a GDPR erasure: the contact it erases. Its action keeps no payload of its own, and
    #: the audit step appends the ``contact.erased`` record after it.
    erasing: str | None = None
    #: The call's audit record, sealed but not yet in the chain: ``krabs.audit.log.link`` adds it
    #: right before the transaction commits.
    unlinked: Callable[[], dict[str, Any]] | None = None
    #: Per table: the id block and the one change entry of ``insert_compact``.
    bulk: dict[str, BulkCreate] = field(default_factory=dict)
    #: The result the audit step hashed and its canonical JSON, for others to reuse (the stored
    #: idempotent response) when they store that very object.
    encoded_result: tuple[Any, bytes] | None = None

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    def execute(self, stmt: Any, *params: Any) -> sa.CursorResult[Any]:
        if len(params) == 1 and type(params[0]) is dict:
            # A statement built once and run with parameters: on SQLite, straight on the driver.
            result = reused_select(self.conn, stmt, params[0])
            if result is not None:
                return cast("sa.CursorResult[Any]", result)
        return self.conn.execute(stmt, *params)

    def scoped(self, table: sa.Table) -> Any:
        """The clause keeping a table's rows to this account: by ``account_id``, or for the
        ``accounts`` table itself (which has none) by ``id``."""
        if "account_id" in table.c:
            return table.c.account_id == self.account_id
        return table.c.id == self.account_id

    def fetch(self, table: sa.Table, row_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            sa.select(table).where(table.c.id == row_id, self.scoped(table))
        ).first()
        return dict(row._mapping) if row is not None else None

    def insert(self, table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
        return self.insert_many(table, [values])[0]

    def insert_many(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        names = column_names(table)
        full_rows = []
        for values in rows:
            row = {"account_id": self.account_id, **values}
            full_rows.append({name: row.get(name) for name in names})
        insert_of(table, names).executemany(self.conn, full_rows)
        for full in full_rows:
            self.changes.append(Change(str(table.name), str(full["id"]), None, full))
        return full_rows

    def update(
        self, table: sa.Table, before: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        """Write ``values`` over the row whose current image is ``before`` (the caller fetched it)."""
        after = {**before, **values}
        if after == before:
            return before
        self.conn.execute(
            table.update().where(table.c.id == before["id"], self.scoped(table)).values(**values)
        )
        self.changes.append(Change(str(table.name), str(before["id"]), before, after))
        return after

    def delete(self, table: sa.Table, before: dict[str, Any]) -> None:
        """Remove a row for good (undoing its creation); soft deletes are ``update``s."""
        self.conn.execute(
            table.delete().where(table.c.id == before["id"], table.c.account_id == self.account_id)
        )
        self.changes.append(Change(str(table.name), str(before["id"]), before, None))

    def new_bulk_id(self, table: sa.Table) -> str:
        """An id for a row that ``insert_compact`` will write: consecutive within this call."""
        return self._bulk(table).block.next()

    def bulk_ids(self, table: sa.Table) -> Callable[[], str]:
        """``new_bulk_id`` of ``table`` as one callable, for a loop making many rows."""
        return self._bulk(table).block.next

    def insert_compact(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``insert_many`` for bulk creates: the rows (ids from ``new_bulk_id``) are recorded as ONE
        change entry, "created N rows of table with ids first..last", instead of N after-images.
        Undo deletes that id range; the audit payload and dry-run diff stay small."""
        entry = self._bulk(table)
        mark = len(self.changes)
        full = self.insert_many(table, rows)
        del self.changes[mark:]
        for row in full:
            entry.add(str(row["id"]))
        return full

    def insert_compact_values(
        self, table: sa.Table, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        """``insert_compact`` for rows given as value tuples in ``names`` order (every column,
        ``account_id`` included, which must be this account's): an import's million rows go in
        without a dict each."""
        if not rows:
            return
        if set(names) != set(column_names(table)):
            raise ValueError(f"insert_compact_values: {table.name} needs exactly its columns")
        at, ident = names.index("account_id"), names.index("id")
        if any(r[at] != self.account_id for r in rows):
            raise ValueError("insert_compact_values: a row names another account")
        entry = self._bulk(table)
        ids = [r[ident] for r in rows]
        entry.add_many(ids)  # before writing: a foreign id fails without a trace
        insert_of(table, names).executemany_values(self.conn, names, rows)

    def update_bulk(
        self, table: sa.Table, before: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        """``update``, except that a row ``insert_compact`` created in this call is not imaged: its
        compact entry already undoes it (by deleting it), so an import folding many rows into the
        contacts it made holds no per-row images."""
        entry = self.bulk.get(str(table.name))
        if entry is None or not entry.block.owns(str(before["id"])):
            return self.update(table, before, values)
        after = {**before, **values}
        if after != before:
            self.conn.execute(
                table.update()
                .where(table.c.id == before["id"], self.scoped(table))
                .values(**values)
            )
        return after

    def update_bulk_many(
        self, table: sa.Table, items: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> None:
        """``update_bulk`` for many (before, values) pairs: the rows this call created go in one
        executemany per set of changed columns (an import folding thousands of rows into contacts
        it made would otherwise run an UPDATE each); the others are imaged one by one."""
        entry = self.bulk.get(str(table.name))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for before, values in items:
            if entry is None or not entry.block.owns(str(before["id"])):
                self.update(table, before, values)
                continue
            changed = tuple(
                sorted(k for k, v in values.items() if k not in before or before[k] != v)
            )
            if not changed:
                continue
            params = {f"v_{k}": values[k] for k in changed}
            params["b_id"] = before["id"]
            groups.setdefault(changed, []).append(params)
        for names, rows in groups.items():
            stmt = (
                table.update()
                .where(table.c.id == sa.bindparam("b_id"), self.scoped(table))
                .values({k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in names})
            )
            self.conn.execute(stmt, rows)

    def delete_many(self, table: sa.Table, befores: list[dict[str, Any]]) -> None:
        """``delete`` for many rows at once (one statement per call)."""
        if not befores:
            return
        ids = [b["id"] for b in befores]
        self.conn.execute(table.delete().where(table.c.id.in_(ids), self.scoped(table)))
        name = str(table.name)
        self.changes.extend(Change(name, str(b["id"]), b, None) for b in befores)

    def _bulk(self, table: sa.Table) -> BulkCreate:
        name = str(table.name)
        entry = self.bulk.get(name)
        if entry is None:
            entry = self.bulk[name] = BulkCreate(name, IdBlock(name))
            self.changes.append(entry)
        return entry

    def touched(self) -> list[dict[str, Any]]:
        seen: dict[tuple[str, str], str] = {}
        for ch in self.changes:
            if isinstance(ch, BulkCreate):
                continue
            key = (ch.table, ch.id)
            seen[key] = "create" if seen.get(key) == "create" else ch.kind
        out = [{"table": t, "id": i, "action": a} for (t, i), a in seen.items()]
        return out + [b.summary() for b in self.bulk.values() if b.count]

    def diff(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [b.summary() for b in self.bulk.values() if b.count]
        for ch in self.changes:
            if isinstance(ch, BulkCreate):
                continue
            before, after = ch.before or {}, ch.after or {}
            for name in sorted(set(before) | set(after)):
                if before.get(name) != after.get(name):
                    out.append(
                        {
                            "table": ch.table,
                            "id": ch.id,
                            "field": name,
                            "before": before.get(name),
                            "after": after.get(name),
                        }
                    )
        return out
