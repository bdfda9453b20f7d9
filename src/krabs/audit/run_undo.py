"""Undo a whole run: walk its writes newest first and put every row back the way it was before the
run, field by field (a three-way merge of the run's before-image, its after-image and the row now).

For each change of each write, in reverse order:

- a field still at the run's after-value goes back to its before-value;
- a field already at its before-value needs nothing;
- a field at a third value was changed by someone else since: it is a conflict and is left alone,
  unless ``force`` (then it is overwritten too).

A write whose every change needed nothing is ``already_reverted``, and so is a write undone since by
an undo outside the run (``action.undo`` or a run undo); undos inside the run are writes like any
other and are reversed in turn. ``updated_at`` is bookkeeping: it goes back with the rest when it
still holds the run's value, and never counts as a conflict on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from krabs.audit import log as audit_log
from krabs.audit.undo import (
    Key,
    Row,
    compact_conflicts,
    current_rows,
    differing,
    images_rekeyed,
    plain,
    undo_compact,
    unique_rules_kept,
    write_towards,
)
from krabs.contract.errors import KrabsError
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import audit_actions

#: Fields every write moves; a difference in them alone is not someone else's change.
BOOKKEEPING = frozenset({"updated_at"})
#: The most writes one run undo reverses (each write's row images are held in memory).
MAX_WRITES = 10_000
_CHUNK = 500


@dataclass
class Merge:
    """What reversing one change does to its row."""

    status: str  # reverted, already, conflict
    conflicts: list[str] = field(default_factory=list)
    target: Row | None = None
    fields: tuple[str, ...] = ()  # empty with status reverted: the whole row goes to ``target``


def run_actions(uow: UnitOfWork, run_id: str) -> list[Any]:
    """The run's writes in the order they happened (dry-runs are never recorded)."""
    t = audit_actions
    rows = uow.execute(
        sa.select(t.c.id, t.c.seq, t.c.op, t.c.payload_digest)
        .where(t.c.account_id == uow.account_id, t.c.run_id == run_id)
        .order_by(t.c.seq)
        .limit(MAX_WRITES + 1)
    ).all()
    if len(rows) > MAX_WRITES:
        raise KrabsError(
            "invalid_argument",
            f"run {run_id} has more than {MAX_WRITES} writes; undo its actions with action.undo",
            param="id",
        )
    return list(rows)


def load_payloads(uow: UnitOfWork, digests: list[str]) -> dict[str, dict[str, Any]]:
    """The run's payloads with their before-images; one erased or past its retention stops the
    undo (typed, like ``action.undo``)."""
    found = audit_log.load_payloads(uow.conn, uow.account_id, digests)
    for digest in digests:
        if digest not in found:
            audit_log.load_payload(uow.conn, uow.account_id, digest)  # raises the typed error
        elif not found[digest][1]:
            audit_log.load_payload(uow.conn, uow.account_id, digest, images=True)
    return {d: images_rekeyed(payload) for d, (payload, _kept) in found.items()}


def outside_undos(uow: UnitOfWork, ids: set[str]) -> dict[str, str]:
    """For each of ``ids`` undone by an action outside them whose effect still stands (the undo
    was not itself undone), that undo's id."""
    t = audit_actions
    undone_by: dict[str, str] = {}
    frontier, asked = set(ids), set(ids)
    while frontier:
        found: dict[str, str] = {}
        batch = sorted(frontier)
        for start in range(0, len(batch), _CHUNK):
            rows = uow.execute(
                sa.select(t.c.undo_of, t.c.id).where(
                    t.c.account_id == uow.account_id,
                    t.c.undo_of.in_(batch[start : start + _CHUNK]),
                )
            ).all()
            found.update({r.undo_of: r.id for r in rows})
        undone_by.update(found)
        frontier = set(found.values()) - asked
        asked |= frontier

    def undone(action_id: str) -> bool:
        by = undone_by.get(action_id)
        return by is not None and not undone(by)

    return {a: undone_by[a] for a in ids if undone(a) and undone_by[a] not in ids}


def merge(change: dict[str, Any], now: Row | None, origin: Row | None, *, force: bool) -> Merge:
    """The three-way decision for one change: its before- and after-image against the row now.
    ``origin`` is the row as it was before the run's first change to it: a row already back there
    needs nothing (a row the run created and that is gone again, whatever the run did between)."""
    if plain(now) == plain(origin):
        return Merge("already")
    before, after = change["before"], change["after"]
    if before is None:  # the change created the row: reversing it removes the row
        if now is None:
            return Merge("already")
        others = [f for f in differing(after, now) if f not in BOOKKEEPING]
        if others and not force:
            return Merge("conflict", others)
        return Merge("reverted", others, None)
    if now is None:  # the row is gone: a removal the run made is put back; otherwise a conflict
        if after is None or force:
            return Merge("reverted", [] if after is None else ["row"], before)
        return Merge("conflict", ["row"])
    if after is None:  # the run removed the row and it exists again
        others = [f for f in differing(before, now) if f not in BOOKKEEPING]
        if not others:
            return Merge("already")
        return Merge("reverted", others, before) if force else Merge("conflict", others)
    back: list[str] = []
    conflicts: list[str] = []
    for name in differing(before, after):
        if plain(now.get(name)) == plain(after.get(name)):
            back.append(name)
        elif plain(now.get(name)) != plain(before.get(name)) and name not in BOOKKEEPING:
            conflicts.append(name)
    if force:
        back += conflicts
    if conflicts and not force:
        return Merge("conflict", conflicts, before, tuple(back))
    if not [f for f in back if f not in BOOKKEEPING]:
        if back:  # only bookkeeping left to put back: do it, it is still the run's value
            return Merge("already", [], before, tuple(back))
        return Merge("already")
    return Merge("reverted", conflicts, before, tuple(back))


def _origins(payloads: list[dict[str, Any]]) -> dict[Key, Row | None]:
    """Each row as it was before the run first changed it: its first before-image, or nothing for
    a row inside the id range of a bulk create the run made (compact entries list no rows)."""
    origins: dict[Key, Row | None] = {}
    ranges: list[tuple[str, str, str]] = []
    for payload in payloads:
        for ch in payload["changes"]:
            if ch.get("compact"):
                ranges.append((ch["table"], ch["first"], ch["last"]))
                continue
            key = (ch["table"], ch["id"])
            if key not in origins:
                bulk = any(t == key[0] and lo <= key[1] <= hi for t, lo, hi in ranges)
                origins[key] = None if bulk else ch["before"]
    return origins


def _bulk_create(
    uow: UnitOfWork,
    ch: dict[str, Any],
    entry: dict[str, Any],
    restored: dict[Key, dict[str, str]],
    *,
    force: bool,
) -> str:
    """A bulk create's compact entry (engine/bulk.py): its id range is deleted while it still holds
    exactly its rows, unchanged; an emptied range is already reverted."""
    conflicts = compact_conflicts(uow, [ch])
    if conflicts and conflicts[0]["missing"] == ch["count"]:
        return "already"
    if conflicts:
        entry["conflicts"].append(
            {"table": ch["table"], "id": ch["id"], "fields": conflicts[0]["fields"]}
        )
        if not force:
            return "conflict"
    for done in undo_compact(uow, ch):
        restored[(done["table"], done["id"])] = done
    return "reverted" if ch["count"] else "already"


def undo_run(uow: UnitOfWork, run_id: str, *, force: bool) -> dict[str, Any]:
    """Reverse every write of ``run_id``, newest first; the report says what happened to each."""
    actions = run_actions(uow, run_id)
    payloads = load_payloads(uow, [a.payload_digest for a in actions])
    skipped = outside_undos(uow, {a.id for a in actions})
    keys = (
        (ch["table"], ch["id"])
        for a in actions
        if a.id not in skipped
        for ch in payloads[a.payload_digest]["changes"]
        if not ch.get("compact")
    )
    rows = current_rows(uow, keys)
    origins = _origins([payloads[a.payload_digest] for a in actions if a.id not in skipped])
    restored: dict[Key, dict[str, str]] = {}
    writes: list[dict[str, Any]] = []
    with unique_rules_kept():
        for action in reversed(actions):
            entry: dict[str, Any] = {
                "action_id": action.id,
                "seq": int(action.seq),
                "op": action.op,
                "status": "already_reverted",
                "conflicts": [],
                "undone_by": skipped.get(action.id),
            }
            writes.append(entry)
            if action.id in skipped:
                continue
            statuses: set[str] = set()
            for ch in reversed(payloads[action.payload_digest]["changes"]):
                key = (ch["table"], ch["id"])
                if ch.get("compact"):
                    statuses.add(_bulk_create(uow, ch, entry, restored, force=force))
                    continue
                decision = merge(ch, rows[key], origins[key], force=force)
                statuses.add(decision.status)
                if decision.conflicts:
                    entry["conflicts"].append(
                        {"table": key[0], "id": key[1], "fields": decision.conflicts}
                    )
                if decision.status == "reverted" or decision.fields:
                    new = write_towards(uow, key[0], rows[key], decision.target, decision.fields)
                    if new is not rows[key]:
                        restored[key] = {"table": key[0], "id": key[1]}
                    rows[key] = new
            if "conflict" in statuses:
                entry["status"] = "conflict"
            elif "reverted" in statuses:
                entry["status"] = "reverted"
    counts = {"reverted": 0, "already_reverted": 0, "conflict": 0}
    for entry in writes:
        counts[entry["status"]] += 1
    return {"counts": counts, "writes": writes, "restored": list(restored.values())}
