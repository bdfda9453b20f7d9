"""API keys: ``krabs_sk_`` secrets shown once and stored as SHA-256 (they are 190-bit random, so a
slow KDF adds nothing), looked up through a small cache that revocation in this process clears."""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from typing import Any

import sqlalchemy as sa

from krabs.contract.errors import KrabsError
from krabs.engine.context import Principal
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import api_keys

SECRET_PREFIX = "krabs_sk_"
_ALPHABET = string.ascii_letters + string.digits
SCOPES = ("read", "write", "admin")
#: A scope grants itself and everything below it.
IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}
DEFAULT_AGENT = "agent_default"
#: Seconds a looked-up key is trusted before it is read again (bounds cross-process revocation lag).
CACHE_TTL = 2.0


def generate_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 4] + "…"


def expand_scopes(scopes: list[str]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= IMPLIED.get(scope, set())
    return frozenset(granted)


class KeyCache:
    """Secret hash → principal for ``CACHE_TTL`` seconds; the hot path skips the key query."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, secret_hash: str) -> Principal | None:
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        loaded, principal, expires_at = entry
        if time.monotonic() - loaded > CACHE_TTL or (expires_at and expires_at <= utcnow()):
            return None
        return principal

    def put(self, secret_hash: str, principal: Principal, expires_at: str | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret_hash] = (time.monotonic(), principal, expires_at)

    def forget_key(self, key_id: str) -> None:
        with self._lock:
            for h, (_, p, _) in list(self._entries.items()):
                if p.key_id == key_id:
                    del self._entries[h]


def authenticate(store: Store, cache: KeyCache, secret: str | None) -> Principal:
    if not secret:
        raise KrabsError(
            "unauthenticated",
            "missing API key: send 'Authorization: Bearer krabs_sk_…'",
            param="Authorization",
        )
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        raise KrabsError("unauthenticated", "malformed API key", param="Authorization")
    return principal_for_hash(store, cache, hash_secret(secret))


def principal_for_hash(store: Store, cache: KeyCache, secret_hash: str) -> Principal:
    """The principal of the key whose secret hashes to ``secret_hash`` (a dashboard session keeps
    only that hash), with the same revocation and expiry checks as a Bearer key."""
    principal = cache.get(secret_hash)
    if principal is not None:
        return principal
    with store.connect(write=False) as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.secret_hash == secret_hash)).first()
    if row is None:
        raise KrabsError("unauthenticated", "unknown API key", param="Authorization")
    if row.revoked_at is not None:
        raise KrabsError("unauthenticated", "this API key was revoked", param="Authorization")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise KrabsError("unauthenticated", "this API key has expired", param="Authorization")
    principal = Principal(
        account_id=row.account_id,
        key_id=row.id,
        agent_id=row.agent_id,
        scopes=expand_scopes(list(row.scopes)),
    )
    cache.put(secret_hash, principal, row.expires_at)
    return principal


def key_object(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a key: never the secret or its hash."""
    return {
        "object": "api_key",
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "agent_id": row["agent_id"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
    }
