"""Creating accounts outside the contract: the bootstrap path that mints the first admin key."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from krabs.audit.log import init_chain
from krabs.auth import DEFAULT_AGENT, display_prefix, generate_secret, hash_secret
from krabs.contract.ids import new_id
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import accounts, api_keys

DEMO_ACCOUNT_NAME = "Demo account"


@dataclass(frozen=True)
class NewAccount:
    account_id: str
    key_id: str
    secret: str


def create_account(
    store: Store,
    name: str,
    *,
    secret: str | None = None,
    scopes: tuple[str, ...] = ("admin",),
    default_region: str | None = None,
) -> NewAccount:
    """An account, its audit chain and one admin key (``secret`` if given, else a fresh one)."""
    secret = secret or generate_secret()
    now = utcnow()
    account_id, key_id = new_id("account"), new_id("api_key")
    with store.transaction(write=True) as conn:
        conn.execute(
            accounts.insert().values(
                id=account_id,
                name=name,
                default_region=default_region,
                settings={},
                created_at=now,
                updated_at=now,
            )
        )
        init_chain(conn, account_id)
        _insert_key(conn, key_id, account_id, secret, list(scopes))
    return NewAccount(account_id, key_id, secret)


def _insert_key(
    conn: sa.Connection, key_id: str, account_id: str, secret: str, scopes: list[str]
) -> None:
    conn.execute(
        api_keys.insert().values(
            id=key_id,
            account_id=account_id,
            name="bootstrap admin key",
            secret_hash=hash_secret(secret),
            prefix=display_prefix(secret),
            scopes=scopes,
            agent_id=DEFAULT_AGENT,
            created_at=utcnow(),
        )
    )


def ensure_demo_account(store: Store, bootstrap_key: str | None) -> NewAccount | None:
    """Create the demo account on first start. Returns it only when it was just created (the secret
    is printed once); with ``bootstrap_key`` set, that key is made to exist even on an older database."""
    with store.connect(write=False) as conn:
        has_account = conn.execute(sa.select(accounts.c.id).limit(1)).first() is not None
        known_key = (
            bootstrap_key is not None
            and conn.execute(
                sa.select(api_keys.c.id).where(api_keys.c.secret_hash == hash_secret(bootstrap_key))
            ).first()
            is not None
        )
    if has_account and (bootstrap_key is None or known_key):
        return None
    if has_account and bootstrap_key is not None:
        # An existing database meets a new bootstrap key: attach it to the first account.
        with store.transaction(write=True) as conn:
            account_id = conn.execute(
                sa.select(accounts.c.id).order_by(accounts.c.created_at).limit(1)
            ).scalar_one()
            key_id = new_id("api_key")
            _insert_key(conn, key_id, account_id, bootstrap_key, ["admin"])
        return NewAccount(account_id, key_id, bootstrap_key)
    return create_account(store, DEMO_ACCOUNT_NAME, secret=bootstrap_key)
