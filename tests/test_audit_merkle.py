"""The Merkle tree against the RFC 6962/9162 reference vectors.

The leaf inputs, roots, inclusion paths and consistency proofs are the reference data of the
Certificate Transparency implementations: transparency-dev/merkle ``testonly/constants.go``
(``LeafInputs``, ``RootHashes``, ``NodeHashes``) and ``testonly/reference_test.go``
(``TestRefInclusionProof``, ``TestRefConsistencyProof``), found with the code search; they are
not derived from this implementation."""

from __future__ import annotations

import hashlib

import pytest

from krabs.audit import merkle

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
INCLUSION = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

H = [merkle.leaf_hash(x) for x in LEAVES]


def hexes(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


def test_leaf_hashes_are_domain_separated():
    assert hexes(H) == LEAF_HASHES
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()


@pytest.mark.parametrize("n", range(9))
def test_reference_roots(n):
    assert merkle.root(H[:n]).hex() == ROOTS[n]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_reference_inclusion_proofs(index, size, path):
    proof = merkle.inclusion_proof(H[:size], index)
    assert hexes(proof) == path
    root = bytes.fromhex(ROOTS[size])
    merkle.verify_inclusion(index, size, H[index], proof, root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_reference_consistency_proofs(old, new, path):
    proof = merkle.consistency_proof(H[:new], old)
    assert hexes(proof) == path
    merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), proof)


def synthetic(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"record {i}".encode()) for i in range(n)]


def test_every_proof_verifies_and_every_mutation_fails():
    leaves = synthetic(21)
    roots = [merkle.root(leaves[:n]) for n in range(22)]
    for size in range(1, 22):
        for i in range(size):
            proof = merkle.inclusion_proof(leaves[:size], i)
            merkle.verify_inclusion(i, size, leaves[i], proof, roots[size])
            bad_leaf = leaves[(i + 1) % size] if size > 1 else b"\x00" * 32
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(i, size, bad_leaf, proof, roots[size])
            if proof:
                with pytest.raises(merkle.ProofError):
                    merkle.verify_inclusion(i, size, leaves[i], proof[:-1], roots[size])
                with pytest.raises(merkle.ProofError):
                    merkle.verify_inclusion(i, size, leaves[i], [*proof, proof[0]], roots[size])
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(leaves[:size], old)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)
            if old < size:
                with pytest.raises(merkle.ProofError):
                    merkle.verify_consistency(old, size, roots[old], roots[size], proof[:-1])
                with pytest.raises(merkle.ProofError):
                    merkle.verify_consistency(old, size, roots[size], roots[size], proof)


def test_rewritten_history_is_not_consistent():
    honest = synthetic(6)
    forged = list(honest)
    forged[2] = merkle.leaf_hash(b"forged")
    proof = merkle.consistency_proof(forged, 4)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(4, 6, merkle.root(honest[:4]), merkle.root(forged), proof)


def test_frontier_grows_like_the_tree():
    leaves = synthetic(40)
    f = merkle.Frontier()
    for n, leaf in enumerate(leaves, 1):
        f.append(leaf)
        assert f.root() == merkle.root(leaves[:n])
        again = merkle.Frontier(f.size, f.hashes)
        assert again.root() == f.root()


def test_one_pass_of_levels_gives_the_root_at_every_size():
    """The verifier's single pass (``tree_levels`` + ``root_at``) agrees with the RFC's reference
    roots and with the growing tree at every size of a log whose size is no power of two."""
    levels = merkle.tree_levels(b"".join(H))
    assert [merkle.root_at(levels, n).hex() for n in range(9)] == ROOTS
    leaves = synthetic(70)
    levels = merkle.tree_levels(b"".join(leaves))
    f = merkle.Frontier()
    assert merkle.root_at(levels, 0) == merkle.EMPTY_ROOT
    for n, leaf in enumerate(leaves, 1):
        f.append(leaf)
        assert merkle.root_at(levels, n) == f.root()
    with pytest.raises(ValueError):
        merkle.root_at(levels, 71)
    with pytest.raises(ValueError):
        merkle.tree_levels(b"\x00" * 33)


def test_hostile_arguments():
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(H, 8)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(H, 0)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(5, 3, merkle.root(H[:5]), merkle.root(H[:3]), [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(9, 8, H[0], [], merkle.root(H))
    with pytest.raises(ValueError):
        merkle.Frontier(3, [H[0]])
