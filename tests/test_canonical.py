"""The fast canonical-JSON path must produce exactly the bytes of the RFC 8785 reference."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from krabs.audit.canonical import _simple, canonical

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(_json)
def test_fast_path_matches_the_reference(value):
    assert canonical(value) == rfc8785.dumps(value)


def test_floats_and_astral_keys_take_the_reference_path():
    for value in ({"n": 1.5}, [1e21], {"\U0001f980": 1, "\ufb01": 2}):
        assert not _simple(value)
        assert canonical(value) == rfc8785.dumps(value)
    assert _simple({"a": [1, "x", None, True]})


@settings(max_examples=300, deadline=None)
@given(_json, _json, _json | st.floats(allow_nan=False, allow_infinity=False))
def test_a_payload_spliced_from_canonical_parts_is_the_canonical_whole(args, changes, result):
    # krabs.audit.log builds each payload this way, encoding the result (hashed on its own) once.
    parts = (b'{"args":', canonical(args), b',"changes":', canonical(changes), b',"result":')
    spliced = b"".join((*parts, canonical(result), b"}"))
    assert spliced == rfc8785.dumps({"result": result, "changes": changes, "args": args})
