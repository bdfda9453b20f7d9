"""Signed checkpoints: the account's Merkle tree head as a C2SP signed note.

    krabs/<account_id>
    <tree size>
    <base64 root hash>

    — <key name> <base64(4-byte key hash ‖ Ed25519 signature)>

One is signed at the end of every run (``sign_checkpoint``), after every 1,000 records and when the
last is 60 s old (``after_append``, a dictionary lookup on the write path, plus ``sweep``, run
periodically). Each stores the tree's compact range, so the next grows from it by the new records
only."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from krabs.audit import merkle
from krabs.audit.signing import SigningKey, note_key_id, open_range, signer_for, verify
from krabs.store.tables import audit_actions, audit_checkpoints, audit_heads

EVERY_RECORDS = 1000
EVERY_SECONDS = 60.0
DASH = "\u2014"


def origin(account_id: str) -> str:
    return f"krabs/{account_id}"


def note_body(account_id: str, size: int, root: bytes) -> str:
    return f"{origin(account_id)}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(body: str, keys: Sequence[SigningKey]) -> str:
    lines = []
    for key in keys:
        blob = note_key_id(key.name, key.public) + key.sign(body.encode())
        lines.append(f"{DASH} {key.name} {base64.b64encode(blob).decode()}\n")
    return body + "\n" + "".join(lines)


@dataclass(frozen=True)
class Note:
    origin: str
    size: int
    root: bytes
    body: str
    #: (key name, 4-byte key hash, signature) per signature line.
    signatures: tuple[tuple[str, bytes, bytes], ...]


class NoteError(ValueError):
    """Not a well-formed signed note, or one whose signatures do not hold."""


def parse_note(text: str) -> Note:
    body, sep, sigs = text.partition("\n\n")
    if not sep or not body:
        raise NoteError("a signed note has a body, a blank line and signature lines")
    lines = body.split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint body has an origin, a size and a root hash")
    name, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise NoteError(f"tree size {size_text[:30]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise NoteError("root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes")
    parsed = []
    if not sigs.endswith("\n"):
        raise NoteError("signature lines end with a newline")
    for line in sigs[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        key, _, blob_text = rest.partition(" ")
        if dash != DASH or not key or not blob_text:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except ValueError:
            raise NoteError("signature is not base64") from None
        if len(blob) != 68:
            raise NoteError("an Ed25519 note signature is 4 + 64 bytes")
        parsed.append((key, blob[:4], blob[4:]))
    return Note(name, int(size_text), root, body + "\n", tuple(parsed))


def verify_note(text: str, keys: dict[str, bytes], *, need: Iterable[str] = ()) -> Note:
    """Parse and check a note: every signature by a known key must hold, at least one must, and
    every key in ``need`` must have signed."""
    note = parse_note(text)
    signed: set[str] = set()
    for name, key_id, sig in note.signatures:
        public = keys.get(name)
        if public is None or note_key_id(name, public) != key_id:
            continue
        if not verify(public, sig, note.body.encode()):
            raise NoteError(f"signature by {name} does not match the checkpoint")
        signed.add(name)
    if not signed:
        raise NoteError("no signature by a known key")
    missing = set(need) - signed
    if missing:
        raise NoteError(f"not signed by {', '.join(sorted(missing))}")
    return note


# -- making checkpoints ------------------------------------------------------------------------------


def leaves(conn: sa.Connection, account_id: str, after: int, upto: int) -> list[bytes]:
    """Leaf hashes of records seq ``after``+1 .. ``upto``, from their stored bytes."""
    t = audit_actions
    rows = conn.execute(
        sa.select(t.c.record)
        .where(t.c.account_id == account_id, t.c.seq > after, t.c.seq <= upto)
        .order_by(t.c.seq)
    ).scalars()
    return [merkle.leaf_hash(r.encode()) for r in rows]


def latest(conn: sa.Connection, account_id: str, *, upto: int | None = None) -> Any:
    t = audit_checkpoints
    q = sa.select(t).where(t.c.account_id == account_id)
    if upto is not None:
        q = q.where(t.c.size <= upto)
    return conn.execute(q.order_by(t.c.size.desc()).limit(1)).first()


def frontier_of(row: Any) -> merkle.Frontier:
    if row is None:
        return merkle.Frontier()
    hashes = [bytes.fromhex(h) for h in row.frontier.split(",") if h]
    return merkle.Frontier(int(row.size), hashes)


def head_size(conn: sa.Connection, account_id: str) -> int:
    seq = conn.execute(
        sa.select(audit_heads.c.seq).where(audit_heads.c.account_id == account_id)
    ).scalar()
    return int(seq or 0)


def sign_checkpoint(
    conn: sa.Connection,
    account_id: str,
    data_dir: Path | None,
    *,
    reason: str = "run",
) -> dict[str, Any] | None:
    """Sign (and store) a checkpoint of the account's log at its current head, inside the caller's
    transaction, and return it (the existing one when the head already has one). None when signing
    is off. Called when a run closes, with the run's ``uow.conn``, ``uow.account_id`` and
    ``uow.signing_dir``."""
    signer = signer_for(data_dir)
    if signer is None:
        return None
    return make_checkpoint(conn, account_id, [signer.bind(conn)], reason=reason)


def make_checkpoint(
    conn: sa.Connection,
    account_id: str,
    keys: Sequence[SigningKey],
    *,
    reason: str,
    size: int | None = None,
    resign: bool = False,
) -> dict[str, Any]:
    """The checkpoint at ``size`` (default: the head) signed by ``keys``; an existing one at that
    size is returned as is, or signed anew by ``keys`` when ``resign`` (key rotation)."""
    size = head_size(conn, account_id) if size is None else size
    for key in keys:  # a node checkpointing an account it never wrote to joins its key set here
        open_range(conn, account_id, key, max(size, 1))
    prev = latest(conn, account_id, upto=size)
    if prev is not None and int(prev.size) == size and not resign:
        return checkpoint_object(prev)
    base = frontier_of(prev)
    if base.size == size and prev is not None:
        frontier = base
    else:
        frontier = base.extend(leaves(conn, account_id, base.size, size))
    root = frontier.root()
    values = {
        "account_id": account_id,
        "size": size,
        "root": root.hex(),
        "frontier": ",".join(h.hex() for h in frontier.hashes),
        "note": sign_note(note_body(account_id, size, root), keys),
        "reason": reason,
        "created_at": _now(),
    }
    t = audit_checkpoints
    if prev is not None and int(prev.size) == size:
        where = (t.c.account_id == account_id) & (t.c.size == size)
        conn.execute(t.update().where(where).values(**values))
    else:
        conn.execute(t.insert().values(**values))
    _remember(conn, account_id, size)
    return checkpoint_object(values)


def checkpoint_object(row: Any) -> dict[str, Any]:
    m: dict[str, Any] = row if isinstance(row, dict) else dict(row._mapping)
    return {
        "object": "checkpoint",
        "tree_size": int(m["size"]),
        "root_hash": m["root"],
        "note": m["note"],
        "reason": m["reason"],
        "created_at": m["created_at"],
    }


# -- when one is due -----------------------------------------------------------------------------------

#: (database, account) -> (size, monotonic time) of the last checkpoint this process knows of.
_last: dict[tuple[sa.Engine, str], tuple[int, float]] = {}
_last_lock = threading.Lock()


def _remember(conn: sa.Connection, account_id: str, size: int) -> None:
    with _last_lock:
        _last[(conn.engine, account_id)] = (size, time.monotonic())


def _known(conn: sa.Connection, account_id: str) -> tuple[int, float]:
    slot = (conn.engine, account_id)
    known = _last.get(slot)
    if known is None:
        row = latest(conn, account_id)
        if row is None:
            known = (0, float("-inf"))
        else:
            age = _age_seconds(row.created_at)
            known = (int(row.size), time.monotonic() - age)
        with _last_lock:
            _last[slot] = known
    return known


def after_append(conn: sa.Connection, account_id: str, seq: int, data_dir: Path | None) -> None:
    """The write path's check: checkpoint when 1,000 records or 60 s passed since the last one."""
    size, at = _known(conn, account_id)
    signer = signer_for(data_dir)
    if signer is not None and (
        seq - size >= EVERY_RECORDS or time.monotonic() - at >= EVERY_SECONDS
    ):
        make_checkpoint(conn, account_id, [signer.bind(conn)], reason="auto", size=seq)


def due(conn: sa.Connection) -> list[str]:
    """Accounts whose head is past their last checkpoint and whose last checkpoint (if any) is at
    least 60 s old."""
    t, h = audit_checkpoints, audit_heads
    last = (
        sa.select(t.c.account_id, sa.func.max(t.c.size).label("size"))
        .group_by(t.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(h.c.account_id, last.c.size)
        .select_from(h.outerjoin(last, last.c.account_id == h.c.account_id))
        .where(h.c.seq > sa.func.coalesce(last.c.size, 0))
    ).all()
    out = []
    for account_id, size in rows:
        if size is None:
            out.append(account_id)
            continue
        created = conn.execute(
            sa.select(t.c.created_at).where(t.c.account_id == account_id, t.c.size == size)
        ).scalar_one()
        if _age_seconds(created) >= EVERY_SECONDS:
            out.append(account_id)
    return out


def _now() -> str:
    from krabs.engine.uow import utcnow

    return utcnow()


def _age_seconds(stamp: str) -> float:
    import datetime as dt

    then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - then).total_seconds()
