"""API keys: how agents and people authenticate. Secrets are shown once, at creation."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.auth import DEFAULT_AGENT, display_prefix, generate_secret, hash_secret, key_object
from krabs.contract.errors import KrabsError, invalid, not_found
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Name, Out, Timestamp, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.store.tables import api_keys

ScopeName = Literal["read", "write", "admin"]


class ApiKeyOut(Out):
    object: Literal["api_key"] = "api_key"
    id: str
    name: str
    prefix: str
    scopes: list[str]
    agent_id: str
    created_at: str
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The key itself, `krabs_sk_…`. Shown once; store it now.")


class ApiKeyCreate(Args):
    name: Name = Field(description="What the key is for, e.g. 'outreach agent'.")
    scopes: list[ScopeName] = Field(
        default_factory=lambda: list[ScopeName](("read", "write")),
        min_length=1,
        max_length=3,
        description="read, write, admin (each implies the ones before it).",
    )
    agent_id: str | None = Field(
        None,
        pattern=r"^agent_[A-Za-z0-9_-]{1,64}$",
        description="Bind the key to an agent (`agent_…`); its calls are that agent's runs.",
    )
    expires_at: Timestamp | None = Field(None, description="When the key stops working.")


@operation(
    "api_key.create",
    summary="Create an API key; its secret is returned once.",
    input=ApiKeyCreate,
    output=ApiKeyCreated,
    mutates=True,
    scope="admin",
    redact=("secret",),
    examples=(
        Example(
            {"name": "outreach agent", "scopes": ["read", "write"], "agent_id": "agent_drafts"}
        ),
    ),
)
def create(uow: UnitOfWork, args: ApiKeyCreate) -> dict[str, Any]:
    """The secret (`krabs_sk_…`) is in this response only; krabs stores its SHA-256, and neither the
    audit log nor an idempotent replay ever holds it (a replay shows `[redacted]`)."""
    if args.expires_at is not None and args.expires_at <= uow.now:
        # A key born expired would exist, show in lists and answer 401 at once: refuse it instead.
        raise invalid("expires_at", f"expires_at {args.expires_at} is not in the future")
    secret = generate_secret()
    row = uow.insert(
        api_keys,
        {
            "id": new_id("api_key"),
            "name": args.name,
            "secret_hash": hash_secret(secret),
            "prefix": display_prefix(secret),
            "scopes": sorted(set(args.scopes)),
            "agent_id": args.agent_id or DEFAULT_AGENT,
            "created_by": uow.principal.key_id,
            "created_at": uow.now,
            "last_used_at": None,
            "expires_at": args.expires_at,
            "revoked_at": None,
        },
    )
    return {**key_object(row), "secret": secret}


class ApiKeyList(ListArgs):
    include_revoked: bool = Field(False, description="Also list revoked keys.")


@operation(
    "api_key.list",
    summary="List the account's API keys (never their secrets).",
    input=ApiKeyList,
    output=ListOf[ApiKeyOut],
    mutates=False,
    scope="admin",
    examples=(Example({}),),
)
def list_(uow: UnitOfWork, args: ApiKeyList) -> dict[str, Any]:
    """Newest first; revoked keys only with `include_revoked`. Shows each key's prefix, scopes,
    agent and last use, never the secret."""
    t = api_keys
    q = sa.select(t).where(t.c.account_id == uow.account_id)
    if not args.include_revoked:
        q = q.where(t.c.revoked_at.is_(None))
    if args.starting_after:
        q = q.where(t.c.id < args.starting_after)
    rows = uow.execute(q.order_by(t.c.id.desc()).limit(args.limit + 1)).all()
    return page([key_object(dict(r._mapping)) for r in rows], args.limit)


class ApiKeyRevoke(Args):
    id: str = id_field("key", "The key to revoke.")


class RevokedOut(Out):
    id: str
    revoked: bool
    undo_token: str | None = None
    undo_expires_at: str | None = None


@operation(
    "api_key.revoke",
    summary="Revoke an API key at once (undoable for 24 h).",
    input=ApiKeyRevoke,
    output=RevokedOut,
    mutates=True,
    destructive=True,
    scope="admin",
    errors=("not_found", "conflict"),
    examples=(Example({"id": "key_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def revoke(uow: UnitOfWork, args: ApiKeyRevoke) -> dict[str, Any]:
    """The key stops authenticating immediately. A key cannot revoke itself (use another admin key),
    so an account is never locked out by accident."""
    row = uow.fetch(api_keys, args.id)
    if row is None or row["revoked_at"] is not None:
        raise not_found("api_key", args.id)
    if row["id"] == uow.principal.key_id:
        raise KrabsError(
            "conflict", "a key cannot revoke itself; revoke it with another admin key", param="id"
        )
    uow.update(api_keys, row, {"revoked_at": uow.now})
    return {"id": args.id, "revoked": True}
