"""Rules every noun shares: fetching a live row or failing with `not_found`, checking a link points
at a live record, the tag filter every list operation takes, and the id-descending cursor."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError, not_found
from krabs.engine.uow import UnitOfWork
from krabs.normalize import tag_key
from krabs.store.tables import contacts, deals, tag_links, tags

#: The nouns a tag can be attached to, and the table each lives in.
TaggableType = Literal["contact", "deal", "task", "note"]

TAG_FILTER = Field(
    None,
    min_length=1,
    max_length=100,
    description="Only records carrying this tag (its id `tg_…` or its name, case-insensitive).",
)


def live_row(
    uow: UnitOfWork, table: sa.Table, row_id: str, noun: str, param: str = "id"
) -> dict[str, Any]:
    """The row of this account with that id, unless deleted; else `not_found` naming ``param``."""
    row = uow.fetch(table, row_id)
    if row is None or row.get("deleted_at") is not None:
        raise not_found(noun, row_id, param)
    return row


def check_contact(uow: UnitOfWork, contact_id: str | None, param: str = "contact_id") -> None:
    """A link to a contact must point at a live contact of this account."""
    if contact_id is not None:
        live_row(uow, contacts, contact_id, "contact", param)


def check_deal(uow: UnitOfWork, deal_id: str | None, param: str = "deal_id") -> None:
    """A link to a deal must point at a live deal of this account."""
    if deal_id is not None:
        live_row(uow, deals, deal_id, "deal", param)


def resolve_tag(uow: UnitOfWork, tag: str, param: str = "tag") -> str:
    """A live tag's id, given its id or its name."""
    t = tags
    by = t.c.id == tag if tag.startswith("tg_") else t.c.name_key == tag_key(tag)
    found = uow.execute(
        sa.select(t.c.id).where(t.c.account_id == uow.account_id, t.c.deleted_at.is_(None), by)
    ).scalar()
    if found is None:
        raise KrabsError("not_found", f"no tag {tag[:100]!r} in this account", param=param)
    return str(found)


def where_tagged(uow: UnitOfWork, table: sa.Table, tag: str, param: str = "tag") -> Any:
    """A WHERE clause keeping rows of ``table`` that carry ``tag`` (an unknown tag is `not_found`)."""
    tag_id = resolve_tag(uow, tag, param)
    return table.c.id.in_(
        sa.select(tag_links.c.target_id).where(
            tag_links.c.account_id == uow.account_id, tag_links.c.tag_id == tag_id
        )
    )


def tags_of(uow: UnitOfWork, target_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The live tags on each target, ``{id, name, color}``, in tag-name order."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in target_ids}
    if not target_ids:
        return out
    rows = uow.execute(
        sa.select(tag_links.c.target_id, tags.c.id, tags.c.name, tags.c.name_key, tags.c.color)
        .join(tags, tags.c.id == tag_links.c.tag_id)
        .where(
            tag_links.c.account_id == uow.account_id,
            tag_links.c.target_id.in_(target_ids),
            tags.c.deleted_at.is_(None),
        )
    ).all()
    # Code-point order on both backends, as `tag.list` (PostgreSQL would sort by its locale).
    for r in sorted(rows, key=lambda r: (r.name_key, r.id)):
        out[r.target_id].append({"id": r.id, "name": r.name, "color": r.color})
    return out


def newest_first(
    uow: UnitOfWork, query: sa.Select[Any], table: sa.Table, starting_after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Run a list query in the shared order (id descending: ULIDs sort by creation) with the cursor,
    fetching one extra row so ``page`` can tell ``has_more``."""
    if starting_after:
        query = query.where(table.c.id < starting_after)
    rows = uow.execute(query.order_by(table.c.id.desc()).limit(limit + 1)).all()
    return [dict(r._mapping) for r in rows]
