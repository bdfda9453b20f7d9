"""The per-record half of ``krabs audit verify``, in batches a worker process can take: parse each
record, check it against its row, hash its leaf, check its signature, and hand back only what the
in-order checks (chain, tree, checkpoints) need. Signature checks are most of the cost, so batches
run on every core."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from krabs.audit import merkle
from krabs.audit.signing import verify as verify_signature

ROTATION_OP = "audit.key_rotated"


@dataclass(frozen=True)
class Context:
    account_id: str
    #: (name, public key, from_seq, to_seq or None), by from_seq.
    ranges: tuple[tuple[str, bytes, int, int | None], ...]
    run_id: str | None

    def key_for(self, name: str, seq: int) -> bytes | None:
        """The public key ``name`` if it may sign record ``seq`` (several may: one per node)."""
        for key, public, lo, hi in self.ranges:
            if key == name and lo <= seq and (hi is None or seq <= hi):
                return public
        return None


#: What the in-order checks need of one record: seq, leaf hash, own SHA-256, prev_hash and payload
#: digest (32 bytes each; zeros when not hex), the rotation record's result digest (else None),
#: whether it belongs to the run asked about, whether it was signed.
Entry = tuple[int, bytes, bytes, bytes, bytes, str | None, bool, bool]


def _raw32(text: Any) -> bytes:
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    return raw if len(raw) == 32 else bytes(32)


def check_batch(
    rows: list[dict[str, Any]], ctx: Context
) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Check a batch of action rows (each with its ``signing_key`` and ``signature``, or None)."""
    entries: list[Entry] = []
    errors: list[tuple[int, str]] = []
    first = min((r[2] for r in ctx.ranges), default=None)
    for row in rows:
        seq = int(row["seq"])
        raw = row["record"].encode()
        leaf = merkle.leaf_hash(raw)
        try:
            record = json.loads(raw)
        except ValueError:
            errors.append((seq, "record is not JSON"))
            continue
        if not isinstance(record, dict) or record.get("seq") != seq:
            said = record.get("seq") if isinstance(record, dict) else "?"
            errors.append((seq, f"record says seq {said}, stored at seq {seq}"))
            continue
        if record.get("id") != row["id"] or record.get("account") != ctx.account_id:
            errors.append((seq, "record's id or account differs from its row"))
        digest = record.get("payload_digest")
        if digest != row.get("payload_digest", digest):
            errors.append((seq, "payload_digest differs from its row"))
        signed = _check_signature(seq, leaf, row, ctx, first, errors)
        op = record.get("op")
        entries.append(
            (
                seq,
                leaf,
                sha256(raw).digest(),
                _raw32(record.get("prev_hash")),
                _raw32(digest),
                record.get("result_digest") if op == ROTATION_OP else None,
                ctx.run_id is not None and record.get("run") == ctx.run_id,
                signed,
            )
        )
    return entries, errors


def _check_signature(
    seq: int,
    leaf: bytes,
    row: dict[str, Any],
    ctx: Context,
    first: int | None,
    errors: list[tuple[int, str]],
) -> bool:
    name, sig_b64 = row.get("signing_key"), row.get("signature")
    if first is None or seq < first:
        if sig_b64 is not None:
            errors.append((seq, "signed before any key's range begins"))
        return False
    if sig_b64 is None:
        errors.append((seq, "record is not signed"))
        return False
    public = ctx.key_for(str(name), seq)
    if public is None:
        errors.append((seq, f"signed by {str(name)[:80]}, a key not valid for this record"))
        return False
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError:
        errors.append((seq, "signature is not base64"))
        return False
    if len(sig) != 64 or not verify_signature(public, sig, leaf):
        errors.append((seq, "signature does not match the record (record or signature altered)"))
        return False
    return True


def check_payloads(
    rows: list[dict[str, Any]], account_id: str = "", keys: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Payload rows that open and match their commitment (or, from before sealing, their digest),
    and those that do not."""
    from krabs.audit.sealing import check_row

    good: list[str] = []
    bad: list[str] = []
    for row in rows:
        ok = check_row(account_id, row, row.get("keys") or keys or {})
        (good if ok else bad).append(str(row["digest"]))
    return good, bad


_engines: dict[str, Any] = {}


def check_range(
    url: str, lo: int, hi: int, ctx: Context
) -> tuple[list[Entry], list[tuple[int, str]], list[tuple[int, str]], list[int]]:
    """A worker reads records ``lo`` <= seq < ``hi`` (with their payloads) from the database
    itself and checks them: entries, errors, (seq, digest) of missing payloads, seqs whose payload
    differs from its digest."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from krabs.audit.sealing import check_row, keys_of
    from krabs.store.tables import audit_actions, audit_payloads

    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = sa.create_engine(url, poolclass=NullPool)
    a, p = audit_actions, audit_payloads
    q = (
        sa.select(
            a.c.seq,
            a.c.id,
            a.c.record,
            a.c.payload_digest,
            a.c.signing_key,
            a.c.signature,
            p.c.body,
            p.c.undo,
            p.c.subjects,
        )
        .select_from(
            a.outerjoin(p, (p.c.account_id == a.c.account_id) & (p.c.digest == a.c.payload_digest))
        )
        .where(a.c.account_id == ctx.account_id, a.c.seq >= lo, a.c.seq < hi)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        subjects = sorted({s for r in rows for s in (r["subjects"] or "").split()})
        keys = keys_of(conn, ctx.account_id, subjects)
    entries, errors = check_batch(rows, ctx)
    missing = [(int(r["seq"]), str(r["payload_digest"])) for r in rows if r["body"] is None]
    bad = [
        int(r["seq"])
        for r in rows
        if r["body"] is not None
        and not check_row(ctx.account_id, {**r, "digest": r["payload_digest"]}, keys)
    ]
    return entries, errors, missing, bad
