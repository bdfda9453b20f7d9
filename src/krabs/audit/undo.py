"""Undo: put back the before-image of every row an action touched, newest change first. A row that
changed since the action is a conflict unless forced; undo is itself an audited (and undoable) action.

The pieces (reading the rows as they are now, comparing images, writing a row back towards an
image) are shared with ``krabs.audit.run_undo``, which reverses a whole run field by field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from krabs.audit.log import load_payload
from krabs.contract.errors import KrabsError
from krabs.engine.uow import UnitOfWork
from krabs.normalize import rekeyed_identity
from krabs.store.tables import BY_NAME

Key = tuple[str, str]
Row = dict[str, Any]


def plain(value: Any) -> Any:
    """A value as the audit payload stores it (JSON), so a live row and an image compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def differing(a: Row | None, b: Row | None) -> list[str]:
    """The fields whose values differ between two row images (None: no row)."""
    a, b = a or {}, b or {}
    return sorted(f for f in set(a) | set(b) if plain(a.get(f)) != plain(b.get(f)))


def images_rekeyed(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its identity images carrying today's ``norm_hash``, so an action recorded
    before the key changed (migration 0007) compares equal to its rows and restores valid ones."""
    for ch in payload.get("changes", ()):
        if ch.get("table") == "identities":
            for side in ("before", "after"):
                if isinstance(ch.get(side), dict):
                    ch[side] = rekeyed_identity(ch[side])
    return payload


def current_rows(uow: UnitOfWork, keys: Iterable[Key]) -> dict[Key, Row | None]:
    """Each (table, id) row as it is now in the caller's account, None where it does not exist."""
    out: dict[Key, Row | None] = {}
    for key in keys:
        if key in out:
            continue
        table = BY_NAME[key[0]]
        row = uow.conn.execute(
            sa.select(table).where(table.c.id == key[1], uow.scoped(table))
        ).first()
        out[key] = dict(row._mapping) if row is not None else None
    return out


def write_towards(
    uow: UnitOfWork,
    table_name: str,
    now: Row | None,
    target: Row | None,
    fields: Iterable[str] = (),
) -> Row | None:
    """Make the row whose current image is ``now`` look like ``target``: delete it (target None),
    insert it (now None), or update the differing fields (only ``fields`` if any are named).
    Returns the row's new image."""
    table = BY_NAME[table_name]
    if target is None:
        if now is not None:
            uow.delete(table, now)
        return None
    if now is None:
        uow.insert(table, target)
        return dict(target)
    names = set(fields) or set(target)
    values = {k: v for k, v in target.items() if k in names and plain(now.get(k)) != plain(v)}
    if not values:
        return now
    return uow.update(table, now, values)


@contextmanager
def unique_rules_kept() -> Iterator[None]:
    """A restore that would break a uniqueness rule is an ``undo_conflict``, not an internal error."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise KrabsError(
            "undo_conflict",
            "restoring would break a uniqueness rule (e.g. an identity now owned by another "
            "contact); resolve that first",
        ) from None


def undo_changes(uow: UnitOfWork, action: Any, *, force: bool) -> dict[str, Any]:
    payload = images_rekeyed(
        load_payload(uow.conn, uow.account_id, action.payload_digest, images=True)
    )
    compact = [ch for ch in payload["changes"] if ch.get("compact")]
    payload["changes"] = [ch for ch in payload["changes"] if not ch.get("compact")]
    report = _undo_rows(uow, payload, force=force, more_conflicts=compact_conflicts(uow, compact))
    for ch in reversed(compact):
        report["restored"].extend(undo_compact(uow, ch))
    return report


def _undo_rows(
    uow: UnitOfWork, payload: dict[str, Any], *, force: bool, more_conflicts: list[dict[str, Any]]
) -> dict[str, Any]:
    changes = list(reversed(payload["changes"]))
    current = current_rows(uow, ((ch["table"], ch["id"]) for ch in changes))
    # The state each row must be in for a clean undo: the after-image of its last change.
    expected: dict[Key, Any] = {}
    for ch in payload["changes"]:
        expected[(ch["table"], ch["id"])] = ch["after"]
    conflicts: list[dict[str, Any]] = []
    for key, after in expected.items():
        if plain(current[key]) != plain(after):
            fields = differing(after, current[key])
            conflicts.append({"table": key[0], "id": key[1], "fields": fields})
    conflicts.extend(more_conflicts)
    if conflicts and not force:
        raise KrabsError(
            "undo_conflict",
            f"{len(conflicts)} row(s) changed since the action ({conflicts[0]['table']} "
            f"{conflicts[0]['id']}: {', '.join(conflicts[0]['fields']) or 'row'}); "
            "pass force: true to overwrite",
            param="force",
            details={"conflicts": conflicts},
        )
    restored: dict[Key, dict[str, str]] = {}
    with unique_rules_kept():
        for ch in changes:
            key = (ch["table"], ch["id"])
            write_towards(uow, ch["table"], current[key], ch["before"])
            current[key] = ch["before"]
            restored[key] = {"table": ch["table"], "id": ch["id"]}
    return {"restored": list(restored.values()), "conflicts": conflicts}


def _range(uow: UnitOfWork, table: sa.Table, ch: dict[str, Any]) -> Any:
    return sa.and_(table.c.id >= ch["first"], table.c.id <= ch["last"], uow.scoped(table))


def compact_conflicts(uow: UnitOfWork, compact: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A bulk create (engine/bulk.py) undoes cleanly while its id range still holds exactly its
    rows, none updated or soft-deleted since (``updated_at`` still equal to ``created_at``)."""
    out: list[dict[str, Any]] = []
    for ch in compact:
        if not ch["count"]:
            continue
        table = BY_NAME[ch["table"]]
        where = _range(uow, table, ch)
        count = uow.conn.execute(sa.select(sa.func.count()).where(where)).scalar_one()
        changed: list[Any] = [sa.false()]
        if "updated_at" in table.c and "created_at" in table.c:
            changed.append(table.c.updated_at != table.c.created_at)
        if "deleted_at" in table.c:
            changed.append(table.c.deleted_at.is_not(None))
        touched = uow.conn.execute(
            sa.select(sa.func.count()).where(where, sa.or_(*changed))
        ).scalar_one()
        if count != ch["count"] or touched:
            out.append(
                {
                    "table": ch["table"],
                    "id": ch["first"],
                    "fields": ["rows"],
                    "count": ch["count"],
                    "missing": ch["count"] - count,
                    "changed": touched,
                }
            )
    return out


def undo_compact(uow: UnitOfWork, ch: dict[str, Any], chunk: int = 500) -> list[dict[str, str]]:
    """Delete a bulk create's id range, in chunks, recording each row's image (so this undo is
    itself undoable). Returns one ``restored`` entry for the range."""
    if not ch["count"]:
        return []
    table = BY_NAME[ch["table"]]
    where = _range(uow, table, ch)
    after = ""
    while True:
        rows = uow.conn.execute(
            sa.select(table).where(where, table.c.id > after).order_by(table.c.id).limit(chunk)
        ).all()
        if not rows:
            break
        uow.delete_many(table, [dict(r._mapping) for r in rows])
        after = rows[-1].id
    return [{"table": ch["table"], "id": ch["first"]}]
