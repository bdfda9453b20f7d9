"""The per-record half of ``krabs audit verify``, in batches a worker process can take: parse each
record, check it against its row, hash its leaf, check its signature, and hand back only what the
in-order checks (chain, tree, checkpoints) need, as flat byte arrays (32 bytes a record) rather than
an object per record, so little crosses between processes and the main process copies whole batches.

Signature checks are most of the cost (one Ed25519 verification per record), so batches run on
every core; everything else here is a few microseconds a record: one JSON parse of the stored
record (never re-serialised), three SHA-256 (leaf, the record's own hash, its payload) and plain
tuples from the driver (no SQLAlchemy row objects, no dict per row)."""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from krabs.audit.signing import verify as verify_signature

ROTATION_OP = "audit.key_rotated"
#: The record a GDPR erasure appends; its ``erased`` field commits to the set of payloads erased.
ERASED_OP = "contact.erased"


def erased_set_digest(digests: Iterable[str]) -> str:
    """What a ``contact.erased`` record commits to: SHA-256 over the sorted commitments of the
    payloads it erased (commitments are salted HMACs, so this says nothing of their contents).
    Verify recomputes it from the erasure rows, so a forged or dropped erasure row shows."""
    return sha256("\n".join(sorted(digests)).encode()).hexdigest()


_ZERO = bytes(32)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Context:
    account_id: str
    #: (name, public key, from_seq, to_seq or None), by from_seq.
    ranges: tuple[tuple[str, bytes, int, int | None], ...]
    run_id: str | None

    @property
    def first(self) -> int | None:
        """The first seq any key signs (records before it predate signing)."""
        return min((r[2] for r in self.ranges), default=None)

    def key_for(self, name: str, seq: int) -> bytes | None:
        """The public key ``name`` if it may sign record ``seq`` (several may: one per node)."""
        for key, public, lo, hi in self.ranges:
            if key == name and lo <= seq and (hi is None or seq <= hi):
                return public
        return None


#: An action row as the checks read it: seq, action id, the stored record text, the row's payload
#: digest (None when the source does not give one), signing key name and base64 signature (both
#: None before signing began).
Row = tuple[int, str, str, str | None, str | None, str | None]


@dataclass
class Checked:
    """One batch's results. For each record that parsed, in ``seqs`` order: 32 bytes each of its
    leaf hash, its own SHA-256, its ``prev_hash`` and its payload digest (zeros where a field is not
    32 bytes of hex, which the chain check then refuses)."""

    seqs: list[int] = field(default_factory=list)
    leaves: bytearray = field(default_factory=bytearray)
    own: bytearray = field(default_factory=bytearray)
    prev: bytearray = field(default_factory=bytearray)
    payload: bytearray = field(default_factory=bytearray)
    #: seq -> result digest of each key-rotation record.
    rotations: dict[int, str | None] = field(default_factory=dict)
    #: seq -> the ``erased`` field (count and set digest) of each ``contact.erased`` record.
    erasures: dict[int, Any] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    signed: int = 0
    #: Records of the run asked about (``Context.run_id``).
    run_records: int = 0
    #: Database source only: (seq, digest) of records whose payload row is absent, and seqs whose
    #: payload body differs from its digest.
    missing: list[tuple[int, str]] = field(default_factory=list)
    bad_payloads: list[int] = field(default_factory=list)


def _raw32(text: Any) -> bytes:
    if type(text) is str and len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return _ZERO
        if len(raw) == 32:
            return raw
    return _ZERO


def check_rows(rows: Iterable[Row], ctx: Context) -> Checked:
    """Check action rows: each record against its row, its leaf and its signature."""
    out = Checked()
    errors = out.errors
    seqs, leaves, own, prevs, payloads = out.seqs, out.leaves, out.own, out.prev, out.payload
    first = ctx.first
    run_id = ctx.run_id
    account_id = ctx.account_id
    decode = _DECODER.raw_decode
    for seq, action_id, text, row_digest, name, sig_b64 in rows:
        if seq < 1:
            errors.append((0, f"a row claims seq {seq}, below 1"))
            continue
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # a lone surrogate, from a hostile export's JSON escapes
            errors.append((seq, "record is not UTF-8"))
            continue
        leaf = sha256(b"\x00" + raw).digest()
        try:
            record, end = decode(text)  # canonical bytes: no whitespace around the object
        except ValueError:
            end = -1
        if end != len(text):
            errors.append((seq, "record is not JSON"))
            continue
        if type(record) is not dict or record.get("seq") != seq:
            said = record.get("seq") if isinstance(record, dict) else "?"
            errors.append((seq, f"record says seq {said}, stored at seq {seq}"))
            continue
        if record.get("id") != action_id or record.get("account") != account_id:
            errors.append((seq, "record's id or account differs from its row"))
        digest = record.get("payload_digest")
        if row_digest is not None and digest != row_digest:
            errors.append((seq, "payload_digest differs from its row"))
        # The signature: none before any key's range, else by a key whose range covers the record.
        if first is None or seq < first:
            if sig_b64 is not None:
                errors.append((seq, "signed before any key's range begins"))
        elif sig_b64 is None:
            errors.append((seq, "record is not signed"))
        else:
            public = ctx.key_for(str(name), seq)
            if public is None:
                errors.append((seq, f"signed by {str(name)[:80]}, a key not valid for this record"))
            else:
                try:
                    sig = binascii.a2b_base64(sig_b64, strict_mode=True)
                except (binascii.Error, ValueError, TypeError):
                    errors.append((seq, "signature is not base64"))
                else:
                    if verify_signature(public, sig, leaf):
                        out.signed += 1
                    else:
                        errors.append(
                            (
                                seq,
                                "signature does not match the record (record or signature altered)",
                            )
                        )
        op = record.get("op")
        if op == ROTATION_OP:
            out.rotations[seq] = record.get("result_digest")
        elif op == ERASED_OP:
            out.erasures[seq] = record.get("erased")
        if run_id is not None and record.get("run") == run_id:
            out.run_records += 1
        seqs.append(seq)
        leaves += leaf
        own += sha256(raw).digest()
        prevs += _raw32(record.get("prev_hash"))
        payloads += _raw32(digest)
    return out


def _row(d: Any) -> Row | None:
    """An action row from a dict as an export or a server spells it; None when it is malformed."""
    if not isinstance(d, dict):
        return None
    seq, record = d.get("seq"), d.get("record")
    if type(seq) is not int or not isinstance(record, str):
        return None
    digest, name, sig = d.get("payload_digest"), d.get("signing_key"), d.get("signature")
    if not all(v is None or isinstance(v, str) for v in (digest, name, sig)):
        return None
    return (seq, d.get("id"), record, digest, name, sig)  # type: ignore[return-value]


def check_batch(rows: list[dict[str, Any]], ctx: Context) -> Checked:
    """Check a batch of action rows given as dicts (a server's ``audit.records`` pages)."""
    good = []
    bad = 0
    for d in rows:
        row = _row(d)
        if row is None:
            bad += 1
        else:
            good.append(row)
    out = check_rows(good, ctx)
    if bad:
        out.errors.append((0, f"{bad} action row(s) are malformed (no integer seq or no record)"))
    return out


def check_lines(lines: list[bytes], ctx: Context) -> Checked:
    """Check a batch of an export's ``audit_actions.ndjson`` lines (parsed here, in the worker)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    decode = _DECODER.decode
    for line in lines:
        try:
            rows.append(decode(line.decode()))
        except ValueError:  # UnicodeDecodeError included
            bad += 1
    out = check_batch(rows, ctx)
    if bad:
        out.errors.append((0, f"{bad} line(s) of the export's audit actions are not JSON"))
    return out


def check_payloads(
    rows: list[dict[str, Any]], account_id: str = "", keys: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Payload rows that open and match their commitment (or, from before sealing, their digest),
    and those that do not."""
    from krabs.audit.sealing import check_row

    good: list[str] = []
    bad: list[str] = []
    for row in rows:
        try:  # a hostile export's row may lack any field or hold any type: tampering, not a crash
            ok = check_row(account_id, row, row.get("keys") or keys or {})
        except (KeyError, TypeError, AttributeError, UnicodeEncodeError):
            ok = False
        (good if ok else bad).append(str(row.get("digest")))
    return good, bad


def check_payload_lines(
    items: list[tuple[bytes, dict[str, str]]], account_id: str = ""
) -> tuple[list[str], list[str]]:
    """``check_payloads`` over an export's ``audit_payloads.ndjson`` lines, each with the data keys
    of the subjects it names (so a worker gets its batch's keys, not the account's)."""
    rows: list[dict[str, Any]] = []
    decode = _DECODER.decode
    for line, keys in items:
        try:
            row = decode(line.decode())
        except ValueError:
            row = None
        rows.append(
            {**row, "keys": keys} if isinstance(row, dict) else {"digest": None, "body": None}
        )
    return check_payloads(rows, account_id)


_queries: dict[str, tuple[Any, str, bool, tuple[str, ...]]] = {}


def _range_query(url: str) -> tuple[Any, str, bool, tuple[str, ...]]:
    """The engine and the compiled SELECT of a seq range with its payloads, once per process."""
    found = _queries.get(url)
    if found is None:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        from krabs.store.tables import audit_actions, audit_payloads

        engine = sa.create_engine(url, poolclass=NullPool)
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
                a.outerjoin(
                    p, (p.c.account_id == a.c.account_id) & (p.c.digest == a.c.payload_digest)
                )
            )
            .where(
                a.c.account_id == sa.bindparam("account"),
                a.c.seq >= sa.bindparam("lo"),
                a.c.seq < sa.bindparam("hi"),
            )
            .order_by(a.c.seq)
        )
        compiled = q.compile(dialect=engine.dialect)
        found = (engine, compiled.string, compiled.positional, tuple(compiled.positiontup or ()))
        _queries[url] = found
    return found


def check_range(url: str, lo: int, hi: int, ctx: Context) -> Checked:
    """A worker reads records ``lo`` <= seq < ``hi`` (with their payloads) from the database
    itself, as plain driver tuples, and checks them and their payloads (sealed ones opened with the
    live data keys of the range's subjects; an erased subject's key is gone, its payloads too)."""
    from krabs.audit.sealing import check_row, keys_of

    engine, sql, positional, names = _range_query(url)
    values = {"account": ctx.account_id, "lo": lo, "hi": hi}
    params: Any = tuple(values[n] for n in names) if positional else values
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            cur.execute(sql, params)
            rows = cur.fetchall()
        finally:
            cur.close()
        subjects = sorted({s for r in rows for s in (r[8] or "").split()})
        keys = keys_of(conn, ctx.account_id, subjects) if subjects else {}
    out = check_rows(((int(r[0]), *r[1:6]) for r in rows), ctx)
    missing, bad = out.missing, out.bad_payloads
    for seq, _id, _rec, digest, _key, _sig, body, undo, subjects_of in rows:
        if body is None:
            missing.append((int(seq), str(digest)))
        elif not check_row(
            ctx.account_id,
            {"digest": digest, "body": body, "undo": undo, "subjects": subjects_of},
            keys,
        ):
            bad.append(int(seq))
    return out
