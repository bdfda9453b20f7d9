"""The audit log as an RFC 9162 (§2.1) Merkle tree, pure functions over 32-byte hashes.

A leaf is ``SHA-256(0x00 ‖ record bytes)`` and an interior node ``SHA-256(0x01 ‖ left ‖ right)``, so
the tree head over an account's records (in seq order) commits to every byte of every record, and
two heads of the same log can be proved consistent (the smaller is a prefix of the larger) without
the records. ``Frontier`` keeps the compact range of a growing tree (one hash per set bit of its size)
so a checkpoint every 1,000 records costs 1,000 hashes, not the whole log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof could exist for."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees covering leaves [0, size), largest first."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} frontier hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        h, size = leaf, self.size
        while size & 1:  # each trailing set bit is a perfect subtree of equal height: merge
            h = node_hash(self.hashes.pop(), h)
            size >>= 1
        self.hashes.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> Frontier:
        for leaf in leaves:
            self.append(leaf)
        return self

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the tree head over these leaf hashes."""
    return Frontier().extend(leaves).root()


def tree_levels(leaves: bytes) -> list[bytes]:
    """Every node of the tree over these concatenated 32-byte leaf hashes whose two children exist,
    level by level (level 0: the leaves), each level one byte string. One pass over the log gives
    the root at every size (``root_at``): how a verifier checks a checkpoint every 1,000 records of
    a million-record log without a Python object or a tree per checkpoint."""
    if len(leaves) % 32:
        raise ValueError("leaf hashes are 32 bytes each")
    sha = hashlib.sha256
    levels = [bytes(leaves)]
    level = levels[0]
    while len(level) >= 64:
        level = b"".join(
            [sha(b"\x01" + level[i : i + 64]).digest() for i in range(0, len(level) - 63, 64)]
        )
        levels.append(level)
    return levels


def root_at(levels: Sequence[bytes], size: int) -> bytes:
    """MTH of the first ``size`` leaves of ``tree_levels``: its perfect subtrees (one per set bit of
    ``size``, largest first, each an existing node) folded from the right (RFC 9162 §2.1.1)."""
    if not 0 <= size <= len(levels[0]) // 32:
        raise ValueError(f"no tree of {size} leaves in {len(levels[0]) // 32}")
    if size == 0:
        return EMPTY_ROOT
    hashes: list[bytes] = []
    offset = 0
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            at = 32 * (offset >> height)
            hashes.append(levels[height][at : at + 32])
            offset += 1 << height
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    return Frontier().extend(leaves[i] for i in range(lo, hi)).root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1), nearest sibling first."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"leaf index {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(leaves, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1) between the first ``old_size`` leaves and all of them."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ProofError(f"no consistency proof from size {old_size} to {n}")
    out: list[bytes] = []

    def sub(m: int, lo: int, hi: int, complete: bool) -> None:
        if m == hi - lo:
            if not complete:
                out.append(_mth(leaves, lo, hi))
            return
        k = _split(hi - lo)
        if m <= k:
            sub(m, lo, lo + k, complete)
            out.append(_mth(leaves, lo + k, hi))
        else:
            sub(m - k, lo + k, hi, False)
            out.append(_mth(leaves, lo, lo + k))

    sub(old_size, 0, n, True)
    return out


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (RFC 9162 §2.1.3.2); raises if it cannot be one."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ``ProofError`` unless ``leaf`` is leaf ``index`` of the tree of ``size`` with that root."""
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the tree head")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless the tree (old_size, old_root) is a prefix of (new_size, new_root)
    (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {old_size} leaves cannot precede one of {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need equal roots and an empty proof")
        return
    if old_size == 0:
        if proof or old_root != EMPTY_ROOT:
            raise ProofError("the empty tree needs the empty root and an empty proof")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {new_size}")
