"""RFC 8785 canonical JSON: the exact bytes that are hashed, stored and later verified.

The ``rfc8785`` package is the reference, but it is pure Python and costs ~150 µs on a typical write
payload. For values with no floats and no astral-plane object keys, RFC 8785 output is byte-identical
to the C ``json`` encoder with sorted keys, no ASCII escaping and compact separators (its string
escapes match ECMAScript's), so those take the fast path; anything else goes to the reference. A
test checks both paths agree on generated data."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

_fast = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


_SCALARS = frozenset((str, int, bool, type(None)))


def _simple(value: Any) -> bool:
    """Only str/int/bool/None scalars and BMP-only object keys: the fast path's domain. Scalars are
    checked where they sit; only containers go on the stack (this runs on every write's payload)."""
    scalars = _SCALARS
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            for k in v:
                if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                    return False
            items = v.values()
        elif t is list:
            items = v
        elif t in scalars:
            continue
        else:
            return False
        for item in items:
            ti = type(item)
            if ti is dict or ti is list:
                push(item)
            elif ti not in scalars:
                return False
    return True


def canonical(value: Any) -> bytes:
    if _simple(value):
        return _fast(value).encode("utf-8")
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    return sha256_hex(canonical(value))
