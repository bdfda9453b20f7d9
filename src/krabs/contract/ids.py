"""Prefixed ULIDs: sortable by creation time, so an id is also a stable pagination cursor."""

from __future__ import annotations

import re

from ulid import ULID

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


def new_id(noun: str) -> str:
    return f"{PREFIXES[noun]}_{ULID()}"


def looks_like(noun: str, value: str) -> bool:
    return value.startswith(PREFIXES[noun] + "_") and bool(_ID_RE.match(value))
