"""Verify an account's signed audit log offline: from its export zip, its database, or a server.

Every record's leaf is recomputed from its stored bytes and every root from the leaves; the verifier
checks seq continuity (1..N, no gaps, no duplicates), each record against its row (seq, id, account)
and the hash chain, every signature against the key whose seq range covers it, that every key after
the first was announced by a rotation record signed by its predecessor, every checkpoint's root and
signatures (a rotation checkpoint needs both keys), that no checkpoint is beyond the log (a truncated
log), and each payload against its digest (payloads erased for GDPR are reported, not failed).
Signature checks run on every core: they are most of the cost."""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from krabs.audit import merkle
from krabs.audit.canonical import digest
from krabs.audit.checkpoint import NoteError, verify_note
from krabs.audit.signing import verify as verify_signature

GENESIS = "0" * 64
ROTATION_OP = "audit.key_rotated"
#: Signatures per task handed to a worker process.
CHUNK = 20_000


class Tampered(Exception):
    """The log does not verify: ``seq`` names the first bad record (0: not about one record)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"record #{seq}: {reason}" if seq else reason)
        self.seq, self.reason = seq, reason


@dataclass
class KeyRange:
    name: str
    public: bytes
    from_seq: int
    to_seq: int | None

    def covers(self, seq: int) -> bool:
        return self.from_seq <= seq and (self.to_seq is None or seq <= self.to_seq)


@dataclass
class LogData:
    """What a source yields; rows are plain dicts as the tables (and the export) spell them."""

    account_id: str
    actions: Iterable[dict[str, Any]]
    signatures: Iterable[dict[str, Any]]
    keys: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    #: Payload rows (digest, body), or None when the source cannot give them (a remote server).
    payloads: Iterable[dict[str, Any]] | None = None
    #: Erased payloads: digest -> seq of the erasure record.
    erased: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    account_id: str
    records: int = 0
    signed: int = 0
    unsigned_before_signing: int = 0
    checkpoints: int = 0
    keys: list[str] = field(default_factory=list)
    root_hash: str = merkle.EMPTY_ROOT.hex()
    run_records: int | None = None
    erased: list[str] = field(default_factory=list)
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rotation_result(old: str, new: str, public_b64: str) -> dict[str, Any]:
    """The result a key-rotation record commits to (its ``result_digest``)."""
    return {"object": "key_rotation", "old_key": old, "new_key": new, "public_key": public_b64}


def _ranges(rows: list[dict[str, Any]]) -> list[KeyRange]:
    out = []
    for r in sorted(rows, key=lambda r: int(r["from_seq"])):
        try:
            public = base64.b64decode(r["public_key"], validate=True)
        except ValueError:
            raise Tampered(0, f"key {r['name']} is not base64") from None
        to_seq = None if r["to_seq"] is None else int(r["to_seq"])
        out.append(KeyRange(str(r["name"]), public, int(r["from_seq"]), to_seq))
    for a, b in itertools.pairwise(out):
        if a.to_seq is None or b.from_seq != a.to_seq + 1:
            raise Tampered(b.from_seq, f"key {b.name} does not take over where {a.name} ends")
    return out


def _check_chunk(args: tuple[bytes, bytes, bytes, list[bytes], int]) -> list[int]:
    """Worker: indexes (within the chunk) of signatures that do not verify."""
    leaves, sigs, key_idx, publics, n = args
    bad = []
    for i in range(n):
        pub = publics[key_idx[i]]
        if not verify_signature(pub, sigs[i * 64 : i * 64 + 64], leaves[i * 32 : i * 32 + 32]):
            bad.append(i)
    return bad


Leaf = tuple[bytes, str, str, dict[str, Any]]


def verify_log(
    data: LogData,
    *,
    pinned: Iterable[bytes] = (),
    since: str | None = None,
    run_id: str | None = None,
    workers: int | None = None,
) -> Report:
    """Verify everything; raise ``Tampered`` naming the first bad record and why. Every check runs,
    and the lowest record any of them faults is the one reported (a flipped byte in record 3 breaks
    both its signature and record 4's chain link: record 3 is the culprit)."""
    report = Report(data.account_id)
    ranges = _ranges(data.keys)
    report.keys = [k.name for k in ranges]
    pinned = list(pinned)
    if pinned:
        if not ranges or ranges[0].public not in pinned:
            raise Tampered(0, "the log's first signing key is not the pinned key")
        report.pinned = True
    errors: list[Tampered] = []
    by_seq = _parse(data, errors)
    n = max(by_seq, default=0)
    report.records = n
    gaps = [seq for seq in range(1, n + 1) if seq not in by_seq]
    errors += [Tampered(seq, "record missing (seq gap)") for seq in gaps[:1]]
    for phase in (
        lambda: _check_chain(by_seq, n, ranges, run_id, report),
        lambda: _check_signatures(data, ranges, by_seq, n, report, workers),
        lambda: _check_payloads(data, by_seq, report),
        lambda: None if gaps else _check_checkpoints(data, ranges, by_seq, n, since, report),
    ):
        try:
            phase()
        except Tampered as exc:
            errors.append(exc)
    if errors:
        raise min(errors, key=lambda e: e.seq or float("inf"))
    return report


def _parse(data: LogData, errors: list[Tampered]) -> dict[int, Leaf]:
    """Records by seq, each checked against its row: its leaf, chain hash and the fields used later."""
    by_seq: dict[int, Leaf] = {}
    for row in data.actions:
        seq = int(row["seq"])
        text = row["record"]
        raw = text.encode()
        try:
            record = json.loads(text)
        except ValueError:
            errors.append(Tampered(seq, "record is not JSON"))
            continue
        if seq in by_seq:
            errors.append(Tampered(seq, "two records with this seq"))
        elif not isinstance(record, dict) or record.get("seq") != seq:
            said = record.get("seq") if isinstance(record, dict) else "?"
            errors.append(Tampered(seq, f"record says seq {said}, stored at seq {seq}"))
        elif record.get("id") != row["id"] or record.get("account") != data.account_id:
            errors.append(Tampered(seq, "record's id or account differs from its row"))
        elif record.get("payload_digest") != row.get("payload_digest", record["payload_digest"]):
            errors.append(Tampered(seq, "payload_digest differs from its row"))
        slim = {k: record.get(k) for k in ("op", "result_digest", "payload_digest", "run")}
        by_seq.setdefault(
            seq,
            (merkle.leaf_hash(raw), sha256(raw).hexdigest(), str(record.get("prev_hash")), slim),
        )
    return by_seq


def _check_chain(
    by_seq: dict[int, Leaf], n: int, ranges: list[KeyRange], run_id: str | None, report: Report
) -> None:
    """The hash chain, the rotation records and run membership, in seq order."""
    prev: str | None = GENESIS
    starts = {k.from_seq: k for k in ranges}
    for seq in range(1, n + 1):
        entry = by_seq.get(seq)
        if entry is None:
            prev = None
            continue
        _leaf, own, prev_hash, slim = entry
        if prev is not None and prev_hash != prev:
            raise Tampered(seq, "prev_hash does not match the previous record (chain broken)")
        prev = own
        nxt = starts.get(seq + 1)
        if nxt is not None and nxt is not ranges[0]:
            old = next(k for k in ranges if k.to_seq == seq)
            want = digest(
                rotation_result(old.name, nxt.name, base64.b64encode(nxt.public).decode())
            )
            if slim["op"] != ROTATION_OP or slim["result_digest"] != want:
                raise Tampered(seq, f"key {nxt.name} takes over without a rotation record here")
        if run_id is not None and slim["run"] == run_id:
            report.run_records = (report.run_records or 0) + 1
    if ranges and ranges[-1].from_seq > n + 1:
        raise Tampered(n + 1, f"key {ranges[-1].name} starts beyond the log's {n} records")
    if run_id is not None and not report.run_records:
        raise Tampered(0, f"no record of run {run_id} in the log")


def _check_checkpoints(
    data: LogData,
    ranges: list[KeyRange],
    by_seq: dict[int, Leaf],
    n: int,
    since: str | None,
    report: Report,
) -> None:
    """Every stored checkpoint (and ``since``): signatures, origin, size within the log, root."""
    cps = sorted(data.checkpoints, key=lambda c: int(c["size"]))
    for cp in cps:
        if int(cp["size"]) > n:
            raise Tampered(
                n + 1, f"a checkpoint covers {cp['size']} records but the log has {n} (truncated)"
            )
    frontier = merkle.Frontier()
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    wanted = {int(c["size"]) for c in cps}
    for seq in range(1, n + 1):
        frontier.append(by_seq[seq][0])
        if seq in wanted or seq == n:
            roots[seq] = frontier.root()
    report.root_hash = roots[n].hex()
    publics = {k.name: k.public for k in ranges}
    extra = [{"size": None, "note": since, "root": None}] if since is not None else []
    for cp in [*cps, *extra]:
        which = f"checkpoint at {cp['size']}" if cp["size"] else "--since checkpoint"
        size = int(cp["size"] or 0)
        try:
            note = verify_note(cp["note"], publics, need=_needed(ranges, cp["size"]))
        except NoteError as exc:
            raise Tampered(size, f"{which}: {exc}") from None
        if note.origin != f"krabs/{data.account_id}":
            raise Tampered(size, f"{which} is for {note.origin[:80]}, not this account")
        if note.size > n:
            raise Tampered(
                n + 1, f"{which} covers {note.size} records but the log has {n} (truncated)"
            )
        root = roots.get(note.size)
        if root is None:
            root = merkle.root([by_seq[s][0] for s in range(1, note.size + 1)])
        if note.root != root:
            raise Tampered(
                note.size, f"{which}: root differs from the records' (history rewritten)"
            )
        if cp["size"] is not None and (
            size != note.size or (cp.get("root") and cp["root"] != note.root.hex())
        ):
            raise Tampered(note.size, f"{which}: row differs from its signed note")
    report.checkpoints = len(cps)


def _needed(ranges: list[KeyRange], size: int | None) -> list[str]:
    """Keys that must have signed a checkpoint: the one covering its last record, plus the next one
    when a rotation happens exactly there."""
    if size is None:
        return []
    return [k.name for k in ranges if k.covers(size) or k.from_seq == size + 1]


def _check_signatures(
    data: LogData,
    ranges: list[KeyRange],
    by_seq: dict[int, Leaf],
    n: int,
    report: Report,
    workers: int | None,
) -> None:
    sigs: dict[int, tuple[str, str]] = {}
    for row in data.signatures:
        sigs[int(row["seq"])] = (row["key_name"], row["signature"])
    first = ranges[0].from_seq if ranges else n + 1
    report.unsigned_before_signing = min(first - 1, n)
    extra = [s for s in sigs if s > n or s < 1]
    if extra:
        raise Tampered(min(extra), "a signature for a record that does not exist")
    publics = [k.public for k in ranges]
    index = {k.name: i for i, k in enumerate(ranges)}
    leaves, blobs, key_idx, seqs = bytearray(), bytearray(), bytearray(), []
    ki = 0
    for seq in range(first, n + 1):
        while ki < len(ranges) - 1 and not ranges[ki].covers(seq):
            ki += 1
        if seq not in by_seq:
            continue
        got = sigs.get(seq)
        if got is None:
            raise Tampered(seq, "record is not signed")
        name, sig_b64 = got
        if name != ranges[ki].name:
            raise Tampered(seq, f"signed by {name[:80]}, but {ranges[ki].name} signs records here")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except ValueError:
            raise Tampered(seq, "signature is not base64") from None
        if len(sig) != 64:
            raise Tampered(seq, "signature is not 64 bytes")
        leaves += by_seq[seq][0]
        blobs += sig
        key_idx.append(index[name])
        seqs.append(seq)
    for seq in range(1, first):
        if seq in sigs:
            raise Tampered(seq, "signed before any key's range begins")
    tasks = []
    for start in range(0, len(seqs), CHUNK):
        count = min(CHUNK, len(seqs) - start)
        tasks.append(
            (
                bytes(leaves[start * 32 : (start + count) * 32]),
                bytes(blobs[start * 64 : (start + count) * 64]),
                bytes(key_idx[start : start + count]),
                publics,
                count,
            )
        )
    procs = workers if workers is not None else (os.cpu_count() or 1)
    results: Iterator[list[int]]
    if procs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=procs) as pool:
            results = iter(list(pool.map(_check_chunk, tasks)))
    else:
        results = map(_check_chunk, tasks)
    for t, bad in enumerate(results):
        if bad:
            seq = seqs[t * CHUNK + bad[0]]
            raise Tampered(seq, "signature does not match the record (record or signature altered)")
    report.signed = len(seqs)


def _check_payloads(
    data: LogData,
    by_seq: dict[int, Leaf],
    report: Report,
) -> None:
    if data.payloads is None:
        return
    present: set[str] = set()
    for row in data.payloads:
        if sha256(row["body"].encode()).hexdigest() != row["digest"]:
            owner = next(
                (s for s, v in by_seq.items() if v[3]["payload_digest"] == row["digest"]), 0
            )
            raise Tampered(owner, "payload differs from its digest (arguments or images altered)")
        present.add(row["digest"])
    for seq in sorted(by_seq):
        d = by_seq[seq][3]["payload_digest"]
        if d in present:
            continue
        if d in data.erased:
            report.erased.append(f"#{seq} erased at #{data.erased[d]}")
            continue
        raise Tampered(seq, "payload missing and not erased")


Fetch = Callable[[str, dict[str, Any]], dict[str, Any]]
