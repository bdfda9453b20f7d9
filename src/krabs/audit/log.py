"""Appending to the per-account hash chain. The hashed record holds ids and digests only; arguments,
result and row images live in ``audit_payloads`` under their digest, so personal data can later be
erased without breaking the chain."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from krabs.audit import checkpoint, erasure, merkle, signing
from krabs.audit.canonical import canonical, sha256_hex
from krabs.contract.errors import KrabsError
from krabs.engine.uow import UnitOfWork
from krabs.store.db import Store
from krabs.store.prepared import Prepared
from krabs.store.tables import audit_actions, audit_heads, audit_payloads, audit_targets

GENESIS = "0" * 64
RECORD_VERSION = 1

# Compiled once and run on the driver: constructing and executing statements through SQLAlchemy
# per call costs several times what SQLite takes to run them.
_LOCK_HEAD = Prepared(
    sa.select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.account_id == sa.bindparam("acct"))
    .with_for_update()
)
_MOVE_HEAD = Prepared(
    audit_heads.update()
    .where(audit_heads.c.account_id == sa.bindparam("acct"))
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)
_PAYLOAD_COLUMNS = ("account_id", "digest", "body")
# Payloads are content-addressed: two writes with the same arguments, result and changes (a no-op
# repeated) share one payload row, so a second insert of the same digest must do nothing.
_INSERT_PAYLOAD = {
    "sqlite": Prepared(
        sqlite_insert(audit_payloads).on_conflict_do_nothing(), column_keys=_PAYLOAD_COLUMNS
    ),
    "postgresql": Prepared(
        pg_insert(audit_payloads).on_conflict_do_nothing(), column_keys=_PAYLOAD_COLUMNS
    ),
}
_ACTION_COLUMNS = (
    "id",
    "account_id",
    "seq",
    "created_at",
    "op",
    "run_id",
    "key_id",
    "agent_id",
    "record",
    "hash",
    "prev_hash",
    "payload_digest",
    "undo_token_hash",
    "undo_expires_at",
    "undo_of",
    "signature",
    "signing_key",
)
_INSERT_ACTION = Prepared(audit_actions.insert(), column_keys=_ACTION_COLUMNS)
_TARGET_COLUMNS = ("account_id", "target_id", "seq", "action_id")
_INSERT_TARGET = Prepared(audit_targets.insert(), column_keys=_TARGET_COLUMNS)


def init_chain(conn: sa.Connection, account_id: str) -> None:
    conn.execute(audit_heads.insert().values(account_id=account_id, seq=0, hash=GENESIS))


def append(
    uow: UnitOfWork,
    *,
    action_id: str,
    op: str,
    args: dict[str, Any],
    result: dict[str, Any],
    undo_token_hash: str | None,
    undo_expires_at: str | None,
    undo_of: str | None = None,
) -> dict[str, Any]:
    """Append one action to the caller's chain and return its record (with ``hash``)."""
    conn = uow.conn
    # In a group commit the previous write of the account left its head in the batch's memo.
    memo = Store.batch_memo(conn)
    head = memo.get(("audit_head", uow.account_id)) if memo is not None else None
    if head is None:
        rows = _LOCK_HEAD.execute(conn, {"acct": uow.account_id})
        assert rows is not None and len(rows) == 1, "every account has a chain head"
        head = rows[0]
    head_seq, head_hash = head
    seq = int(head_seq) + 1
    # RFC 8785 composes (an object is its sorted members, each canonical), so the payload is spliced
    # from its parts and the result, which also has its own digest, is encoded once.
    result_bytes = canonical(result)
    payload_bytes = b"".join(
        (
            b'{"args":',
            canonical(args),
            b',"changes":',
            canonical([c.to_dict() for c in uow.changes]),
            b',"result":',
            result_bytes,
            b"}",
        )
    )
    uow.encoded_result = (result, result_bytes)
    payload_digest = sha256_hex(payload_bytes)
    targets = list(dict.fromkeys(c.id for c in uow.changes))
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "seq": seq,
        "id": action_id,
        "ts": uow.now,
        "account": uow.account_id,
        "actor": {"key": uow.principal.key_id, "agent": uow.principal.agent_id},
        "run": uow.run_id,
        "op": op,
        "targets": targets,
        "result_digest": sha256_hex(result_bytes),
        "payload_digest": payload_digest,
        "undo_of": undo_of,
        "prev_hash": head_hash,
    }
    record_bytes = canonical(record)
    record_hash = sha256_hex(record_bytes)
    signed = sign_record(conn, uow, seq, record_bytes)
    erasing = erasure.take_pending(action_id)  # a GDPR erasure keeps no payload of its own
    if erasing is None:
        _INSERT_PAYLOAD[uow.dialect].execute(
            conn,
            {
                "account_id": uow.account_id,
                "digest": payload_digest,
                "body": payload_bytes.decode(),
            },
        )
    _INSERT_ACTION.execute(
        conn,
        {
            "id": action_id,
            "account_id": uow.account_id,
            "seq": seq,
            "created_at": uow.now,
            "op": op,
            "run_id": uow.run_id,
            "key_id": uow.principal.key_id,
            "agent_id": uow.principal.agent_id,
            "record": record_bytes.decode(),
            "hash": record_hash,
            "prev_hash": head_hash,
            "payload_digest": payload_digest,
            "undo_token_hash": undo_token_hash,
            "undo_expires_at": undo_expires_at,
            "undo_of": undo_of,
            "signature": None,
            "signing_key": None,
            **signed,
        },
    )
    if targets:
        _INSERT_TARGET.executemany(
            conn,
            [
                {"account_id": uow.account_id, "target_id": t, "seq": seq, "action_id": action_id}
                for t in targets
            ],
        )
    _MOVE_HEAD.execute(conn, {"acct": uow.account_id, "new_seq": seq, "new_hash": record_hash})
    if memo is not None:
        memo[("audit_head", uow.account_id)] = (seq, record_hash)
    if signed and not uow.dry_run:  # a dry-run's checkpoint would be rolled back, yet remembered
        checkpoint.after_append(conn, uow.account_id, seq, uow.data_dir)
    if erasing is not None:
        erasure.record_erasure(conn, uow.account_id, erasing, action_id, seq, payload_digest)
    return {**record, "hash": record_hash}


def sign_record(
    conn: sa.Connection, uow: UnitOfWork, seq: int, record_bytes: bytes
) -> dict[str, str]:
    """The signed log (kept apart from the chain): the ``signature`` and ``signing_key`` columns of
    the record's row, an Ed25519 signature of its Merkle leaf hash. Empty when signing is off."""
    signer = signing.signer_for(uow.data_dir)
    if signer is None:
        return {}
    key_name, signature = signer.sign_record(
        conn, uow.account_id, seq, merkle.leaf_hash(record_bytes)
    )
    return {"signature": signature, "signing_key": key_name}


def load_payload(conn: sa.Connection, account_id: str, payload_digest: str) -> dict[str, Any]:
    body = conn.execute(
        sa.select(audit_payloads.c.body).where(
            audit_payloads.c.account_id == account_id, audit_payloads.c.digest == payload_digest
        )
    ).scalar()
    if body is None:
        gone = erasure.erased_by(conn, account_id, payload_digest)
        if gone is None:
            raise LookupError(f"audit payload {payload_digest} is missing")
        raise KrabsError(
            "not_found",
            f"this action's arguments and row images were erased (GDPR) by action "
            f"{gone.action_id}; its record stays in the signed log",
        )
    return dict(json.loads(body))
