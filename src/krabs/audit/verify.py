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
import functools
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from krabs.audit import merkle
from krabs.audit.canonical import digest
from krabs.audit.checkpoint import NoteError, verify_note
from krabs.audit.signing import note_key_id
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
)

GENESIS = bytes(32)
#: Rows per task handed to a worker process.
BATCH = 10_000
T = TypeVar("T")


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


def _batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _run(fn: Callable[[list[Any]], T], rows: Iterable[Any], workers: int) -> Iterator[T]:
    """``fn`` over batches of ``rows``: in this process for one batch (or one worker), else on a
    pool of ``workers`` processes with a bounded number of batches in flight."""
    batches = _batches(rows, BATCH)
    first = next(batches, None)
    if first is None:
        return
    if workers <= 1 or len(first) < BATCH:
        yield fn(first)
        for batch in batches:
            yield fn(batch)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[T]] = deque([pool.submit(fn, first)])
        for batch in batches:
            pending.append(pool.submit(fn, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Log:
    """Per-seq results in flat arrays (32 bytes a field): a million records fit in ~130 MB. A batch
    of consecutive seqs (every batch of an intact log) is copied in whole. The arrays only grow to
    seqs near the number of rows seen; a record claiming a seq far beyond waits in ``far`` until all
    rows are in (``settle``), so a hostile export's seq 10**15 is a gap, not an exabyte array."""

    def __init__(self) -> None:
        self.leaves, self.own, self.prev, self.payload = (bytearray() for _ in range(4))
        self.present = bytearray()
        self.rotations: dict[int, str | None] = {}
        self.n = 0
        self.taken = 0
        self.far: list[tuple[int, bytes, bytes, bytes, bytes]] = []

    def _cap(self) -> int:
        return max(1 << 20, 4 * (self.taken + len(self.far)))

    def _grow(self, top: int) -> None:
        if top > len(self.present):
            grow = max(top, 2 * len(self.present)) - len(self.present)
            self.present += bytes(grow)
            for arr in (self.leaves, self.own, self.prev, self.payload):
                arr += bytes(32 * grow)

    def add(self, c: Checked) -> list[int]:
        """Take a batch's records; returns the seqs already taken (or impossible)."""
        seqs = c.seqs
        self.rotations.update(c.rotations)
        if not seqs:
            return []
        lo, k = seqs[0], len(seqs)
        hi = lo + k - 1
        if lo >= 1 and seqs[-1] == hi and hi <= self._cap() and seqs == list(range(lo, hi + 1)):
            self._grow(hi)
            if self.present.find(1, lo - 1, hi) < 0:
                self.present[lo - 1 : hi] = b"\x01" * k
                at, size = 32 * (lo - 1), 32 * k
                self.leaves[at : at + size] = c.leaves
                self.own[at : at + size] = c.own
                self.prev[at : at + size] = c.prev
                self.payload[at : at + size] = c.payload
                self.n = max(self.n, hi)
                self.taken += k
                return []
        dups = []
        for i, seq in enumerate(seqs):
            src = slice(32 * i, 32 * i + 32)
            fields = (c.leaves[src], c.own[src], c.prev[src], c.payload[src])
            if seq > self._cap():
                self.far.append(
                    (seq, bytes(fields[0]), bytes(fields[1]), bytes(fields[2]), bytes(fields[3]))
                )
            elif not self._place(seq, fields):
                dups.append(seq)
        return dups

    def _place(self, seq: int, fields: tuple[bytes | bytearray, ...]) -> bool:
        if seq < 1:
            return False
        self._grow(seq)
        if self.present[seq - 1]:
            return False
        self.present[seq - 1] = 1
        at = 32 * (seq - 1)
        for arr, value in zip(
            (self.leaves, self.own, self.prev, self.payload), fields, strict=True
        ):
            arr[at : at + 32] = value
        self.n = max(self.n, seq)
        self.taken += 1
        return True

    def settle(self) -> list[int]:
        """Place the far records now that the number of rows is known; returns duplicate seqs. One
        beyond that number means some seq up to it is missing: ``n`` then covers it (a gap)."""
        total = self.taken + len(self.far)
        far, self.far = sorted(self.far), []
        dups = [seq for seq, *fields in far if seq <= total and not self._place(seq, tuple(fields))]
        if far and far[-1][0] > total:
            self._grow(total)
            self.n = max(self.n, total)
        return dups


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
    log = _Log()
    results: Iterable[Checked]
    if data.database is not None:
        results = _ranged(data.database, ctx, procs)
    elif data.action_lines is not None:
        results = _run(functools.partial(check_lines, ctx=ctx), data.action_lines, procs)
    else:
        results = _run(functools.partial(check_batch, ctx=ctx), data.actions, procs)
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
    spans = [(lo, min(lo + BATCH, top + 1)) for lo in range(1, top + 1, BATCH)]
    tasks = [functools.partial(check_range, url, lo, hi, ctx) for lo, hi in spans]
    if procs <= 1 or len(tasks) <= 1:
        yield from map(_call, tasks)
        return
    with ProcessPoolExecutor(max_workers=procs) as pool:
        pending: deque[Future[Checked]] = deque()
        for task in tasks:
            pending.append(pool.submit(task))
            if len(pending) >= 2 * procs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _call(task: Callable[[], T]) -> T:
    return task()


def _check_chain(log: _Log, ranges: list[KeyRange], run_id: str | None, report: Report) -> None:
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


def _check_payloads(data: LogData, log: _Log, report: Report, procs: int) -> None:
    """An export's payloads (the database path checks them in its workers): every record's payload
    is present and matches its digest, or was erased."""
    if data.payload_lines is not None:
        checked = _run(check_payload_lines, data.payload_lines, procs)
    elif data.payloads is not None:
        checked = _run(check_payloads, data.payloads, procs)
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
    data: LogData, ranges: list[KeyRange], log: _Log, since: str | None, report: Report
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


def _rotated_from(log: _Log, ranges: list[KeyRange], new: KeyRange) -> KeyRange | None:
    """The key ``new`` replaced: a rotation record just before its range, signed by the old key
    (whose range ends there), commits to exactly this new key."""
    seq = new.from_seq - 1
    for old in ranges:
        if old.to_seq == seq and old is not new:
            pub = base64.b64encode(new.public).decode()
            if log.rotations.get(seq) == digest(rotation_result(old.name, new.name, pub)):
                return old
    return None


def _check_keys(log: _Log, ranges: list[KeyRange], pins: list[bytes]) -> None:
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


def _needed(log: _Log, ranges: list[KeyRange], size: int | None) -> list[str]:
    """Keys that must have signed a checkpoint: at a rotation, the old key and the new one."""
    if size is None:
        return []
    pairs = [(k, _rotated_from(log, ranges, k)) for k in ranges if k.from_seq == size + 1]
    return [name for new, old in pairs if old is not None for name in (old.name, new.name)]
