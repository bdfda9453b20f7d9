"""Helpers shared by the interaction, email, task and note tests. Deals and tags belong to other
nouns; the rows they need are written straight into their tables, so these tests depend only on the
schema, not on those operations."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from conftest import Caller, ok
from krabs.contract.ids import new_id
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import deals, tag_links, tags

UNKNOWN_CONTACT = "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"
UNKNOWN_DEAL = "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"


def new_contact(call: Caller, name: str = "Ada Lovelace", email: str | None = None) -> str:
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    created = ok(
        call(
            "contact.create",
            {"display_name": name, "identities": [{"kind": "email", "value": email}]},
        )
    )
    return str(created["id"])


def delete_contact(call: Caller, contact_id: str) -> None:
    ok(call("contact.delete", {"id": contact_id}))


def insert_deal(store: Store, account_id: str, *, deleted: bool = False) -> str:
    deal_id, now = new_id("deal"), utcnow()
    with store.transaction() as conn:
        conn.execute(
            deals.insert().values(
                id=deal_id,
                account_id=account_id,
                title="Analytical engine",
                amount=100_00,
                currency="EUR",
                stage="lead",
                status="open",
                recurring_interval="none",
                attributes={},
                created_at=now,
                updated_at=now,
                deleted_at=now if deleted else None,
            )
        )
    return deal_id


def soft_delete_deal(store: Store, account_id: str, deal_id: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            deals.update()
            .where(deals.c.id == deal_id, deals.c.account_id == account_id)
            .values(deleted_at=utcnow())
        )


def insert_tag(store: Store, account_id: str, name: str, *targets: tuple[str, str]) -> str:
    """A tag named ``name`` attached to each ``(target_type, target_id)``."""
    tag_id, now = new_id("tag"), utcnow()
    with store.transaction() as conn:
        conn.execute(
            tags.insert().values(
                id=tag_id,
                account_id=account_id,
                name=name,
                name_key=name.casefold(),
                color="#ff0000",
                created_at=now,
                updated_at=now,
            )
        )
        for target_type, target_id in targets:
            conn.execute(
                tag_links.insert().values(
                    id=new_id("tag_link"),
                    account_id=account_id,
                    tag_id=tag_id,
                    target_type=target_type,
                    target_id=target_id,
                    created_at=now,
                )
            )
    return tag_id


def count(store: Store, table: sa.Table, account_id: str, *, live: bool = False) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.account_id == account_id)
    if live:
        query = query.where(table.c.deleted_at.is_(None))
    with store.connect(write=False) as conn:
        return int(conn.execute(query).scalar_one())


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def walk(call: Caller, op: str, args: dict[str, Any], limit: int) -> list[str]:
    """Every id of a list, following the cursor page by page."""
    out: list[str] = []
    cursor: str | None = None
    while True:
        page = ok(call(op, {**args, "limit": limit, "starting_after": cursor}))
        out += ids(page)
        assert len(page["data"]) <= limit
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return out
        cursor = page["next_cursor"]
        assert cursor == out[-1]
