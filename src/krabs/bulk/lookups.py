"""What a batch of upserts reads before it writes: the live owner of each identity (through the
import's identity filter when it has one), the matched contacts, their primary identity kinds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from krabs.bulk.identity_filter import IdentityFilter
from krabs.bulk.tagging import chunks
from krabs.engine.uow import UnitOfWork
from krabs.normalize import norm_hash
from krabs.store.prepared import marks, select_rows
from krabs.store.tables import contacts, identities

#: An import this large (rows) probes the identity index only for hashes a filter may have seen,
#: from its batch number ``FILTER_AFTER_BATCHES`` on; the filter is sized for this many identities
#: per row (the benchmark's rows carry two, some three).
FILTER_MIN_ROWS = 20_000
FILTER_AFTER_BATCHES = 4
IDENTITIES_PER_ROW = 3


def live_owner_ids(
    uow: UnitOfWork,
    pairs: list[tuple[str, str]],
    hashes: dict[tuple[str, str], str] | None = None,
    known: IdentityFilter | None = None,
) -> dict[tuple[str, str], str]:
    """Which live contact owns each (kind, normalized) pair: one indexed ``IN`` query per kind and
    chunk (on the unique index's norm_hash). ``hashes`` ((kind, normalized) → norm_hash) is filled
    as a side effect, for the caller's inserts. ``known``: a filter of every live identity hash of
    the account; a pair it has not seen is not looked up."""
    hashes = {} if hashes is None else hashes
    account = uow.account_id
    by_kind: dict[str, list[str]] = {}
    for pair in pairs:
        kind, norm = pair
        h = hashes.get(pair)
        if h is None:
            h = hashes[pair] = norm_hash(account, kind, norm)
        if known is None or known.may_contain(h):
            by_kind.setdefault(kind, []).append(h)
    wanted = set(pairs)
    out: dict[tuple[str, str], str] = {}
    for kind, kind_hashes in by_kind.items():
        for part in chunks(kind_hashes):
            for contact_id, normalized in _probe(uow, kind, part):
                if (kind, normalized) in wanted:
                    out[(kind, normalized)] = contact_id
    return out


def _probe(uow: UnitOfWork, kind: str, part: list[str]) -> Sequence[Any]:
    """(contact_id, normalized) of the live identities of ``kind`` with these hashes."""
    return select_rows(
        uow.conn,
        "SELECT contact_id, normalized FROM identities WHERE "
        f"norm_hash IN ({marks(part)}) AND deleted_at IS NULL AND account_id = ? AND kind = ?",
        (*part, uow.account_id, kind),
    )


def identity_filter(uow: UnitOfWork, rows_hint: int | None) -> IdentityFilter | None:
    """A filter of the account's live identity hashes, for an import of about ``rows_hint`` more
    rows, or None where looking everything up costs less: a small import, or an account whose
    identities far outnumber the import's (reading them all would cost more than the lookups)."""
    if rows_hint is None or rows_hint < FILTER_MIN_ROWS:
        return None
    # Through the account's contacts: no index of identities leads with the account.
    t = identities.join(contacts, contacts.c.id == identities.c.contact_id)
    live = sa.and_(contacts.c.account_id == uow.account_id, identities.c.deleted_at.is_(None))
    existing = uow.execute(sa.select(sa.func.count()).select_from(t).where(live)).scalar() or 0
    adding = rows_hint * IDENTITIES_PER_ROW
    if existing > 4 * adding:
        return None
    found = IdentityFilter(existing + adding)
    for (h,) in uow.execute(sa.select(identities.c.norm_hash).select_from(t).where(live)):
        found.add(h)
    return found


_CONTACT_COLUMNS = tuple(c.name for c in contacts.columns)


def fetch_contacts(uow: UnitOfWork, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for part in chunks(ids):
        found = select_rows(
            uow.conn,
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM contacts "
            f"WHERE account_id = ? AND id IN ({marks(part)})",
            (uow.account_id, *part),
        )
        for r in found:
            row = dict(zip(_CONTACT_COLUMNS, r, strict=True))
            if isinstance(row["attributes"], str):  # SQLite's JSON is text; PostgreSQL's decoded
                row["attributes"] = json.loads(row["attributes"])
            out[row["id"]] = row
    return out


def primary_kinds(uow: UnitOfWork, contact_ids: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for part in chunks(contact_ids):
        for r in select_rows(
            uow.conn,
            f"SELECT contact_id, kind FROM identities WHERE contact_id IN ({marks(part)}) "
            "AND is_primary = ? AND deleted_at IS NULL",
            (*part, True),
        ):
            out.setdefault(r[0], set()).add(r[1])
    return out
