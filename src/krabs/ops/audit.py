"""The signed audit log as operations: the latest signed checkpoint, the signing keys, and proofs
that a record is in the log or that an older checkpoint is a prefix of a newer one."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from krabs.audit import checkpoint, proofs
from krabs.audit.signing import signer_for, unb64, vkey
from krabs.contract.errors import KrabsError
from krabs.contract.models import Args, Out
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import (
    audit_account_keys,
    audit_actions,
    audit_checkpoints,
)


class CheckpointArgs(Args):
    tree_size: int | None = Field(
        None, ge=1, le=2**53, description="A stored checkpoint of this size (default: the latest)."
    )


class CheckpointOut(Out):
    object: Literal["checkpoint"] = "checkpoint"
    tree_size: int
    root_hash: str = Field(description="Hex SHA-256 Merkle tree head (RFC 9162) of records 1..N.")
    note: str = Field(description="The C2SP signed note: origin, size, base64 root, signatures.")
    reason: str
    created_at: str


@operation(
    "audit.checkpoint",
    summary="Get the latest signed checkpoint (Merkle tree head) of the audit log.",
    input=CheckpointArgs,
    output=CheckpointOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(Example({}), Example({"tree_size": 1000})),
)
def get_checkpoint(uow: UnitOfWork, args: CheckpointArgs) -> dict[str, Any]:
    """Checkpoints are signed at the end of every run, every 1,000 records and at most 60 s after a
    write; `not_found` means none covers the log yet (retry in a minute) or, with `tree_size`, that
    no checkpoint has that size (`audit.proof` with `from_size`/`to_size` proves any two sizes)."""
    t = audit_checkpoints
    q = sa.select(t).where(t.c.account_id == uow.account_id)
    if args.tree_size is not None:
        row = uow.execute(q.where(t.c.size == args.tree_size)).first()
    else:
        row = uow.execute(q.order_by(t.c.size.desc()).limit(1)).first()
    if row is None:
        which = f"of size {args.tree_size}" if args.tree_size else "yet"
        raise KrabsError(
            "not_found",
            f"no signed checkpoint {which}; one is signed at the end of every run, every 1,000 "
            "records and within 60 s of a write",
            param="tree_size" if args.tree_size else None,
        )
    return checkpoint.checkpoint_object(row)


class KeyArgs(Args):
    pass


class KeyOut(Out):
    object: Literal["audit_keys"] = "audit_keys"
    active: dict[str, Any] | None = Field(
        description="The key of the node that answered (each node signs with its own)."
    )
    keys: list[dict[str, Any]] = Field(
        description="Every key that signed this account's records, with its seq range."
    )


def _key_object(name: str, public_b64: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "algorithm": "ed25519",
        "public_key": public_b64,
        "vkey": vkey(name, unb64(public_b64)),
        **extra,
    }


@operation(
    "audit.key",
    summary="Get the public keys that sign this account's audit log, by record range.",
    input=KeyArgs,
    output=KeyOut,
    mutates=False,
    added_in="1.1",
    examples=(Example({}),),
)
def get_key(uow: UnitOfWork, args: KeyArgs) -> dict[str, Any]:
    """`keys[].from_seq`..`to_seq` say which key signed which records (`to_seq` null: still
    signing). Keep the `vkey`s somewhere safe (one per node): `krabs audit verify --key` then
    refuses any key that is neither pinned nor rotated in by a pinned one."""
    t = audit_account_keys
    rows = uow.execute(
        sa.select(t).where(t.c.account_id == uow.account_id).order_by(t.c.from_seq)
    ).all()
    keys = [
        _key_object(r.name, r.public_key, from_seq=int(r.from_seq), to_seq=r.to_seq) for r in rows
    ]
    signer = signer_for(uow.signing_dir)
    active = None
    if signer is not None:
        from krabs.audit.signing import b64

        key = signer.key
        active = _key_object(key.name, b64(key.public))
    return {"object": "audit_keys", "active": active, "keys": keys}


class ProofArgs(Args):
    action: str | None = Field(
        None, max_length=64, description="Prove this action's record is in the log (inclusion)."
    )
    tree_size: int | None = Field(
        None, ge=1, le=2**53, description="Inclusion: the tree to prove against (default: latest)."
    )
    from_size: int | None = Field(
        None, ge=1, le=2**53, description="Consistency: the older tree size."
    )
    to_size: int | None = Field(
        None, ge=1, le=2**53, description="Consistency: the newer size (default: latest)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ProofArgs:
        if (self.action is None) == (self.from_size is None):
            raise ValueError("give either action (inclusion) or from_size (consistency)")
        if self.action is None and self.tree_size is not None:
            raise ValueError("tree_size goes with action; use to_size with from_size")
        if self.action is not None and self.to_size is not None:
            raise ValueError("to_size goes with from_size; use tree_size with action")
        return self


class ProofOut(Out):
    object: Literal["inclusion_proof", "consistency_proof"]
    proof: list[str] = Field(description="Hex hashes, RFC 9162 §2.1.3/§2.1.4 order.")
    action_id: str | None = None
    seq: int | None = None
    leaf_index: int | None = None
    record: str | None = None
    leaf_hash: str | None = None
    signature: dict[str, Any] | None = None
    tree_size: int | None = None
    root_hash: str | None = None
    checkpoint: dict[str, Any] | None = None
    from_size: int | None = None
    to_size: int | None = None
    from_root: str | None = None
    to_root: str | None = None
    from_checkpoint: dict[str, Any] | None = None
    to_checkpoint: dict[str, Any] | None = None


@operation(
    "audit.proof",
    summary="Prove an action is in the audit log, or that two tree sizes are consistent.",
    input=ProofArgs,
    output=ProofOut,
    mutates=False,
    added_in="1.1",
    errors=("not_found",),
    examples=(
        Example({"action": "act_01HG7Z4X9Q8M2N7P3R5T6V8W"}),
        Example({"from_size": 1000, "to_size": 2000}),
    ),
)
def proof(uow: UnitOfWork, args: ProofArgs) -> dict[str, Any]:
    """With `action`: its record, leaf hash, signature and the inclusion path to the root of
    `tree_size` (default: the latest checkpoint covering it, else the current head). With
    `from_size`: the consistency proof to `to_size`. Sizes beyond the log are `invalid_argument`."""
    if args.action is not None:
        return proofs.inclusion(uow.conn, uow.account_id, args.action, args.tree_size)
    assert args.from_size is not None
    return proofs.consistency(uow.conn, uow.account_id, args.from_size, args.to_size)


class RecordsArgs(Args):
    after_seq: int = Field(
        0, ge=0, le=2**53, description="Records after this seq (0: from the first)."
    )
    limit: int = Field(100, ge=1, le=1000, description="Page size, 1-1000.")


class RecordOut(Out):
    seq: int
    id: str
    record: str = Field(description="The exact RFC 8785 bytes hashed into the leaf.")
    payload_digest: str
    signing_key: str | None = Field(description="The key that signed it (null: before signing).")
    signature: str | None = Field(description="Base64 Ed25519 signature of the leaf hash.")


class RecordsOut(Out):
    object: Literal["list"] = "list"
    data: list[RecordOut]
    has_more: bool


@operation(
    "audit.records",
    summary="Page through the signed audit log in seq order: record bytes and signatures.",
    input=RecordsArgs,
    output=RecordsOut,
    mutates=False,
    added_in="1.1",
    examples=(Example({"after_seq": 0, "limit": 1000}),),
)
def records(uow: UnitOfWork, args: RecordsArgs) -> dict[str, Any]:
    """What `krabs audit verify --url` reads: pass the last `seq` you got as `after_seq` for the
    next page. For arguments, results and row images use `action.get`."""
    a = audit_actions
    rows = uow.execute(
        sa.select(a.c.seq, a.c.id, a.c.record, a.c.payload_digest, a.c.signing_key, a.c.signature)
        .where(a.c.account_id == uow.account_id, a.c.seq > args.after_seq)
        .order_by(a.c.seq)
        .limit(args.limit + 1)
    ).all()
    data = [{**r._mapping, "seq": int(r.seq)} for r in rows[: args.limit]]
    return {"object": "list", "data": data, "has_more": len(rows) > args.limit}
