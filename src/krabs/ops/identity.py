"""Identities: the emails, phones and handles that say who a contact is. One live contact owns a
normalized identity per account (a partial unique index), so lookups by identity are exact."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from pydantic import Field

from krabs.contract.errors import KrabsError, not_found
from krabs.contract.ids import new_id
from krabs.contract.models import Args, ListArgs, ListOf, Name, Out, id_field, page
from krabs.contract.registry import Example, operation
from krabs.engine.uow import UnitOfWork
from krabs.normalize import NormalizationError, norm_hash, normalize_identity
from krabs.store.tables import accounts, contacts, identities

IdentityKind = Literal["email", "phone", "linkedin", "x", "github", "domain", "url", "other"]


class IdentityRef(Args):
    kind: IdentityKind = Field(
        description="email, phone, linkedin, x, github, domain, url or other."
    )
    value: str = Field(min_length=1, max_length=2048, description="As given; normalized on write.")


class IdentityIn(IdentityRef):
    primary: bool | None = Field(None, description="Primary of its kind for the contact.")
    source: Name | None = Field(None, description="Where this identity came from.")


class IdentityOut(Out):
    object: Literal["identity"] = "identity"
    id: str
    contact_id: str
    kind: str
    value: str
    normalized: str
    primary: bool
    source: str | None
    created_at: str


def identity_object(row: Any) -> dict[str, Any]:
    m = row if isinstance(row, dict) else row._mapping
    return {
        "object": "identity",
        "id": m["id"],
        "contact_id": m["contact_id"],
        "kind": m["kind"],
        "value": m["value"],
        "normalized": m["normalized"],
        "primary": bool(m["is_primary"]),
        "source": m["source"],
        "created_at": m["created_at"],
    }


def default_region(uow: UnitOfWork) -> str | None:
    region = uow.conn.execute(
        sa.select(accounts.c.default_region).where(accounts.c.id == uow.account_id)
    ).scalar()
    return region or uow.default_region


def normalize(uow: UnitOfWork, kind: str, value: str, param: str, region: str | None) -> str:
    try:
        return normalize_identity(kind, value, default_region=region)
    except NormalizationError as exc:
        raise KrabsError("invalid_argument", str(exc), param=param) from None


class Normalized(NamedTuple):
    item: IdentityRef
    norm: str
    #: Where the caller wrote it, so errors name the right parameter.
    param: str


def normalize_all(
    uow: UnitOfWork, items: list[IdentityRef], param: str, *, indexed: bool = True
) -> list[Normalized]:
    """Normalize every identity (reading the account's region only if a phone needs it), dropping
    repeats of the same normalized value. ``param`` is where the caller wrote them: a list
    (``identities`` → ``identities.2``), one object (``identity``) or the top level (``""``)."""
    region = default_region(uow) if any(i.kind == "phone" for i in items) else None
    seen: dict[tuple[str, str], Normalized] = {}
    for n, item in enumerate(items):
        where = f"{param}.{n}" if indexed else param
        value_param = f"{where}.value" if where else "value"
        norm = normalize(uow, item.kind, item.value, value_param, region)
        seen.setdefault((item.kind, norm), Normalized(item, norm, where or "value"))
    return list(seen.values())


# Built once: a statement constructed per call costs more than running it.
_LIVE_OWNER = sa.select(identities).where(
    identities.c.norm_hash == sa.bindparam("norm_hash"),
    identities.c.account_id == sa.bindparam("acct"),
    identities.c.kind == sa.bindparam("kind"),
    identities.c.deleted_at.is_(None),
)

Owners = dict[tuple[str, str], Any]


def live_owners(uow: UnitOfWork, pairs: list[tuple[str, str]]) -> Owners:
    """The live identity rows holding any of these (kind, normalized) values, keyed by the pair.
    One indexed lookup each: calls carry one or a few identities (at most 50)."""
    owners: Owners = {}
    for kind, norm in dict.fromkeys(pairs):
        key = norm_hash(uow.account_id, kind, norm)
        row = uow.execute(
            _LIVE_OWNER, {"acct": uow.account_id, "kind": kind, "norm_hash": key}
        ).first()
        if row is not None:
            owners[(kind, norm)] = row
    return owners


def claim(
    uow: UnitOfWork, contact_id: str, items: list[Normalized], owners: Owners | None = None
) -> list[dict[str, Any]]:
    """Attach normalized identities to a contact, refusing any another live contact owns.
    ``owners`` is ``live_owners`` of these items when the caller already looked them up."""
    if owners is None:
        owners = live_owners(uow, [(n.item.kind, n.norm) for n in items])
    fresh = any(
        c.table == "contacts" and c.id == contact_id and c.before is None for c in uow.changes
    )
    primaries: set[str] = (
        set()
        if fresh
        else {
            r.kind
            for r in uow.execute(
                sa.select(identities.c.kind).where(
                    identities.c.contact_id == contact_id,
                    identities.c.is_primary.is_(True),
                    identities.c.deleted_at.is_(None),
                )
            ).all()
        }
    )
    rows: list[dict[str, Any]] = []
    for item, norm, where in items:
        owner = owners.get((item.kind, norm))
        if owner is not None:
            if owner.contact_id == contact_id:
                continue
            raise KrabsError(
                "conflict",
                f"{item.kind} {norm!r} already belongs to contact {owner.contact_id}; "
                "use contact.merge or identity.remove first",
                param=where,
                details={"contact_id": owner.contact_id},
            )
        primary = item.primary if isinstance(item, IdentityIn) else None
        if primary is None:
            primary = item.kind not in primaries
        if primary:
            if item.kind in primaries and not fresh:
                _unset_primary(uow, contact_id, item.kind)
            for earlier in rows:
                if earlier["kind"] == item.kind:
                    earlier["is_primary"] = False
            primaries.add(item.kind)
        rows.append(
            {
                "id": new_id("identity"),
                "contact_id": contact_id,
                "kind": item.kind,
                "value": item.value,
                "normalized": norm,
                "norm_hash": norm_hash(uow.account_id, item.kind, norm),
                "is_primary": primary,
                "source": item.source if isinstance(item, IdentityIn) else None,
                "created_at": uow.now,
                "deleted_at": None,
            }
        )
    return uow.insert_many(identities, rows)


def _unset_primary(uow: UnitOfWork, contact_id: str, kind: str) -> None:
    for row in uow.execute(
        sa.select(identities).where(
            identities.c.contact_id == contact_id,
            identities.c.kind == kind,
            identities.c.is_primary.is_(True),
            identities.c.deleted_at.is_(None),
        )
    ).all():
        uow.update(identities, dict(row._mapping), {"is_primary": False})


def live_contact(uow: UnitOfWork, contact_id: str, param: str = "contact_id") -> dict[str, Any]:
    row = uow.fetch(contacts, contact_id)
    if row is None or row["deleted_at"] is not None:
        raise not_found("contact", contact_id, param)
    return row


# -- operations ------------------------------------------------------------------------------------


class IdentityAdd(IdentityIn):
    contact_id: str = id_field("ct", "The contact to attach the identity to.")


@operation(
    "identity.add",
    summary="Attach an email, phone or handle to a contact.",
    input=IdentityAdd,
    output=IdentityOut,
    mutates=True,
    errors=("not_found", "conflict"),
    examples=(
        Example(
            {
                "contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W",
                "kind": "email",
                "value": "ada@lovelace.dev",
            }
        ),
    ),
)
def add(uow: UnitOfWork, args: IdentityAdd) -> dict[str, Any]:
    """Normalizes the value (emails lower-cased, phones to E.164, handles and URLs canonicalized) and
    attaches it. Adding one the contact already has returns it unchanged; one owned by another live
    contact is a `conflict` naming that contact."""
    live_contact(uow, args.contact_id)
    [normalized] = normalize_all(uow, [args], "", indexed=False)
    owners = live_owners(uow, [(normalized.item.kind, normalized.norm)])
    existing = owners.get((normalized.item.kind, normalized.norm))
    if existing is not None and existing.contact_id == args.contact_id:
        return identity_object(existing)
    [row] = claim(uow, args.contact_id, [normalized], owners)
    uow.update(contacts, live_contact(uow, args.contact_id), {"updated_at": uow.now})
    return identity_object(row)


class IdentityList(ListArgs):
    contact_id: str = id_field("ct", "The contact whose identities to list.")


@operation(
    "identity.list",
    summary="List a contact's identities.",
    input=IdentityList,
    output=ListOf[IdentityOut],
    mutates=False,
    errors=("not_found",),
    examples=(Example({"contact_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def list_(uow: UnitOfWork, args: IdentityList) -> dict[str, Any]:
    """Live identities of one contact, oldest first, each with its raw and normalized value."""
    live_contact(uow, args.contact_id)
    t = identities
    q = sa.select(t).where(
        t.c.account_id == uow.account_id,
        t.c.contact_id == args.contact_id,
        t.c.deleted_at.is_(None),
    )
    if args.starting_after:
        q = q.where(t.c.id > args.starting_after)
    rows = uow.execute(q.order_by(t.c.id).limit(args.limit + 1)).all()
    return page([identity_object(r) for r in rows], args.limit)


class IdentityRemove(Args):
    id: str = id_field("id", "The identity to remove.")


class RemovedOut(Out):
    id: str
    deleted: bool
    undo_token: str | None = None
    undo_expires_at: str | None = None


@operation(
    "identity.remove",
    summary="Detach an identity from its contact (undoable).",
    input=IdentityRemove,
    output=RemovedOut,
    mutates=True,
    destructive=True,
    errors=("not_found",),
    examples=(Example({"id": "id_01HG7Z4X9Q8M2N7P3R5T6V8W"}),),
)
def remove(uow: UnitOfWork, args: IdentityRemove) -> dict[str, Any]:
    """Soft-deletes the identity, freeing its value for another contact. Returns an `undo_token`."""
    row = uow.fetch(identities, args.id)
    if row is None or row["deleted_at"] is not None:
        raise not_found("identity", args.id)
    uow.update(identities, row, {"deleted_at": uow.now, "is_primary": False})
    uow.update(contacts, live_contact(uow, row["contact_id"]), {"updated_at": uow.now})
    return {"id": args.id, "deleted": True}
