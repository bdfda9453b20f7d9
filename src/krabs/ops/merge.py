"""`contact.merge`: fold duplicates into one survivor. Everything that points at a merged contact —
identities, interaction participation, deals, tasks, notes, tag links — moves to the survivor
(links the survivor already has are removed instead of doubled); conflicting fields are resolved by
`prefer`; the merged contacts are soft-deleted with `merged_into`. Every write goes through the unit
of work, so `action.undo` restores all of it exactly."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError, not_found
from krabs.contract.models import Args, id_field
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.contact import FIELDS, ContactOut, load
from krabs.store.tables import (
    contacts,
    deals,
    identities,
    interaction_participants,
    notes,
    tag_links,
    tasks,
)

SCALARS = tuple(f for f in FIELDS if f != "attributes")
CONTACT_ID = r"^ct_[0-9A-Za-z]{1,40}$"
ContactId = Annotated[str, Field(pattern=CONTACT_ID, max_length=48)]


def _pick(what: str) -> Any:
    return Field(None, pattern=CONTACT_ID, max_length=48, description=f"The contact whose {what}.")


class Prefer(Args):
    """For each field, the contact (the survivor or one of merged_ids) whose value wins."""

    display_name: str | None = _pick("display_name wins")
    given_name: str | None = _pick("given_name wins")
    family_name: str | None = _pick("family_name wins")
    company: str | None = _pick("company wins")
    title: str | None = _pick("title wins")
    stage: str | None = _pick("stage wins")
    owner: str | None = _pick("owner wins")
    attributes: str | None = _pick("attribute keys win over the others'")


class ContactMerge(Args):
    survivor_id: str = id_field("ct", "The contact that remains.")
    merged_ids: list[ContactId] = Field(
        min_length=1,
        max_length=10,
        description="1-10 contacts folded into the survivor, in order of precedence.",
    )
    prefer: Prefer | None = Field(
        None, description="Per field, the contact whose value wins: {field: contact_id}."
    )


class MergeOut(ContactOut):
    merged_ids: list[str]
    undo_token: str | None = None
    undo_expires_at: str | None = None


def _filled(value: Any) -> bool:
    return value is not None and value != "" and value != {}


def _check(uow: UnitOfWork, args: ContactMerge) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Refuse self-merges, repeats and missing contacts; return the survivor and merged rows."""
    seen: set[str] = set()
    for n, cid in enumerate(args.merged_ids):
        param = f"merged_ids.{n}"
        if cid == args.survivor_id:
            raise KrabsError(
                "invalid_argument",
                f"{param} is the survivor: a contact cannot be merged into itself",
                param=param,
            )
        if cid in seen:
            raise KrabsError(
                "invalid_argument", f"{param} repeats {cid}; list each contact once", param=param
            )
        seen.add(cid)
    survivor = _live(uow, args.survivor_id, "survivor_id")
    merged = [_live(uow, cid, f"merged_ids.{n}") for n, cid in enumerate(args.merged_ids)]
    allowed = {args.survivor_id, *args.merged_ids}
    for name, cid in (args.prefer.model_dump(exclude_none=True) if args.prefer else {}).items():
        if cid not in allowed:
            raise KrabsError(
                "invalid_argument",
                f"prefer.{name} names {cid}, which is not in this merge; use survivor_id or one "
                "of merged_ids",
                param=f"prefer.{name}",
            )
    return survivor, merged


def _live(uow: UnitOfWork, cid: str, param: str) -> dict[str, Any]:
    row = uow.fetch(contacts, cid)
    if row is None or row["deleted_at"] is not None:
        raise not_found("contact", cid, param)
    return row


def resolve_fields(
    survivor: dict[str, Any], merged: list[dict[str, Any]], prefer: dict[str, str]
) -> dict[str, Any]:
    """The survivor's fields after the merge. A preferred contact's value wins (even empty);
    otherwise the survivor's non-empty value, else the first merged contact's non-empty one.
    Attributes merge key by key: the preferred contact's keys, then the survivor's, then the merged
    contacts' in order."""
    by_id = {r["id"]: r for r in (survivor, *merged)}
    out: dict[str, Any] = {}
    for name in SCALARS:
        if name in prefer:
            out[name] = by_id[prefer[name]][name]
        else:
            out[name] = next(
                (r[name] for r in (survivor, *merged) if _filled(r[name])), survivor[name]
            )
    order = [by_id[prefer["attributes"]]] if "attributes" in prefer else []
    order += [survivor, *merged]
    attributes: dict[str, Any] = {}
    for row in order:
        for key, value in (row["attributes"] or {}).items():
            attributes.setdefault(key, value)
    out["attributes"] = attributes
    return out


def _rows(uow: UnitOfWork, table: sa.Table, column: str, ids: list[str]) -> list[dict[str, Any]]:
    rows = uow.execute(
        sa.select(table)
        .where(table.c.account_id == uow.account_id, table.c[column].in_(ids))
        .order_by(table.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def _move_identities(uow: UnitOfWork, survivor: str, merged: list[str]) -> None:
    """Live identities move; a moved one stays primary only if the survivor has no primary of its
    kind yet."""
    current = _rows(uow, identities, "contact_id", [survivor])
    primaries = {r["kind"] for r in current if r["is_primary"] and r["deleted_at"] is None}
    order = {cid: n for n, cid in enumerate(merged)}
    moving = [r for r in _rows(uow, identities, "contact_id", merged) if r["deleted_at"] is None]
    moving.sort(key=lambda r: (order[r["contact_id"]], not r["is_primary"], r["id"]))
    for row in moving:
        primary = bool(row["is_primary"]) and row["kind"] not in primaries
        if primary:
            primaries.add(row["kind"])
        uow.update(identities, row, {"contact_id": survivor, "is_primary": primary})


def _move_links(
    uow: UnitOfWork,
    table: sa.Table,
    column: str,
    key: tuple[str, ...],
    survivor: str,
    merged: list[str],
) -> None:
    """Repoint link rows (participants, tag links) at the survivor; a row whose ``key`` the survivor
    already has (its own or one moved before it) is deleted instead, as the link is unique."""

    def of(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in key)

    held = {of(r) for r in _rows(uow, table, column, [survivor])}
    order = {cid: n for n, cid in enumerate(merged)}
    for row in sorted(_rows(uow, table, column, merged), key=lambda r: (order[r[column]], r["id"])):
        if of(row) in held:
            uow.delete(table, row)
        else:
            held.add(of(row))
            uow.update(table, row, {column: survivor})


@operation(
    "contact.merge",
    summary="Merge duplicate contacts into one survivor (undoable for 24 h).",
    input=ContactMerge,
    output=MergeOut,
    mutates=True,
    destructive=True,
    errors=("not_found", "conflict"),
    examples=(
        Example(
            {
                "survivor_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W",
                "merged_ids": ["ct_01HG7Z5A1B2C3D4E5F6G7H8J"],
                "prefer": {"company": "ct_01HG7Z5A1B2C3D4E5F6G7H8J"},
            }
        ),
    ),
)
def merge(uow: UnitOfWork, args: ContactMerge) -> dict[str, Any]:
    """Moves identities, interaction participation, deals, tasks, notes and tag links from each of
    `merged_ids` (1-10 live contacts) to `survivor_id`; links the survivor already has are dropped.
    Fields: `prefer: {field: contact_id}` picks a contact's value (even an empty one); otherwise the
    survivor's non-empty value wins, else the first merged contact's in the order given. Attributes
    merge key by key (survivor's keys win unless `prefer.attributes` names another contact). The
    merged contacts are deleted with `merged_into` set (`contact.get` still reads them). Returns
    the survivor, `merged_ids` and an `undo_token`; `action.undo` restores everything."""
    survivor, merged = _check(uow, args)
    sid, mids = args.survivor_id, list(args.merged_ids)
    prefer = args.prefer.model_dump(exclude_none=True) if args.prefer else {}
    _move_identities(uow, sid, mids)
    participants = interaction_participants
    _move_links(uow, participants, "contact_id", ("interaction_id", "role"), sid, mids)
    _move_links(uow, tag_links, "target_id", ("tag_id",), sid, mids)
    for table in (deals, tasks, notes):
        for row in _rows(uow, table, "contact_id", mids):
            uow.update(table, row, {"contact_id": sid, "updated_at": uow.now})
    # Contacts merged earlier into one of these now point straight at the survivor.
    for row in _rows(uow, contacts, "merged_into", mids):
        uow.update(contacts, row, {"merged_into": sid})
    for row in merged:
        uow.update(
            contacts, row, {"deleted_at": uow.now, "updated_at": uow.now, "merged_into": sid}
        )
    fields = resolve_fields(survivor, merged, prefer)
    # Only what differs is written: an equal JSON object in another key order is left as stored.
    changed = {k: v for k, v in fields.items() if v != survivor[k]}
    uow.update(contacts, survivor, {**changed, "updated_at": uow.now})
    return {**load(uow, sid), "merged_ids": mids}
