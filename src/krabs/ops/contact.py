"""Contacts: people and organisations, found by their identities."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from krabs.audit.erasure import erase_contact
from krabs.contact_fields import FIELDS, display_name
from krabs.contract.errors import KrabsError, not_found
from krabs.contract.ids import new_id
from krabs.contract.models import (
    Args,
    Attributes,
    ListArgs,
    ListOf,
    LongName,
    Name,
    Out,
    Timestamp,
    id_field,
    page,
)
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.ops.common import TAG_FILTER, tags_of, where_tagged
from krabs.ops.identity import (
    IdentityIn,
    IdentityOut,
    IdentityRef,
    Normalized,
    Owners,
    RemovedOut,
    claim,
    identity_object,
    live_contact,
    live_owners,
    normalize_all,
)
from krabs.store.db import contains_ci
from krabs.store.tables import contacts, identities

Stage = Literal["lead", "prospect", "customer", "churned"]


class ContactFields(Args):
    display_name: LongName | None = Field(None, description="Defaults to given + family name.")
    given_name: Name | None = None
    family_name: Name | None = None
    company: Name | None = None
    title: Name | None = Field(None, description="Job title.")
    stage: Stage | None = Field(
        None, description="Lifecycle stage: lead, prospect, customer, churned."
    )
    owner: Name | None = Field(None, description="Who owns the relationship (a person or agent).")
    attributes: Attributes | None = None


class TagOnRecord(Out):
    id: str
    name: str
    color: str | None


class ContactOut(Out):
    object: Literal["contact"] = "contact"
    id: str
    display_name: str | None
    given_name: str | None
    family_name: str | None
    company: str | None
    title: str | None
    stage: str | None
    owner: str | None
    attributes: dict[str, Any]
    identities: list[IdentityOut]
    tags: list[TagOnRecord] = Field(default_factory=list, description="Its tags, by name.")
    created_at: str
    updated_at: str
    merged_into: str | None = Field(
        None, description="Set when this contact was merged into that one (it is then deleted)."
    )


def contact_object(
    row: dict[str, Any], idents: list[Any], tags: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The contact as every operation returns it; ``tags`` from `tags_of` (none for a new one)."""
    return {
        "object": "contact",
        "id": row["id"],
        **{f: row[f] for f in FIELDS},
        "attributes": row["attributes"] or {},
        "identities": [identity_object(i) for i in idents],
        "tags": tags or [],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "merged_into": row["merged_into"],
    }


def identities_of(uow: UnitOfWork, contact_ids: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return out
    rows = uow.execute(
        sa.select(identities)
        .where(identities.c.contact_id.in_(contact_ids), identities.c.deleted_at.is_(None))
        .order_by(identities.c.id)
    ).all()
    for r in rows:
        out[r.contact_id].append(r)
    return out


def load(uow: UnitOfWork, contact_id: str, *, merged: bool = False) -> dict[str, Any]:
    """A live contact as an object; with ``merged``, also one merged into another (deleted contacts
    that were not merged stay `not_found`)."""
    if merged:
        row = uow.fetch(contacts, contact_id)
        if row is None or (row["deleted_at"] is not None and row["merged_into"] is None):
            raise not_found("contact", contact_id, "id")
    else:
        row = live_contact(uow, contact_id, "id")
    idents = identities_of(uow, [contact_id])[contact_id]
    return contact_object(row, idents, tags_of(uow, [contact_id])[contact_id])


def _create(
    uow: UnitOfWork, fields: dict[str, Any], idents: list[Normalized], owners: Owners | None = None
) -> dict[str, Any]:
    row = uow.insert(
        contacts,
        {
            "id": new_id("contact"),
            **{f: fields.get(f) for f in FIELDS},
            "display_name": display_name(fields, idents[0].item.value if idents else None),
            "attributes": fields.get("attributes") or {},
            "created_at": uow.now,
            "updated_at": uow.now,
            "deleted_at": None,
            "merged_into": None,
        },
    )
    rows = claim(uow, row["id"], idents, owners)
    return contact_object(row, rows)


class ContactCreate(ContactFields):
    identities: list[IdentityIn] = Field(
        default_factory=list, max_length=50, description="Emails, phones, handles: [{kind, value}]."
    )


@operation(
    "contact.create",
    summary="Create a contact with its identities.",
    input=ContactCreate,
    output=ContactOut,
    mutates=True,
    errors=("conflict",),
    examples=(
        Example(
            {
                "display_name": "Ada Lovelace",
                "company": "Analytical Engines",
                "stage": "lead",
                "identities": [{"kind": "email", "value": "ada@lovelace.dev"}],
            }
        ),
    ),
)
def create(uow: UnitOfWork, args: ContactCreate) -> dict[str, Any]:
    """Creates a contact. Each identity is normalized; one already owned by a live contact is a
    `conflict` naming that contact (use `contact.upsert` to create-or-update instead)."""
    idents = normalize_all(uow, list(args.identities), "identities")
    return _create(uow, args.model_dump(include=set(FIELDS)), idents)


class ContactGet(Args):
    id: str = id_field("ct", "The contact id.")


@operation(
    "contact.get",
    summary="Fetch one contact with its identities.",
    input=ContactGet,
    output=ContactOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def get(uow: UnitOfWork, args: ContactGet) -> dict[str, Any]:
    """Returns the contact with its identities and tags. A contact merged into another (see
    `contact.merge`) is still readable: it comes back with `merged_into` set to the survivor's id and
    without identities (they moved). A deleted contact is `not_found`."""
    return load(uow, args.id, merged=True)


class ContactList(ListArgs):
    stage: Stage | None = None
    updated_since: Timestamp | None = Field(
        None, description="Only contacts updated at or after this."
    )
    q: str | None = Field(
        None, min_length=1, max_length=200, description="Search in names, company and identities."
    )
    tag: str | None = TAG_FILTER


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filtered(
    uow: UnitOfWork,
    *,
    stage: str | None = None,
    updated_since: str | None = None,
    q: str | None = None,
    tag: str | None = None,
) -> sa.Select[Any]:
    """Live contacts of the account matching contact.list's filters (shared with export_csv)."""
    c = contacts
    query = sa.select(c).where(c.c.account_id == uow.account_id, c.c.deleted_at.is_(None))
    if stage:
        query = query.where(c.c.stage == stage)
    if updated_since:
        query = query.where(c.c.updated_at >= updated_since)
    if tag:
        query = query.where(where_tagged(uow, c, tag))
    if q:
        pattern = _like(q)
        in_identity = (
            sa.select(identities.c.id)
            .where(
                identities.c.contact_id == c.c.id,
                identities.c.deleted_at.is_(None),
                sa.or_(
                    contains_ci(identities.c.normalized, pattern, uow.dialect),
                    contains_ci(identities.c.value, pattern, uow.dialect),
                ),
            )
            .exists()
        )
        names = ("display_name", "given_name", "family_name", "company")
        query = query.where(
            sa.or_(*(contains_ci(c.c[f], pattern, uow.dialect) for f in names), in_identity)
        )
    return query


@operation(
    "contact.list",
    summary="List contacts, newest first, with filters and a cursor.",
    input=ContactList,
    output=ListOf[ContactOut],
    mutates=False,
    errors=("not_found",),
    examples=(
        Example({"stage": "lead", "limit": 20}),
        Example({"q": "lovelace"}),
        Example({"tag": "VIP"}),
    ),
)
def list_(uow: UnitOfWork, args: ContactList) -> dict[str, Any]:
    """Newest first. `q` matches names, company and identity values, case-insensitively. `tag` (an
    id or a name) keeps contacts carrying that tag; an unknown tag is `not_found`."""
    c = contacts
    query = filtered(
        uow, stage=args.stage, updated_since=args.updated_since, q=args.q, tag=args.tag
    )
    if args.starting_after:
        query = query.where(c.c.id < args.starting_after)
    rows = [
        dict(r._mapping) for r in uow.execute(query.order_by(c.c.id.desc()).limit(args.limit + 1))
    ]
    ids = [r["id"] for r in rows[: args.limit]]
    idents, tagged = identities_of(uow, ids), tags_of(uow, ids)
    return page(
        [contact_object(r, idents.get(r["id"], []), tagged.get(r["id"])) for r in rows],
        args.limit,
    )


class ContactUpdate(ContactFields):
    id: str = id_field("ct", "The contact to update.")


@operation(
    "contact.update",
    summary="Change a contact's fields; omitted fields stay, null clears.",
    input=ContactUpdate,
    output=ContactOut,
    mutates=True,
    errors=("not_found",),
    examples=(Example({"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W", "stage": "customer"}),),
)
def update(uow: UnitOfWork, args: ContactUpdate) -> dict[str, Any]:
    """Only the fields you send change; send null to clear one. Identities change through
    `identity.add` and `identity.remove`."""
    changes = args.model_dump(include=set(FIELDS), exclude_unset=True)
    if not changes:
        raise KrabsError(
            "invalid_argument",
            f"nothing to update: send at least one of {', '.join(FIELDS)}",
            param=None,
        )
    if "attributes" in changes and changes["attributes"] is None:
        changes["attributes"] = {}
    row = live_contact(uow, args.id, "id")
    if {k: row[k] for k in changes} != changes:
        uow.update(contacts, row, {**changes, "updated_at": uow.now})
    return load(uow, args.id)


class ContactDelete(Args):
    id: str = id_field("ct", "The contact to delete.")
    erase: bool = Field(
        False,
        description="GDPR erasure: also scrub the contact's personal data from its row and its "
        "identities, and destroy its audit data key and the payloads sealed under it; a "
        "`contact.erased` record follows in the log (cannot be undone).",
    )


@operation(
    "contact.delete",
    summary="Delete a contact (soft, undoable for 24 h).",
    input=ContactDelete,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def delete(uow: UnitOfWork, args: ContactDelete) -> dict[str, Any]:
    """Soft-deletes the contact and releases its identities. Returns an `undo_token`; `action.undo`
    restores both. With `erase: true` (GDPR) its personal data is erased everywhere, the audit log
    included (its data key is destroyed; records stay verifiable, the erased payloads reported as
    "erased at" the `contact.erased` record that follows), and the delete cannot be undone."""
    row = live_contact(uow, args.id, "id")
    for ident in identities_of(uow, [args.id])[args.id]:
        uow.update(identities, dict(ident._mapping), {"deleted_at": uow.now})
    uow.update(contacts, row, {"deleted_at": uow.now, "updated_at": uow.now})
    if args.erase:
        erase_contact(uow, args.id)
    return {"id": args.id, "deleted": True}


class FindByIdentity(Args):
    identity: IdentityRef


@operation(
    "contact.find_by_identity",
    summary="Find the live contact that owns an email, phone or handle.",
    input=FindByIdentity,
    output=ContactOut,
    mutates=False,
    errors=("not_found",),
    examples=(Example({"identity": {"kind": "email", "value": "ADA@Lovelace.dev"}}),),
)
def find_by_identity(uow: UnitOfWork, args: FindByIdentity) -> dict[str, Any]:
    """Normalizes the value the same way writes do, so any spelling of the same address matches."""
    [(item, norm, _)] = normalize_all(uow, [args.identity], "identity", indexed=False)
    owner = live_owners(uow, [(item.kind, norm)]).get((item.kind, norm))
    if owner is None:
        raise KrabsError(
            "not_found", f"no live contact has {item.kind} {norm!r}", param="identity.value"
        )
    return load(uow, owner.contact_id)


class ContactUpsert(ContactFields):
    identity: IdentityIn = Field(description="The identity to match on; created with the contact.")


class UpsertOut(Out):
    id: str
    created: bool


@operation(
    "contact.upsert",
    summary="Create a contact, or update the one that owns the given identity.",
    input=ContactUpsert,
    output=UpsertOut,
    mutates=True,
    added_in="1.1",
    errors=("conflict",),
    examples=(
        Example({"identity": {"kind": "email", "value": "ada@lovelace.dev"}, "given_name": "Ada"}),
    ),
)
def upsert(uow: UnitOfWork, args: ContactUpsert) -> dict[str, Any]:
    """Matches on the normalized identity: updates the fields you send on the owner, or creates a new
    contact with that identity. Returns `{id, created}`."""
    idents = normalize_all(uow, [args.identity], "identity", indexed=False)
    owners = live_owners(uow, [(idents[0].item.kind, idents[0].norm)])
    owner = owners.get((idents[0].item.kind, idents[0].norm))
    fields = args.model_dump(include=set(FIELDS), exclude_unset=True)
    if owner is None:
        created = _create(uow, fields, idents, owners)
        return {"id": created["id"], "created": True}
    row = live_contact(uow, owner.contact_id, "identity")
    if "attributes" in fields and fields["attributes"] is None:
        fields["attributes"] = {}
    if fields and {k: row[k] for k in fields} != fields:
        uow.update(contacts, row, {**fields, "updated_at": uow.now})
    return {"id": owner.contact_id, "created": False}


__all__ = ["ContactOut", "RemovedOut", "contact_object", "identities_of", "not_found"]
