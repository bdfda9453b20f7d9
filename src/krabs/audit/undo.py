"""Undo: put back the before-image of every row an action touched, newest change first. A row that
changed since the action is a conflict unless forced; undo is itself an audited (and undoable) action."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from krabs.audit.log import load_payload
from krabs.contract.errors import KrabsError
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import BY_NAME


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def undo_changes(uow: UnitOfWork, action: Any, *, force: bool) -> dict[str, Any]:
    payload = load_payload(uow.conn, uow.account_id, action.payload_digest)
    changes = list(reversed(payload["changes"]))
    current: dict[tuple[str, str], dict[str, Any] | None] = {}
    conflicts: list[dict[str, Any]] = []
    for ch in changes:
        table = BY_NAME[ch["table"]]
        key = (ch["table"], ch["id"])
        if key not in current:
            row = uow.conn.execute(
                sa.select(table).where(table.c.id == ch["id"], uow.scoped(table))
            ).first()
            current[key] = dict(row._mapping) if row is not None else None
    # The state each row must be in for a clean undo: the after-image of its last change.
    expected: dict[tuple[str, str], Any] = {}
    for ch in payload["changes"]:
        expected[(ch["table"], ch["id"])] = ch["after"]
    for key, after in expected.items():
        now = current[key]
        if _plain(now) != _plain(after):
            fields = sorted(
                f
                for f in set(after or {}) | set(now or {})
                if _plain((after or {}).get(f)) != _plain((now or {}).get(f))
            )
            conflicts.append({"table": key[0], "id": key[1], "fields": fields})
    if conflicts and not force:
        raise KrabsError(
            "undo_conflict",
            f"{len(conflicts)} row(s) changed since the action ({conflicts[0]['table']} "
            f"{conflicts[0]['id']}: {', '.join(conflicts[0]['fields']) or 'row'}); "
            "pass force: true to overwrite",
            param="force",
            details={"conflicts": conflicts},
        )
    restored: list[dict[str, str]] = []
    try:
        for ch in changes:
            table = BY_NAME[ch["table"]]
            key = (ch["table"], ch["id"])
            now = current[key]
            before = ch["before"]
            if before is None:
                if now is not None:
                    uow.delete(table, now)
            elif now is None:
                uow.insert(table, before)
            else:
                values = {k: v for k, v in before.items() if _plain(now.get(k)) != _plain(v)}
                if values:
                    uow.update(table, now, values)
            current[key] = before
            restored.append({"table": ch["table"], "id": ch["id"]})
    except sa.exc.IntegrityError:
        raise KrabsError(
            "undo_conflict",
            "restoring would break a uniqueness rule (e.g. an identity now owned by another "
            "contact); resolve that first",
        ) from None
    return {
        "restored": list({(r["table"], r["id"]): r for r in restored}.values()),
        "conflicts": conflicts,
    }
