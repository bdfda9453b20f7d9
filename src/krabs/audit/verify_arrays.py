"""The verifier's per-seq results in flat arrays, filled batch by batch from the workers."""

from __future__ import annotations

from typing import Any

from krabs.audit.verify_work import Checked


class LogArrays:
    """Per-seq results in flat arrays (32 bytes a field): a million records fit in ~130 MB. A batch
    of consecutive seqs (every batch of an intact log) is copied in whole. The arrays only grow to
    seqs near the number of rows seen; a record claiming a seq far beyond waits in ``far`` until all
    rows are in (``settle``), so a hostile export's seq 10**15 is a gap, not an exabyte array."""

    def __init__(self) -> None:
        self.leaves, self.own, self.prev, self.payload = (bytearray() for _ in range(4))
        self.present = bytearray()
        self.rotations: dict[int, str | None] = {}
        self.erasures: dict[int, Any] = {}
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
        self.erasures.update(c.erasures)
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
