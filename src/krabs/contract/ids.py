"""Prefixed ULIDs: sortable by creation time, so an id is also a stable pagination cursor."""

from __future__ import annotations

import base64
import os
import re
import threading
import time

PREFIXES = {
    "account": "acct",
    "contact": "ct",
    "identity": "id",
    "interaction": "ix",
    "deal": "dl",
    "task": "tk",
    "note": "nt",
    "tag": "tg",
    "api_key": "key",
    "action": "act",
    "run": "run",
    "span": "sp",
    "expense": "ex",
    "agent": "agent",
    "request": "req",
    "participant": "ip",
    "tag_link": "tl",
    "deal_change": "dh",
    "business_profile": "bp",
    "approval": "apr",
    "approval_policy": "apol",
    "job": "job",
}

_ID_RE = re.compile(r"^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$")


# RFC 4648 base32 to Crockford's (the ULID alphabet): ``b32encode`` does the bit slicing in C.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_RANDOM_MAX = (1 << 80) - 1


class _Monotonic:
    """ULIDs in the spec's monotonic mode: a new millisecond draws 80 random bits, a repeated (or
    earlier: the clock stepped back) one increments the last id, so this process's ids always sort
    in the order they were made. Several writes take five ids each; ``python-ulid`` builds them
    through objects and a policy class at ~4 times this cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0  # (ms << 80) | randomness of the last id

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        with self._lock:
            last = self._last
            if ms > last >> 80:
                value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
            elif last & _RANDOM_MAX == _RANDOM_MAX:
                value = ((last >> 80) + 1) << 80  # 2^80 ids in one ms: borrow the next ms
            else:
                value = last + 1
            self._last = value
        return encode(value)


def encode(value: int) -> str:
    """The 26-character ULID text of a 128-bit integer (the first character carries 3 bits)."""
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_CROCKFORD).decode()


_ids = _Monotonic()


def new_id(noun: str) -> str:
    return f"{PREFIXES[noun]}_{_ids.next()}"


def looks_like(noun: str, value: str) -> bool:
    return value.startswith(PREFIXES[noun] + "_") and bool(_ID_RE.match(value))
