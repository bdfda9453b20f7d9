"""Interactions: the emails, calls, meetings and messages exchanged with contacts. Each names its
participants (contacts with a role); an ``external_id`` (an email's Message-ID, another system's id)
makes recording the same thing twice a no-op."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, Field

from krabs.contract.ids import new_id
from krabs.contract.models import (
    Args,
    Attributes,
    ListArgs,
    ListOf,
    Name,
    Out,
    Text,
    Timestamp,
    _single_line,
    id_field,
    page,
)
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import check_contact, live_row, newest_first
from krabs.ops.identity import RemovedOut
from krabs.store.tables import interaction_participants, interactions

Kind = Literal["email", "call", "meeting", "message"]
Direction = Literal["inbound", "outbound", "internal"]
Role = Literal["from", "to", "cc", "bcc", "participant"]
Subject = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_single_line)]
ExternalRef = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_single_line)]

FIELDS = (
    "kind",
    "direction",
    "occurred_at",
    "subject",
    "body",
    "external_id",
    "thread_id",
    "source",
    "attributes",
)


class ParticipantIn(Args):
    contact_id: str = id_field("ct", "A live contact of this account.")
    role: Role = Field("participant", description="from, to, cc, bcc or participant (default).")


class ParticipantOut(Out):
    contact_id: str
    role: str


class InteractionOut(Out):
    object: Literal["interaction"] = "interaction"
    id: str
    kind: str
    direction: str
    occurred_at: str
    subject: str | None
    body: str | None
    participants: list[ParticipantOut]
    external_id: str | None
    thread_id: str | None
    source: str | None
    attributes: dict[str, Any]
    created_at: str
    updated_at: str


class RecordedOut(InteractionOut):
    deduplicated: bool = Field(
        description="True when `external_id` matched an interaction already recorded: that one is "
        "returned unchanged and nothing was written."
    )


def interaction_object(row: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "interaction",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "attributes": row["attributes"] or {},
        "participants": [{"contact_id": p["contact_id"], "role": p["role"]} for p in parts],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def participants_of(uow: UnitOfWork, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Participants of each interaction, in the order they were given."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    p = interaction_participants
    rows = uow.execute(
        sa.select(p.c.interaction_id, p.c.contact_id, p.c.role)
        .where(p.c.account_id == uow.account_id, p.c.interaction_id.in_(ids))
        .order_by(p.c.id)
    ).all()
    for r in rows:
        out[r.interaction_id].append({"contact_id": r.contact_id, "role": r.role})
    return out


def live_by_external_id(uow: UnitOfWork, external_id: str) -> dict[str, Any] | None:
    t = interactions
    row = uow.execute(
        sa.select(t).where(
            t.c.account_id == uow.account_id,
            t.c.external_id == external_id,
            t.c.deleted_at.is_(None),
        )
    ).first()
    return dict(row._mapping) if row is not None else None


def already_recorded(uow: UnitOfWork, row: dict[str, Any]) -> dict[str, Any]:
    """The interaction a repeated ``external_id`` resolves to, marked as a deduplicated result."""
    parts = participants_of(uow, [row["id"]])[row["id"]]
    return {**interaction_object(row, parts), "deduplicated": True}


def record(
    uow: UnitOfWork, values: dict[str, Any], participants: list[tuple[str, str]]
) -> dict[str, Any]:
    """Insert one interaction with its (already checked) participants, unless a live one has the
    same ``external_id``: then that one comes back unchanged with ``deduplicated: true``."""
    if values.get("external_id"):
        existing = live_by_external_id(uow, values["external_id"])
        if existing is not None:
            return already_recorded(uow, existing)
    row = uow.insert(
        interactions,
        {
            "id": new_id("interaction"),
            **{f: values.get(f) for f in FIELDS},
            "occurred_at": values.get("occurred_at") or uow.now,
            "attributes": values.get("attributes") or {},
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
        },
    )
    pairs = list(dict.fromkeys(participants))
    uow.insert_many(
        interaction_participants,
        [
            {
                "id": new_id("participant"),
                "interaction_id": row["id"],
                "contact_id": contact_id,
                "role": role,
                "created_at": uow.now,
            }
            for contact_id, role in pairs
        ],
    )
    parts = [{"contact_id": c, "role": r} for c, r in pairs]
    return {**interaction_object(row, parts), "deduplicated": False}


# -- operations ------------------------------------------------------------------------------------


class InteractionCreate(Args):
    kind: Kind = Field(description="email, call, meeting or message.")
    direction: Direction = Field(
        description="inbound (they reached you), outbound (you reached them) or internal."
    )
    occurred_at: Timestamp | None = Field(None, description="When it happened; defaults to now.")
    subject: Subject | None = None
    body: Text | None = Field(None, description="Markdown or plain text, at most 100,000 chars.")
    participants: list[ParticipantIn] = Field(
        default_factory=list, max_length=200, description="Contacts involved: [{contact_id, role}]."
    )
    external_id: ExternalRef | None = Field(
        None,
        description="Another system's id (an email's Message-ID). Unique among this account's live "
        "interactions: a create repeating one returns the existing interaction.",
    )
    thread_id: ExternalRef | None = Field(
        None, description="The conversation it belongs to (for email, the root Message-ID)."
    )
    source: Name | None = Field(None, description="Where it was recorded from (gmail, phone, …).")
    attributes: Attributes | None = None


@operation(
    "interaction.create",
    summary="Record an email, call, meeting or message with the contacts involved.",
    input=InteractionCreate,
    output=RecordedOut,
    mutates=True,
    errors=("not_found", "conflict"),
    examples=(
        Example(
            {
                "kind": "call",
                "direction": "outbound",
                "occurred_at": "2026-05-16T14:00:00Z",
                "subject": "Intro call",
                "body": "Discussed pricing; follow up Friday.",
                "participants": [{"contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}],
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: InteractionCreate) -> dict[str, Any]:
    """Records an interaction. Every participant must be a live contact of this account
    (`not_found` names `participants.N.contact_id`); a repeated {contact_id, role} is kept once.
    With an `external_id` already held by a live interaction nothing is written: that interaction is
    returned unchanged with `deduplicated: true` (the call is still audited, as every write is), so
    retrying an import is safe. Deleted contacts stay on older interactions as tombstone links."""
    for n, p in enumerate(args.participants):
        check_contact(uow, p.contact_id, f"participants.{n}.contact_id")
    return record(
        uow,
        args.model_dump(include=set(FIELDS)),
        [(p.contact_id, p.role) for p in args.participants],
    )


class InteractionList(ListArgs):
    contact_id: str | None = Field(
        None,
        pattern=r"^ct_[0-9A-Za-z]{1,40}$",
        max_length=48,
        description="Only interactions this contact took part in (deleted contacts included).",
    )
    kind: Kind | None = None
    direction: Direction | None = None
    since: Timestamp | None = Field(None, description="Only those that occurred at or after this.")
    until: Timestamp | None = Field(None, description="Only those that occurred before this.")
    thread_id: ExternalRef | None = None
    external_id: ExternalRef | None = None


@operation(
    "interaction.list",
    summary="List interactions, newest first, filtered by contact, kind, direction, time or thread.",
    input=InteractionList,
    output=ListOf[InteractionOut],
    mutates=False,
    examples=(
        Example({"contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "limit": 20}),
        Example({"kind": "email", "since": "2026-05-01", "until": "2026-06-01"}),
    ),
)
def list_(uow: UnitOfWork, args: InteractionList) -> dict[str, Any]:
    """Newest recorded first (by id, so the cursor is stable even when `occurred_at` ties).
    `since` is inclusive and `until` exclusive on `occurred_at`. A `contact_id` of a deleted contact
    still finds its interactions; an unknown one finds none."""
    t = interactions
    query = sa.select(t).where(t.c.account_id == uow.account_id, t.c.deleted_at.is_(None))
    for name in ("kind", "direction", "thread_id", "external_id"):
        value = getattr(args, name)
        if value is not None:
            query = query.where(t.c[name] == value)
    if args.since:
        query = query.where(t.c.occurred_at >= args.since)
    if args.until:
        query = query.where(t.c.occurred_at < args.until)
    if args.contact_id:
        p = interaction_participants
        query = query.where(
            t.c.id.in_(
                sa.select(p.c.interaction_id).where(
                    p.c.account_id == uow.account_id, p.c.contact_id == args.contact_id
                )
            )
        )
    rows = newest_first(uow, query, t, args.starting_after, args.limit)
    parts = participants_of(uow, [r["id"] for r in rows[: args.limit]])
    return page([interaction_object(r, parts.get(r["id"], [])) for r in rows], args.limit)


class InteractionDelete(Args):
    id: str = id_field("ix", "The interaction to delete.")


@operation(
    "interaction.delete",
    summary="Delete an interaction (soft, undoable for 24 h).",
    input=InteractionDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "ix_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: InteractionDelete) -> dict[str, Any]:
    """Soft-deletes the interaction; it leaves lists and frees its `external_id` (recording or
    ingesting it again creates a new one). Returns an `undo_token` for `action.undo`."""
    row = live_row(uow, interactions, args.id, "interaction")
    uow.update(interactions, row, {"deleted_at": uow.now, "updated_at": uow.now})
    return {"id": args.id, "deleted": True}
