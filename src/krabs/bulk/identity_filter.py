"""Which identities an import need not look up: a Bloom filter of the account's live identity
hashes, kept current with the ones the import adds.

A million-row import probes the identity index two million times to find rows naming an existing
contact, and nearly every probe finds nothing: at that size each costs several microseconds of
B-tree descent and page reads (18 s of a 120 s import). A hash the filter has never seen is known
to be new without a query; the rest (the true matches and about 2% false positives) are looked up
as before, so the outcome is exactly that of looking everything up. Bits, not a ``set``: a set of
three million hashes would take some 300 MB, the filter takes 4 MB.

Written here rather than taken from a library: the Bloom filter packages on PyPI either need a
compiler toolchain of their own or hash the key again; the key here is already a SHA-256."""

from __future__ import annotations

import math

#: Bits per expected entry; three probes per entry (36-bit windows of the hash's first 108 bits,
#: parsed once): about 1.7 % false positives.
BITS_PER_ENTRY = 10
_HEX_DIGITS = 27


class IdentityFilter:
    """A Bloom filter over ``norm_hash`` values (hex SHA-256 prefixes, so uniformly distributed: the
    probe positions are slices of the hash itself)."""

    def __init__(self, expected: int) -> None:
        self.size = max(1 << 16, int(expected * BITS_PER_ENTRY))
        self._bits = bytearray(math.ceil(self.size / 8))

    def add(self, norm_hash: str) -> None:
        """Remember ``norm_hash``. One that is not hex SHA-256 (a row written by hand) is left
        out: no identity normalized here hashes to it, so none can match it."""
        bits, size = self._bits, self.size
        try:
            v = int(norm_hash[:_HEX_DIGITS], 16)
        except ValueError:
            return
        for p in (v % size, (v >> 36) % size, (v >> 72) % size):
            bits[p >> 3] |= 1 << (p & 7)

    def may_contain(self, norm_hash: str) -> bool:
        """False: never added. True: maybe (look it up). Unrolled: it runs for every identity."""
        bits, size = self._bits, self.size
        v = int(norm_hash[:_HEX_DIGITS], 16)
        p = v % size
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (v >> 36) % size
        if not bits[p >> 3] & (1 << (p & 7)):
            return False
        p = (v >> 72) % size
        return bool(bits[p >> 3] & (1 << (p & 7)))
