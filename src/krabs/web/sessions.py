"""Dashboard sessions: an API key exchanged once for a random cookie secret.

The browser's EventSource cannot send an ``Authorization`` header, so the dashboard signs in with a
key and gets an HttpOnly, SameSite=Strict cookie. The server keeps only hashes: the row's id is the
SHA-256 of the cookie secret and it points at the key by the key's own hash, so every request is
resolved to the very principal the key would give (revoking the key ends its sessions too).

State-changing requests must also carry a CSRF token (synchronizer pattern): the token is derived
from the session secret, rendered into the page, and sent back in ``X-CSRF-Token``; another site can
neither read the page nor, because of SameSite=Strict, send the cookie at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import sqlalchemy as sa

from krabs.auth import KeyCache, authenticate, hash_secret, principal_for_hash
from krabs.contract.errors import KrabsError
from krabs.engine.context import Principal
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import web_sessions

COOKIE = "krabs_session"
CSRF_HEADER = "x-csrf-token"
#: A session lasts a working day; signing in again is one paste of the key.
LIFETIME = dt.timedelta(hours=12)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_secret: str) -> str:
    """The session's CSRF token: derived from its secret, so nothing more is stored."""
    return hashlib.sha256(b"krabs-csrf\x00" + session_secret.encode()).hexdigest()


def check_csrf(session_secret: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(csrf_token(session_secret), sent):
        raise KrabsError(
            "forbidden",
            "a cookie session must send its CSRF token in the X-CSRF-Token header",
            param="X-CSRF-Token",
        )


def sign_in(store: Store, cache: KeyCache, api_key: str) -> tuple[str, Principal, str]:
    """Check the key exactly as a Bearer call would; returns (cookie secret, principal, expiry)."""
    principal = authenticate(store, cache, api_key.strip())
    secret = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    expires = (now + LIFETIME).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.transaction() as conn:
        # Sessions past their expiry are dead either way; sweeping them here bounds the table.
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < utcnow()))
        conn.execute(
            web_sessions.insert().values(
                id=_digest(secret),
                account_id=principal.account_id,
                key_id=principal.key_id,
                key_hash=hash_secret(api_key.strip()),
                created_at=utcnow(),
                expires_at=expires,
                revoked_at=None,
            )
        )
    return secret, principal, expires


def resolve(store: Store, cache: KeyCache, secret: str) -> Principal:
    """The principal behind a cookie secret, or ``unauthenticated`` if it is unknown, revoked or
    expired, or if its key is."""
    refused = KrabsError(
        "unauthenticated",
        "this dashboard session is unknown, signed out or expired: sign in again",
        param="Cookie",
    )
    if not secret or len(secret) > 200:
        raise refused
    with store.connect(write=False) as conn:
        row = conn.execute(
            sa.select(web_sessions).where(web_sessions.c.id == _digest(secret))
        ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise refused
    return principal_for_hash(store, cache, row.key_hash)


def sign_out(store: Store, secret: str) -> bool:
    """Revoke the session at once; later requests with its cookie are refused."""
    with store.transaction() as conn:
        result = conn.execute(
            web_sessions.update()
            .where(web_sessions.c.id == _digest(secret), web_sessions.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return bool(result.rowcount)
