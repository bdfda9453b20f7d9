"""Inclusion and consistency proofs over an account's stored log. Leaves are recomputed from the
stored record bytes, so a proof is always about what the database holds now; cost is linear in the
tree size (one SHA-256 per record)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from krabs.audit import merkle
from krabs.audit.checkpoint import checkpoint_object, head_size, latest, leaves
from krabs.contract.errors import KrabsError, not_found
from krabs.store.tables import audit_actions, audit_checkpoints


def _checkpoint_at(conn: sa.Connection, account_id: str, size: int) -> dict[str, Any] | None:
    t = audit_checkpoints
    row = conn.execute(sa.select(t).where(t.c.account_id == account_id, t.c.size == size)).first()
    return checkpoint_object(row) if row is not None else None


def default_size(conn: sa.Connection, account_id: str, at_least: int = 0) -> int:
    """The latest checkpoint's size when it covers ``at_least``, else the head."""
    row = latest(conn, account_id)
    if row is not None and int(row.size) >= at_least:
        return int(row.size)
    return head_size(conn, account_id)


def _check_size(conn: sa.Connection, account_id: str, size: int, param: str) -> None:
    head = head_size(conn, account_id)
    if size > head:
        raise KrabsError(
            "invalid_argument",
            f"{param} {size} is beyond the log's {head} records; give at most {head}",
            param=param,
        )


def inclusion(
    conn: sa.Connection, account_id: str, action_id: str, tree_size: int | None
) -> dict[str, Any]:
    t = audit_actions
    row = conn.execute(
        sa.select(t.c.seq, t.c.record, t.c.signing_key, t.c.signature).where(
            t.c.account_id == account_id, t.c.id == action_id
        )
    ).first()
    if row is None:
        raise not_found("action", action_id, "action")
    seq = int(row.seq)
    size = default_size(conn, account_id, seq) if tree_size is None else tree_size
    _check_size(conn, account_id, size, "tree_size")
    if size < seq:
        raise KrabsError(
            "invalid_argument",
            f"action {action_id} is record {seq}; tree_size must be at least {seq}",
            param="tree_size",
        )
    hashes = leaves(conn, account_id, 0, size)
    return {
        "object": "inclusion_proof",
        "action_id": action_id,
        "seq": seq,
        "leaf_index": seq - 1,
        "record": row.record,
        "leaf_hash": hashes[seq - 1].hex(),
        "signature": {"key": row.signing_key, "signature": row.signature}
        if row.signature
        else None,
        "tree_size": size,
        "root_hash": merkle.root(hashes).hex(),
        "proof": [h.hex() for h in merkle.inclusion_proof(hashes, seq - 1)],
        "checkpoint": _checkpoint_at(conn, account_id, size),
    }


def consistency(
    conn: sa.Connection, account_id: str, from_size: int, to_size: int | None
) -> dict[str, Any]:
    size = default_size(conn, account_id) if to_size is None else to_size
    _check_size(conn, account_id, size, "to_size")
    if from_size > size:
        raise KrabsError(
            "invalid_argument",
            f"from_size {from_size} is larger than to_size {size}; give from_size <= to_size",
            param="from_size",
        )
    hashes = leaves(conn, account_id, 0, size)
    return {
        "object": "consistency_proof",
        "from_size": from_size,
        "to_size": size,
        "from_root": merkle.root(hashes[:from_size]).hex(),
        "to_root": merkle.root(hashes).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(hashes, from_size)],
        "from_checkpoint": _checkpoint_at(conn, account_id, from_size),
        "to_checkpoint": _checkpoint_at(conn, account_id, size),
    }
