"""Attaching tags by name to many contacts at once, creating the missing tags: a few set-based
queries per batch instead of one per tag and row. Same rules as the tag operations: names compare
by ``tag_key`` among live tags, and a target carries a tag at most once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import sqlalchemy as sa

from krabs.engine.uow import UnitOfWork
from krabs.ops.common import tag_key
from krabs.store.tables import tag_links, tags

#: Values per IN (...) list: well under every driver's bound-parameter limit.
CHUNK = 500
T = TypeVar("T")


def chunks(items: list[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def tag_keys_of(uow: UnitOfWork, target_ids: list[str]) -> dict[str, set[str]]:
    """The keys of the live tags each target already carries."""
    out: dict[str, set[str]] = {i: set() for i in target_ids}
    for part in chunks(target_ids):
        rows = uow.execute(
            sa.select(tag_links.c.target_id, tags.c.name_key)
            .join(tags, tags.c.id == tag_links.c.tag_id)
            .where(
                tag_links.c.account_id == uow.account_id,
                tag_links.c.target_id.in_(part),
                tags.c.deleted_at.is_(None),
            )
        ).all()
        for r in rows:
            out[r.target_id].add(r.name_key)
    return out


def attach_by_name(uow: UnitOfWork, wanted: dict[str, list[str]], target_type: str) -> int:
    """Link each target to the tags named (creating live tags that do not exist yet); links that
    already exist are left alone. Returns the number of tags created."""
    names: dict[str, str] = {}
    for tag_names in wanted.values():
        for name in tag_names:
            names.setdefault(tag_key(name), name)
    if not names:
        return 0
    ids: dict[str, str] = {}
    for part in chunks(list(names)):
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
    for part in chunks(list(wanted)):
        for r in uow.execute(
            sa.select(tag_links.c.tag_id, tag_links.c.target_id).where(
                tag_links.c.account_id == uow.account_id, tag_links.c.target_id.in_(part)
            )
        ):
            linked.add((r.tag_id, r.target_id))
    links: list[dict[str, Any]] = []
    for target_id, tag_names in wanted.items():
        for name in tag_names:
            tag_id = ids[tag_key(name)]
            if (tag_id, target_id) not in linked:
                linked.add((tag_id, target_id))
                links.append(
                    {
                        "id": uow.new_bulk_id(tag_links),
                        "tag_id": tag_id,
                        "target_type": target_type,
                        "target_id": target_id,
                        "created_at": uow.now,
                    }
                )
    uow.insert_compact(tag_links, links)
    return len(fresh)
