"""Notes: markdown written by an agent about a contact or a deal. The author is the calling key's
agent, never an argument. Links are checked when set; a contact or deal deleted later stays linked
as a tombstone reference (its id remains, reads and `contact_id` filters still work)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Out, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import (
    TAG_FILTER,
    check_contact,
    check_deal,
    live_row,
    newest_first,
    tags_of,
    where_tagged,
)
from krabs.ops.identity import RemovedOut
from krabs.ops.task import TagOut, link_field
from krabs.store.tables import notes

Body = Annotated[
    str,
    Field(min_length=1, max_length=100_000, description="Markdown, 1 to 100,000 characters."),
]
FIELDS = ("body", "contact_id", "deal_id")


class NoteOut(Out):
    object: Literal["note"] = "note"
    id: str
    body: str
    contact_id: str | None
    deal_id: str | None
    author: str = Field(description="The agent of the key that wrote the note.")
    author_key_id: str | None
    tags: list[TagOut]
    created_at: str
    updated_at: str


def note_object(row: dict[str, Any], tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "note",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "author": row["author"],
        "author_key_id": row["author_key_id"],
        "tags": tags,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def load(uow: UnitOfWork, note_id: str) -> dict[str, Any]:
    row = live_row(uow, notes, note_id, "note")
    return note_object(row, tags_of(uow, [note_id])[note_id])


class NoteCreate(Args):
    body: Body
    contact_id: str | None = link_field("ct", "The contact it is about (a live one).")
    deal_id: str | None = link_field("dl", "The deal it is about (a live one).")


@operation(
    "note.create",
    summary="Write a markdown note, optionally about a contact or a deal.",
    input=NoteCreate,
    output=NoteOut,
    mutates=True,
    errors=("not_found",),
    examples=(
        Example(
            {
                "body": "Prefers email over calls. **Budget** approved for Q3.",
                "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W",
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: NoteCreate) -> dict[str, Any]:
    """Creates a note authored by the calling key's agent (`author`, `author_key_id`).
    `contact_id` and `deal_id` must name live records of this account, else `not_found`."""
    check_contact(uow, args.contact_id)
    check_deal(uow, args.deal_id)
    row = uow.insert(
        notes,
        {
            "id": new_id("note"),
            **args.model_dump(include=set(FIELDS)),
            "author": uow.principal.agent_id,
            "author_key_id": uow.principal.key_id,
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )
    return note_object(row, [])


class NoteGet(Args):
    id: str = id_field("nt", "The note id.")


@operation(
    "note.get",
    summary="Fetch one note.",
    input=NoteGet,
    output=NoteOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: NoteGet) -> dict[str, Any]:
    """Returns the note with its tags. Its `contact_id`/`deal_id` may name a since-deleted record."""
    return load(uow, args.id)


class NoteList(ListArgs):
    contact_id: str | None = link_field("ct", "Only notes about this contact.")
    deal_id: str | None = link_field("dl", "Only notes about this deal.")
    tag: str | None = TAG_FILTER


@operation(
    "note.list",
    summary="List notes, newest first, by contact, deal or tag.",
    input=NoteList,
    output=ListOf[NoteOut],
    mutates=False,
    errors=("not_found",),
    examples=(Example({"contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def list_(uow: UnitOfWork, args: NoteList) -> dict[str, Any]:
    """Newest first (id order; the cursor is stable). A `contact_id` or `deal_id` of a deleted record
    still finds its notes. An unknown `tag` is `not_found`."""
    t = notes
    query = sa.select(t).where(t.c.account_id == uow.account_id, t.c.deleted_at.is_(None))
    if args.contact_id is not None:
        query = query.where(t.c.contact_id == args.contact_id)
    if args.deal_id is not None:
        query = query.where(t.c.deal_id == args.deal_id)
    if args.tag:
        query = query.where(where_tagged(uow, t, args.tag))
    rows = newest_first(uow, query, t, args.starting_after, args.limit)
    tags = tags_of(uow, [r["id"] for r in rows[: args.limit]])
    return page([note_object(r, tags.get(r["id"], [])) for r in rows], args.limit)


class NoteUpdate(Args):
    id: str = id_field("nt", "The note to update.")
    body: Body | None = None
    contact_id: str | None = link_field("ct", "Link to this live contact; null unlinks.")
    deal_id: str | None = link_field("dl", "Link to this live deal; null unlinks.")


@operation(
    "note.update",
    summary="Change a note's body or links; omitted fields stay, null unlinks.",
    input=NoteUpdate,
    output=NoteOut,
    mutates=True,
    errors=("not_found",),
    examples=(Example({"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W", "body": "Budget approved for Q4."}),),
)
def update(uow: UnitOfWork, args: NoteUpdate) -> dict[str, Any]:
    """Only the fields you send change; null unlinks `contact_id` or `deal_id` (the body cannot be
    cleared). The author stays the original writer. A changed link must name a live record; an
    unchanged one may stay pointing at a deleted record."""
    changes = args.model_dump(include=set(FIELDS), exclude_unset=True)
    if not changes:
        raise KrabsError(
            "invalid_argument", "nothing to update: send at least one of body, contact_id, deal_id"
        )
    if "body" in changes and changes["body"] is None:
        raise KrabsError("invalid_argument", "body cannot be cleared; send new text", param="body")
    row = live_row(uow, notes, args.id, "note")
    if "contact_id" in changes and changes["contact_id"] != row["contact_id"]:
        check_contact(uow, changes["contact_id"])
    if "deal_id" in changes and changes["deal_id"] != row["deal_id"]:
        check_deal(uow, changes["deal_id"])
    if any(row[k] != v for k, v in changes.items()):
        uow.update(notes, row, {**changes, "updated_at": uow.now})
    return load(uow, args.id)


class NoteDelete(Args):
    id: str = id_field("nt", "The note to delete.")


@operation(
    "note.delete",
    summary="Delete a note (soft, undoable for 24 h).",
    input=NoteDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: NoteDelete) -> dict[str, Any]:
    """Soft-deletes the note (it leaves lists and `note.get`). Returns an `undo_token`."""
    row = live_row(uow, notes, args.id, "note")
    uow.update(notes, row, {"deleted_at": uow.now, "updated_at": uow.now})
    return {"id": args.id, "deleted": True}
