"""Verify an account's signed audit log offline: from its export zip, its database, or a server.

Every record's leaf is recomputed from its stored bytes and every root from the leaves; the verifier
checks seq continuity (1..N, no gaps, no duplicates), each record against its row (seq, id, account)
and the hash chain, every signature against the key whose seq range covers it, that every key after
the first was announced by a rotation record signed by its predecessor, every checkpoint's root and
signatures (a rotation checkpoint needs both keys), that no checkpoint is beyond the log (a truncated
log), and each payload against its digest (payloads erased for GDPR are reported, not failed; sealed payloads are opened with the account's
live data keys and checked against their commitments).
Signature checks run on every core: they are most of the cost."""

from __future__ import annotations

import base64
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from krabs.audit import merkle, verify_pool
from krabs.audit.canonical import digest
from krabs.audit.checkpoint import NoteError, verify_note
from krabs.audit.signing import note_key_id
from krabs.audit.verify_arrays import LogArrays
from krabs.audit.verify_pool import in_order, map_batches
from krabs.audit.verify_work import ROTATION_OP as ROTATION_OP
from krabs.audit.verify_work import (
    Checked,
    Context,
    _raw32,
    check_batch,
    check_lines,
    check_payload_lines,
    check_payloads,
    check_range,
    erased_set_digest,
)

GENESIS = bytes(32)


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
    keys: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    #: Payload rows (digest, body), or None when the source cannot give them (a remote server).
    #: Action rows carry ``signing_key`` and ``signature`` (None before signing began).
    payloads: Iterable[dict[str, Any]] | None = None
    #: Erased payloads: digest -> seq of the erasure record.
    erased: dict[str, int] = field(default_factory=dict)
    #: An export's raw ``audit_actions.ndjson`` / ``audit_payloads.ndjson`` lines, parsed by the
    #: workers (instead of ``actions`` / ``payloads``).
    action_lines: Iterable[bytes] | None = None
    payload_lines: Iterable[bytes] | None = None
    #: The live data keys sealed payloads open with (subject -> base64; ``krabs.audit.sealing``).
    data_keys: dict[str, str] = field(default_factory=dict)
    #: A database workers read themselves, in seq ranges: (URL, highest seq). Then ``actions`` and
    #: ``payloads`` are not used.
    database: tuple[str, int] | None = None


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
    for k in out:
        if k.from_seq < 1 or (k.to_seq is not None and k.to_seq < k.from_seq):
            raise Tampered(0, f"key {k.name} has an impossible range")
    return out


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
    pins = list(pinned)
    report.pinned = bool(pins)
    procs = workers if workers is not None else (os.cpu_count() or 1)
    ctx = Context(
        data.account_id, tuple((k.name, k.public, k.from_seq, k.to_seq) for k in ranges), run_id
    )
    errors: list[Tampered] = []
    log = LogArrays()
    results: Iterable[Checked]
    if data.database is not None:
        results = _ranged(data.database, ctx, procs)
    elif data.action_lines is not None:
        results = map_batches(functools.partial(check_lines, ctx=ctx), data.action_lines, procs)
    else:
        results = map_batches(functools.partial(check_batch, ctx=ctx), data.actions, procs)
    missing: list[tuple[int, str]] = []
    bad_payloads: list[int] = []
    dups: list[int] = []
    for checked in results:
        errors += [Tampered(seq, why) for seq, why in checked.errors]
        dups += log.add(checked)
        report.signed += checked.signed
        if run_id:
            report.run_records = (report.run_records or 0) + checked.run_records
        missing += checked.missing
        bad_payloads += checked.bad_payloads
    dups += log.settle()
    errors += [
        Tampered(seq, "two records with this seq")
        if seq >= 1
        else Tampered(0, f"a record claims seq {seq}, below 1")
        for seq in dups
    ]
    if data.database is not None:
        if bad_payloads:
            errors.append(Tampered(min(bad_payloads), "payload differs from its digest"))
        for seq, d in sorted(missing):
            if d in data.erased:
                report.erased.append(f"#{seq} erased at #{data.erased[d]}")
            else:
                errors.append(Tampered(seq, "payload missing and not erased"))
                break
    n = report.records = log.n
    gaps = log.present.find(0, 0, n)
    if gaps >= 0:
        errors.append(Tampered(gaps + 1, "record missing (seq gap)"))
    report.unsigned_before_signing = min(min(k.from_seq for k in ranges) - 1, n) if ranges else n
    for phase in (
        lambda: _check_chain(log, ranges, run_id, report),
        lambda: _check_keys(log, ranges, pins),
        lambda: _check_payloads(data, log, report, procs),
        lambda: _check_erasures(data, log),
        lambda: None if gaps >= 0 else _check_checkpoints(data, ranges, log, since, report),
    ):
        try:
            phase()
        except Tampered as exc:
            errors.append(exc)
    if errors:
        raise min(errors, key=lambda e: e.seq or float("inf"))
    return report


def _ranged(database: tuple[str, int], ctx: Context, procs: int) -> Iterator[Checked]:
    """Workers read and check seq ranges of the database themselves (no rows through this one)."""
    url, top = database
    size = verify_pool.BATCH
    spans = [(lo, min(lo + size, top + 1)) for lo in range(1, top + 1, size)]
    tasks = [functools.partial(check_range, url, lo, hi, ctx) for lo, hi in spans]
    return in_order(tasks, procs if len(tasks) > 1 else 1)


def _check_chain(
    log: LogArrays, ranges: list[KeyRange], run_id: str | None, report: Report
) -> None:
    """The hash chain (each record's ``prev_hash`` is the previous record's hash) and the key
    ranges. Compared as two shifted arrays at once; only a broken chain is walked record by
    record, to name where it breaks."""
    size = 32 * log.n
    if log.n and (log.prev[:32] != GENESIS or log.prev[32:size] != log.own[: size - 32]):
        prev = GENESIS
        for seq in range(1, log.n + 1):
            at = 32 * (seq - 1)
            if log.prev[at : at + 32] != prev:
                raise Tampered(seq, "prev_hash does not match the previous record (chain broken)")
            prev = bytes(log.own[at : at + 32])
    late = [k for k in ranges if k.from_seq > log.n + 1]
    if late:
        raise Tampered(log.n + 1, f"key {late[0].name} starts beyond the log's {log.n} records")
    if run_id is not None and not report.run_records:
        raise Tampered(0, f"no record of run {run_id} in the log")


_SUBJECTS = re.compile(rb'"subjects":\s*"([^"]*)"')


def _keys_named(line: bytes, keys: dict[str, str]) -> dict[str, str]:
    """The data keys of the subjects a payload line names (a misread name only withholds a key,
    which makes that payload fail its check: never a false pass)."""
    found = _SUBJECTS.search(line)
    if found is None:
        return {}
    names = found.group(1).decode("ascii", "replace").split()
    return {k: keys[k] for k in names if k in keys}


def _check_payloads(data: LogData, log: LogArrays, report: Report, procs: int) -> None:
    """An export's payloads (the database path checks them in its workers): every record's payload
    is present and matches its digest, or was erased."""
    keys = data.data_keys
    if data.payload_lines is not None:
        # Each line goes with the keys of the subjects it names (found without parsing it here).
        lines = ((line, _keys_named(line, keys)) for line in data.payload_lines)
        check_lines_ = functools.partial(check_payload_lines, account_id=data.account_id)
        checked = map_batches(check_lines_, lines, procs)
    elif data.payloads is not None:
        rows = (
            {**r, "keys": {k: keys[k] for k in (r.get("subjects") or "").split() if k in keys}}
            for r in data.payloads
        )
        checked = map_batches(
            functools.partial(check_payloads, account_id=data.account_id), rows, procs
        )
    else:
        return
    present: set[bytes] = set()
    bad: list[str] = []
    for good, wrong in checked:
        present.update(_raw32(d) for d in good)
        bad += wrong
    erased = {_raw32(d): seq for d, seq in data.erased.items()}
    erased.pop(bytes(32), None)  # not a digest: erases nothing
    digests = bytes(log.payload[: 32 * log.n])
    first_bad = None
    for seq in range(1, log.n + 1):
        d = digests[32 * (seq - 1) : 32 * seq]
        if d in present:
            continue
        if d in erased:
            report.erased.append(f"#{seq} erased at #{erased[d]}")
            continue
        first_bad = first_bad or seq
    if bad:
        wrong_digests = {_raw32(d) for d in bad}
        owners = [s for s in range(1, log.n + 1) if digests[32 * (s - 1) : 32 * s] in wrong_digests]
        raise Tampered(
            min(owners, default=0), "payload differs from its digest (arguments or images altered)"
        )
    if first_bad is not None:
        raise Tampered(first_bad, "payload missing and not erased")


def _check_checkpoints(
    data: LogData, ranges: list[KeyRange], log: LogArrays, since: str | None, report: Report
) -> None:
    """Every stored checkpoint (and ``since``): signatures, origin, size within the log, root."""
    n = log.n
    cps = sorted(data.checkpoints, key=lambda c: int(c["size"]))
    for cp in cps:
        if int(cp["size"]) > n:
            raise Tampered(
                n + 1, f"a checkpoint covers {cp['size']} records but the log has {n} (truncated)"
            )
    levels = merkle.tree_levels(bytes(log.leaves[: 32 * n]))
    report.root_hash = merkle.root_at(levels, n).hex()
    publics = {k.name: k.public for k in ranges}
    extra = [{"size": None, "note": since, "root": None}] if since is not None else []
    for cp in [*cps, *extra]:
        which = f"checkpoint at {cp['size']}" if cp["size"] else "--since checkpoint"
        size = int(cp["size"] or 0)
        try:
            note = verify_note(cp["note"], publics, need=_needed(log, ranges, cp["size"]))
        except NoteError as exc:
            raise Tampered(size, f"{which}: {exc}") from None
        valid = {k.name for k in ranges if k.covers(note.size) or k.from_seq == note.size + 1}
        for name, key_id, _sig in note.signatures:
            public = publics.get(name)
            if public and note_key_id(name, public) == key_id and name not in valid:
                raise Tampered(size, f"{which}: signed by {name}, a key not valid at that size")
        if note.origin != f"krabs/{data.account_id}":
            raise Tampered(size, f"{which} is for {note.origin[:80]}, not this account")
        if note.size > n:
            raise Tampered(
                n + 1, f"{which} covers {note.size} records but the log has {n} (truncated)"
            )
        if note.root != merkle.root_at(levels, note.size):
            raise Tampered(
                note.size, f"{which}: root differs from the records' (history rewritten)"
            )
        if cp["size"] is not None and (
            size != note.size or (cp.get("root") and cp["root"] != note.root.hex())
        ):
            raise Tampered(note.size, f"{which}: row differs from its signed note")
    report.checkpoints = len(cps)


def _check_erasures(data: LogData, log: LogArrays) -> None:
    """Every erasure row points at a ``contact.erased`` record, and each such record's committed
    set is exactly the rows pointing at it: an erasure row slipped in to excuse a deleted payload,
    or one dropped, is tampering."""
    by_seq: dict[int, set[str]] = {}
    for d, seq in data.erased.items():
        by_seq.setdefault(seq, set()).add(d)
    for seq in sorted(by_seq):
        committed = log.erasures.get(seq)
        if committed is None:
            raise Tampered(seq, "erasure rows point at a record that is not a contact.erased")
        found = by_seq[seq]
        if committed != {"count": len(found), "digest": erased_set_digest(found)}:
            raise Tampered(
                seq, "erasure rows differ from the set the contact.erased record committed to"
            )


def _rotated_from(log: LogArrays, ranges: list[KeyRange], new: KeyRange) -> KeyRange | None:
    """The key ``new`` replaced: a rotation record just before its range, signed by the old key
    (whose range ends there), commits to exactly this new key."""
    seq = new.from_seq - 1
    for old in ranges:
        if old.to_seq == seq and old is not new:
            pub = base64.b64encode(new.public).decode()
            if log.rotations.get(seq) == digest(rotation_result(old.name, new.name, pub)):
                return old
    return None


def _check_keys(log: LogArrays, ranges: list[KeyRange], pins: list[bytes]) -> None:
    """With pins: every key is pinned or was rotated in from an accepted key (so a key slipped into
    the database is refused). A closed range must end in a rotation."""
    accepted: set[str] = set()
    for k in ranges:
        old = _rotated_from(log, ranges, k)
        if k.public in pins or (old is not None and old.name in accepted) or not pins:
            accepted.add(k.name)
        else:
            raise Tampered(k.from_seq, f"key {k.name} is neither pinned nor rotated in")
    for k in ranges:
        if k.to_seq is not None and not any(
            n.from_seq == k.to_seq + 1 and _rotated_from(log, ranges, n) is k for n in ranges
        ):
            raise Tampered(k.to_seq, f"key {k.name} stops here without a rotation record")


def _needed(log: LogArrays, ranges: list[KeyRange], size: int | None) -> list[str]:
    """Keys that must have signed a checkpoint: at a rotation, the old key and the new one."""
    if size is None:
        return []
    pairs = [(k, _rotated_from(log, ranges, k)) for k in ranges if k.from_seq == size + 1]
    return [name for new, old in pairs if old is not None for name in (old.name, new.name)]
