"""Tags: named, coloured labels on contacts, deals, tasks and notes. A name is unique per account
among live tags as `tag_key` compares it (case-folded, whitespace collapsed), so "VIP" and " vip "
are the same tag. Attaching and detaching live in ``krabs.ops.tag_link``."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, Field

from krabs.contract.errors import KrabsError, not_found
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Out, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.normalize import tag_key
from krabs.ops.common import live_row
from krabs.ops.identity import RemovedOut
from krabs.store.tables import contacts, deals, notes, tag_links, tags, tasks

#: Each taggable noun: its table and its id prefix.
TARGETS: dict[str, tuple[sa.Table, str]] = {
    "contact": (contacts, "ct"),
    "deal": (deals, "dl"),
    "task": (tasks, "tk"),
    "note": (notes, "nt"),
}
TYPE_BY_PREFIX = {prefix: noun for noun, (_, prefix) in TARGETS.items()}
TARGET_ID_PATTERN = r"^(ct|dl|tk|nt)_[0-9A-Za-z]{1,40}$"


def _tag_name(value: str) -> str:
    if any(ch in value for ch in "\r\n\t"):
        raise ValueError("must be a single line (no tabs or line breaks)")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    key = tag_key(value)
    if len(key) > 100:
        raise ValueError("must be at most 100 characters once case-folded")
    if key.startswith("tg_"):
        raise ValueError("must not start with 'tg_' (reserved for tag ids)")
    return value


def _color(value: str) -> str:
    if (
        len(value) != 7
        or value[0] != "#"
        or any(c not in "0123456789abcdefABCDEF" for c in value[1:])
    ):
        raise ValueError(f"{value[:20]!r} is not a colour: send #rrggbb, e.g. #ff8800")
    return value.lower()


TagName = Annotated[
    str,
    Field(min_length=1, max_length=100, description="Unique per account, case-insensitively."),
    AfterValidator(_tag_name),
]
Color = Annotated[
    str,
    Field(max_length=7, description="#rrggbb (six hex digits); stored lower-case."),
    AfterValidator(_color),
]
Description = Annotated[str, Field(max_length=1000)]
TagRefArg = Annotated[
    str, Field(min_length=1, max_length=100, description="A tag id `tg_…` or a tag name.")
]


class TagOut(Out):
    object: Literal["tag"] = "tag"
    id: str
    name: str
    color: str | None
    description: str | None
    usage_count: int = Field(description="Live records carrying this tag.")
    created_at: str
    updated_at: str


def tag_object(row: dict[str, Any], usage: int) -> dict[str, Any]:
    return {
        "object": "tag",
        "id": row["id"],
        "name": row["name"],
        "color": row["color"],
        "description": row["description"],
        "usage_count": usage,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _target_is_live() -> Any:
    """A condition on ``tag_links``: its target record exists and is not deleted."""
    return sa.or_(
        *(
            sa.and_(
                tag_links.c.target_type == noun,
                sa.exists().where(
                    table.c.id == tag_links.c.target_id, table.c.deleted_at.is_(None)
                ),
            )
            for noun, (table, _) in TARGETS.items()
        )
    )


def usage_counts(uow: UnitOfWork, tag_ids: list[str]) -> dict[str, int]:
    """How many live records carry each tag."""
    if not tag_ids:
        return {}
    rows = uow.execute(
        sa.select(tag_links.c.tag_id, sa.func.count().label("n"))
        .where(
            tag_links.c.account_id == uow.account_id,
            tag_links.c.tag_id.in_(tag_ids),
            _target_is_live(),
        )
        .group_by(tag_links.c.tag_id)
    ).all()
    counts = {str(r.tag_id): int(r.n) for r in rows}
    return {i: counts.get(i, 0) for i in tag_ids}


def load_tag(uow: UnitOfWork, row: dict[str, Any]) -> dict[str, Any]:
    return tag_object(row, usage_counts(uow, [row["id"]])[row["id"]])


def tag_by_name(uow: UnitOfWork, name: str) -> dict[str, Any] | None:
    """The live tag whose name compares equal to ``name``, if any."""
    row = uow.execute(
        sa.select(tags).where(
            tags.c.account_id == uow.account_id,
            tags.c.deleted_at.is_(None),
            tags.c.name_key == tag_key(name),
        )
    ).first()
    return dict(row._mapping) if row is not None else None


def find_tag(uow: UnitOfWork, ref: str, param: str = "tag") -> dict[str, Any]:
    """The live tag named by id (`tg_…`) or by name; else `not_found` naming ``param``."""
    if ref.startswith("tg_"):
        return live_row(uow, tags, ref, "tag", param)
    row = tag_by_name(uow, ref)
    if row is None:
        raise KrabsError(
            "not_found",
            f"no tag named {ref!r} in this account; tag.list shows the tags, tag.create makes one",
            param=param,
        )
    return row


def _refuse_collision(uow: UnitOfWork, name: str, own_id: str | None = None) -> None:
    existing = tag_by_name(uow, name)
    if existing is not None and existing["id"] != own_id:
        raise KrabsError(
            "conflict",
            f"tag {existing['id']} is already named {existing['name']!r} (names compare "
            "case-insensitively); use that tag or choose another name",
            param="name",
            details={"tag_id": existing["id"]},
        )


def insert_tag(
    uow: UnitOfWork, name: str, color: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """Create a live tag (the caller has ruled out a name collision)."""
    return uow.insert(
        tags,
        {
            "id": new_id("tag"),
            "name": name,
            "name_key": tag_key(name),
            "color": color,
            "description": description,
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )


# -- operations ------------------------------------------------------------------------------------


class TagCreate(Args):
    name: TagName
    color: Color | None = None
    description: Description | None = None


@operation(
    "tag.create",
    summary="Create a tag (name unique per account, case-insensitively).",
    input=TagCreate,
    output=TagOut,
    mutates=True,
    errors=("conflict",),
    examples=(Example({"name": "VIP", "color": "#ff8800", "description": "Top accounts"}),),
)
def create(uow: UnitOfWork, args: TagCreate) -> dict[str, Any]:
    """Creates a tag. A live tag whose name differs only in case or spacing is a `conflict` naming it
    (`details.tag_id`): attach that one instead. `color` is `#rrggbb`."""
    _refuse_collision(uow, args.name)
    return tag_object(insert_tag(uow, args.name, args.color, args.description), 0)


class TagList(ListArgs):
    order: Literal["name", "id"] = Field(
        "name",
        description="name: by case-folded name, in Unicode code-point order; id: newest first.",
    )
    q: str | None = Field(
        None, min_length=1, max_length=100, description="Only names starting with this."
    )
    target_id: str | None = Field(
        None,
        pattern=TARGET_ID_PATTERN,
        max_length=48,
        description="Only the tags on this contact, deal, task or note.",
    )


@operation(
    "tag.list",
    summary="List tags by name or newest first, optionally those on one record.",
    input=TagList,
    output=ListOf[TagOut],
    mutates=False,
    errors=("not_found",),
    examples=(Example({"q": "vi"}), Example({"target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"})),
)
def list_(uow: UnitOfWork, args: TagList) -> dict[str, Any]:
    """Live tags with their usage counts. `q` is a case-insensitive name prefix; `target_id` keeps
    the tags on that record (a missing record is `not_found`). The cursor is a tag id."""
    t = tags
    query = sa.select(t).where(t.c.account_id == uow.account_id, t.c.deleted_at.is_(None))
    if args.q:
        query = query.where(t.c.name_key.startswith(tag_key(args.q), autoescape=True))
    if args.target_id:
        table, _ = TARGETS[TYPE_BY_PREFIX[args.target_id[:2]]]
        live_row(uow, table, args.target_id, TYPE_BY_PREFIX[args.target_id[:2]], "target_id")
        query = query.where(
            t.c.id.in_(
                sa.select(tag_links.c.tag_id).where(
                    tag_links.c.account_id == uow.account_id,
                    tag_links.c.target_id == args.target_id,
                )
            )
        )
    if args.order == "id":
        if args.starting_after:
            query = query.where(t.c.id < args.starting_after)
        query = query.order_by(t.c.id.desc())
    else:
        # Code-point order on both backends (PostgreSQL's default collation is the locale's).
        key_col = t.c.name_key.collate("C") if uow.dialect == "postgresql" else t.c.name_key
        if args.starting_after:
            key = uow.execute(
                sa.select(t.c.name_key).where(
                    t.c.account_id == uow.account_id, t.c.id == args.starting_after
                )
            ).scalar()
            if key is None:
                raise KrabsError(
                    "invalid_argument",
                    "starting_after must be the next_cursor of the previous page (a tag id)",
                    param="starting_after",
                )
            query = query.where(
                sa.or_(key_col > key, sa.and_(t.c.name_key == key, t.c.id > args.starting_after))
            )
        query = query.order_by(key_col, t.c.id)
    rows = [dict(r._mapping) for r in uow.execute(query.limit(args.limit + 1))]
    counts = usage_counts(uow, [r["id"] for r in rows[: args.limit]])
    return page([tag_object(r, counts.get(r["id"], 0)) for r in rows], args.limit)


class TagUpdate(Args):
    id: str = id_field("tg", "The tag to change.")
    name: TagName | None = Field(None, description="A new name (same uniqueness rule).")
    color: Color | None = Field(None, description="#rrggbb; null clears it.")
    description: Description | None = Field(None, description="null clears it.")


@operation(
    "tag.update",
    summary="Rename or recolour a tag; omitted fields stay, null clears.",
    input=TagUpdate,
    output=TagOut,
    mutates=True,
    errors=("not_found", "conflict"),
    examples=(Example({"id": "tg_01HG7Z4X9Q8M2N7P3R5T6V8W", "name": "Key account"}),),
)
def update(uow: UnitOfWork, args: TagUpdate) -> dict[str, Any]:
    """Renaming to a name another live tag has (compared case-insensitively) is a `conflict` naming
    it; changing only the case of its own name is allowed. Links are unaffected."""
    changes = args.model_dump(include={"name", "color", "description"}, exclude_unset=True)
    if not changes:
        raise KrabsError(
            "invalid_argument", "nothing to update: send name, color or description", param=None
        )
    if "name" in changes:
        if changes["name"] is None:
            raise KrabsError(
                "invalid_argument", "name cannot be null; send a new name or omit it", param="name"
            )
        changes["name_key"] = tag_key(changes["name"])
    row = live_row(uow, tags, args.id, "tag")
    if "name" in changes:
        _refuse_collision(uow, changes["name"], own_id=args.id)
    if {k: row[k] for k in changes} != changes:
        row = uow.update(tags, row, {**changes, "updated_at": uow.now})
    return load_tag(uow, row)


class TagDelete(Args):
    id: str = id_field("tg", "The tag to delete.")


class TagRemovedOut(RemovedOut):
    links_removed: int = Field(description="How many records lost the tag.")


@operation(
    "tag.delete",
    summary="Delete a tag and remove it from every record (undoable for 24 h).",
    input=TagDelete,
    output=TagRemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "tg_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: TagDelete) -> dict[str, Any]:
    """Soft-deletes the tag (its name is free again) and removes its links. Returns an
    `undo_token`; `action.undo` restores the tag and every link."""
    row = live_row(uow, tags, args.id, "tag")
    links = uow.execute(
        sa.select(tag_links)
        .where(tag_links.c.account_id == uow.account_id, tag_links.c.tag_id == args.id)
        .order_by(tag_links.c.id)
    ).all()
    for link in links:
        uow.delete(tag_links, dict(link._mapping))
    uow.update(tags, row, {"deleted_at": uow.now, "updated_at": uow.now})
    return {"id": args.id, "deleted": True, "links_removed": len(links)}


__all__ = ["TARGETS", "TagOut", "find_tag", "not_found", "tag_object", "usage_counts"]
