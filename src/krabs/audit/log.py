"""Appending to the per-account hash chain. The hashed record holds ids and commitments only;
arguments, result and row images live sealed in ``audit_payloads`` under their commitment
(``krabs.audit.sealing``: encrypted per contact), so personal data can later be erased without
breaking the chain."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from krabs.audit import checkpoint, erasure, merkle, sealing, signing
from krabs.audit.canonical import canonical, digest, sha256_hex
from krabs.audit.verify_work import ROTATION_OP
from krabs.contract.errors import KrabsError
from krabs.engine.uow import UnitOfWork
from krabs.store.db import Store
from krabs.store.prepared import Prepared
from krabs.store.tables import audit_actions, audit_heads, audit_payloads, audit_targets

GENESIS = "0" * 64
#: 2: ``payload_digest`` and ``result_digest`` are salted commitments of a sealed payload.
RECORD_VERSION = 2

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
_PAYLOAD_COLUMNS = ("account_id", "digest", "body", "subjects", "undo", "images_at")
# Payloads are keyed by their commitment, which is salted (so unique); a payload from before sealing
# was content-addressed and shared, so an insert of a digest already there does nothing.
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


def prepare(
    uow: UnitOfWork,
    *,
    action_id: str,
    op: str,
    args: dict[str, Any],
    result: dict[str, Any],
    undo_token_hash: str | None,
    undo_expires_at: str | None,
    undo_of: str | None = None,
) -> None:
    """Seal and store the action's payload now; its record joins the chain at ``link``, which the
    engine calls as the last thing before the transaction commits. The chain's head is a row every
    write of the account locks (on PostgreSQL, until its transaction ends), so it is taken last and
    held for as short a time as possible. A GDPR erasure also appends its ``contact.erased`` record
    right after its own."""
    changes = [c.to_dict() for c in uow.changes]
    erasing = uow.erasing  # a GDPR erasure keeps no payload of its own
    payload = _store_payload(uow, args, result, changes, keep=erasing is None)

    def chain() -> dict[str, Any]:
        record = _chain(
            uow, action_id, op, result, changes, payload, undo_token_hash, undo_expires_at, undo_of
        )
        if erasing is not None:
            erasure.append_erased(uow, erasing, action_id, record, _append)
        return record

    uow.unlinked = chain


def link(uow: UnitOfWork) -> dict[str, Any] | None:
    """Join the prepared action's record to the chain (see ``prepare``); None if there is none."""
    chain, uow.unlinked = uow.unlinked, None
    return chain() if chain is not None else None


def _append(
    uow: UnitOfWork,
    action_id: str,
    op: str,
    args: dict[str, Any],
    result: dict[str, Any],
    changes: list[dict[str, Any]],
    undo_token_hash: str | None,
    undo_expires_at: str | None,
    undo_of: str | None,
    *,
    keep: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Payload and record at once (an erasure's ``contact.erased`` record)."""
    payload = _store_payload(uow, args, result, changes, keep=keep)
    return _chain(
        uow,
        action_id,
        op,
        result,
        changes,
        payload,
        undo_token_hash,
        undo_expires_at,
        undo_of,
        extra=extra,
    )


def _store_payload(
    uow: UnitOfWork,
    args: dict[str, Any],
    result: dict[str, Any],
    changes: list[dict[str, Any]],
    *,
    keep: bool,
) -> sealing.Sealed:
    """The sealed payload, stored unless ``keep`` is false (an erasing call's is not: it is sealed
    under a throwaway key, since its contact's is gone)."""
    conn = uow.conn
    subjects, created = sealing.subjects_of(changes, uow.account_id)
    keys = (
        sealing.keys_for(conn, uow.account_id, subjects, uow.now, created)
        if keep
        else [os.urandom(32)]
    )
    sealed = sealing.seal(uow.account_id, subjects, keys, args, result, changes)
    uow.encoded_result = (result, sealed.result_bytes)  # reused for the stored idempotent response
    if keep:
        _INSERT_PAYLOAD[uow.dialect].execute(
            conn,
            {
                "account_id": uow.account_id,
                "digest": sealed.digest,
                "body": sealed.body,
                "subjects": sealed.subjects,
                "undo": sealed.undo,
                "images_at": uow.now,
            },
        )
    return sealed


def _chain(
    uow: UnitOfWork,
    action_id: str,
    op: str,
    result: dict[str, Any],
    changes: list[dict[str, Any]],
    sealed: sealing.Sealed,
    undo_token_hash: str | None,
    undo_expires_at: str | None,
    undo_of: str | None,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The action's record, next in the chain: head locked, record hashed and signed, stored."""
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
    payload_digest = sealed.digest
    targets = list(dict.fromkeys(str(c["id"]) for c in changes))
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
        # A key rotation's result is public and verified against its plain digest.
        "result_digest": digest(result) if op == ROTATION_OP else sealed.result_digest,
        "payload_digest": payload_digest,
        "undo_of": undo_of,
        "prev_hash": head_hash,
        **(extra or {}),
    }
    record_bytes = canonical(record)
    record_hash = sha256_hex(record_bytes)
    signed = sign_record(conn, uow, seq, record_bytes)
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
        checkpoint.after_append(conn, uow.account_id, seq, uow.signing_dir)
    return {**record, "hash": record_hash}


def sign_record(
    conn: sa.Connection, uow: UnitOfWork, seq: int, record_bytes: bytes
) -> dict[str, str]:
    """The signed log (kept apart from the chain): the ``signature`` and ``signing_key`` columns of
    the record's row, an Ed25519 signature of its Merkle leaf hash. Empty when signing is off."""
    signer = signing.signer_for(uow.signing_dir)
    if signer is None:
        return {}
    key_name, signature = signer.sign_record(
        conn, uow.account_id, seq, merkle.leaf_hash(record_bytes)
    )
    return {"signature": signature, "signing_key": key_name}


def load_payload(
    conn: sa.Connection, account_id: str, payload_digest: str, *, images: bool = False
) -> dict[str, Any]:
    """An action's payload, opened; ``images``: the caller needs the before-images (undo), so
    their retention having passed is ``undo_expired``."""
    found = load_payloads(conn, account_id, [payload_digest])
    if payload_digest not in found:
        gone = erasure.erased_by(conn, account_id, payload_digest)
        if gone is None:
            raise LookupError(f"audit payload {payload_digest} is missing")
        raise KrabsError(
            "not_found",
            f"this action's arguments and row images were erased (GDPR) by action "
            f"{gone.action_id}; its record stays in the signed log",
        )
    payload, kept = found[payload_digest]
    if images and not kept:
        raise KrabsError(
            "undo_expired",
            "this action's before-images were dropped by the 24 h retention sweep; it can no "
            "longer be undone",
        )
    return payload


def load_payloads(
    conn: sa.Connection, account_id: str, digests: list[str]
) -> dict[str, tuple[dict[str, Any], bool]]:
    """Payloads by digest, opened, each with whether its before-images are still kept (missing
    digests are absent)."""
    p = audit_payloads
    rows: list[Any] = []
    unique = sorted(set(digests))
    for start in range(0, len(unique), 500):
        rows += conn.execute(
            sa.select(p.c.digest, p.c.body, p.c.undo, p.c.subjects).where(
                p.c.account_id == account_id, p.c.digest.in_(unique[start : start + 500])
            )
        ).all()
    wanted = sorted({s for r in rows for s in (r.subjects or "").split()})
    keys = sealing.keys_of(conn, account_id, wanted)
    out: dict[str, tuple[dict[str, Any], bool]] = {}
    for r in rows:
        try:
            out[r.digest] = sealing.open_payload(
                account_id, r.digest, r.body, r.undo, r.subjects, keys
            )
        except sealing.Unreadable as exc:
            raise LookupError(f"audit payload {r.digest} does not open: {exc}") from None
    return out
