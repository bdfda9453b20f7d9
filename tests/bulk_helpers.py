"""Helpers shared by the bulk-operation tests (CSV, vCard, account archive)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from conftest import Caller, ok
from krabs.accounts import NewAccount
from krabs.engine import CallRequest, Engine, Outcome
from krabs.store.db import Store
from krabs.store.tables import contacts, identities, tag_links, tags

DATA_TABLES = (contacts, identities, tags, tag_links)


def account_data(store: Store, account_id: str) -> dict[str, list[dict[str, Any]]]:
    """The account's contacts, identities, tags and tag links, every column, ordered by id."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.connect(write=False) as conn:
        for table in DATA_TABLES:
            rows = conn.execute(
                sa.select(table).where(table.c.account_id == account_id).order_by(table.c.id)
            ).all()
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


def all_contacts(call: Caller, key: str | None = None) -> list[dict[str, Any]]:
    """Every live contact of the caller's account, oldest first."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        args: dict[str, Any] = {"limit": 100}
        if after:
            args["starting_after"] = after
        page = ok(call("contact.list", args, key=key))
        found += page["data"]
        if not page["has_more"]:
            return list(reversed(found))
        after = page["next_cursor"]


def by_email(call: Caller, value: str) -> dict[str, Any]:
    return ok(call("contact.find_by_identity", {"identity": {"kind": "email", "value": value}}))


def values(contact: dict[str, Any], kind: str) -> list[str]:
    return [i["normalized"] for i in contact["identities"] if i["kind"] == kind]


def primary(contact: dict[str, Any], kind: str) -> str:
    [value] = [i["normalized"] for i in contact["identities"] if i["kind"] == kind and i["primary"]]
    return value


def as_caller(engine: Engine, account: NewAccount) -> Caller:
    """``call(op, args)`` through the engine as ``account``'s admin (another account than the
    ``call`` fixture's)."""

    def call(op: str, args: Any = None, **_: Any) -> Outcome:
        return engine.call(
            CallRequest(op=op, args=args or {}, api_key=account.secret, transport="test")
        )

    return call
