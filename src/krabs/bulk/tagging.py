"""Attaching tags by name to many contacts at once, creating the missing tags: a few set-based
queries per batch instead of one per tag and row. Same rules as the tag operations: names compare
by ``tag_key`` among live tags, and a target carries a tag at most once."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import TypeVar

import sqlalchemy as sa

from krabs.engine.uow import UnitOfWork
from krabs.normalize import tag_key
from krabs.store.prepared import marks, select_rows
from krabs.store.tables import tag_links, tags

#: Values per IN (...) list: well under every driver's bound-parameter limit.
CHUNK = 500
#: The columns of the link tuples, in their order.
LINK_COLUMNS = ("id", "account_id", "tag_id", "target_type", "target_id", "created_at")
T = TypeVar("T")


def chunks(items: list[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def tag_keys_of(uow: UnitOfWork, target_ids: list[str]) -> dict[str, set[str]]:
    """The keys of the live tags each target already carries."""
    out: dict[str, set[str]] = {i: set() for i in target_ids}
    for part in chunks(target_ids):
        rows = select_rows(
            uow.conn,
            "SELECT tag_links.target_id, tags.name_key FROM tag_links "
            "JOIN tags ON tags.id = tag_links.tag_id WHERE tag_links.account_id = ? "
            f"AND tag_links.target_id IN ({marks(part)}) "
            "AND tags.deleted_at IS NULL",
            (uow.account_id, *part),
        )
        for r in rows:
            out[r[0]].add(r[1])
    return out


def attach_by_name(
    uow: UnitOfWork,
    wanted: dict[str, list[str]],
    target_type: str,
    *,
    unlinked: Collection[str] = (),
    known: dict[str, str] | None = None,
) -> int:
    """Link each target to the tags named (creating live tags that do not exist yet); links that
    already exist are left alone. Returns the number of tags created. ``unlinked``: targets the
    caller knows have no link yet (created in this call), not looked up. ``known``: tag key → live
    tag id from earlier batches of the same call, read and extended."""
    # Keyed once per spelling, not per link: an import links most of its rows to a few tags.
    spellings = dict.fromkeys(name for tag_names in wanted.values() for name in tag_names)
    names: dict[str, str] = {}
    for name in spellings:
        names.setdefault(tag_key(name), name)
    if not names:
        return 0
    ids: dict[str, str] = {} if known is None else known
    for part in chunks([k for k in names if k not in ids]):
        for r in uow.execute(
            sa.select(tags.c.id, tags.c.name_key).where(
                tags.c.account_id == uow.account_id,
                tags.c.deleted_at.is_(None),
                tags.c.name_key.in_(part),
            )
        ):
            ids[r.name_key] = r.id
    fresh = [
        {
            "id": uow.new_bulk_id(tags),
            "name": name,
            "name_key": key,
            "color": None,
            "description": None,
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        }
        for key, name in names.items()
        if key not in ids
    ]
    for row in uow.insert_compact(tags, fresh):
        ids[row["name_key"]] = row["id"]
    linked: set[tuple[str, str]] = set()
    for part in chunks([t for t in wanted if t not in unlinked]):
        for r in uow.execute(
            sa.select(tag_links.c.tag_id, tag_links.c.target_id).where(
                tag_links.c.account_id == uow.account_id, tag_links.c.target_id.in_(part)
            )
        ):
            linked.add((r.tag_id, r.target_id))
    links: list[tuple[str, ...]] = []
    account, now = uow.account_id, uow.now
    tag_ids = {name: ids[tag_key(name)] for name in spellings}
    next_id = uow.bulk_ids(tag_links)
    for target_id, tag_names in wanted.items():
        for name in tag_names:
            tag_id = tag_ids[name]
            if (tag_id, target_id) not in linked:
                linked.add((tag_id, target_id))
                links.append((next_id(), account, tag_id, target_type, target_id, now))
    uow.insert_compact_values(tag_links, LINK_COLUMNS, links)
    return len(fresh)
