"""GDPR erasure without breaking proofs: ``contact.delete`` with ``erase: true``.

The hashed records hold ids and payload digests only; the personal data is in the payloads
(arguments, results, row images) and in the rows themselves. Erasing a contact deletes the payload of
every action that touched the contact or one of its identities, scrubs the contact's and identities'
personal fields, and drops the erasing call's own payload (its row images hold what was just
scrubbed). ``contact_erasures`` remembers each erased payload digest and the record that erased it,
so ``krabs audit verify`` still verifies every leaf, root and signature and reports those payloads as
"erased at #N" instead of missing. An erased action cannot be read in full or undone."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import sqlalchemy as sa

from krabs.engine.uow import UnitOfWork
from krabs.store.tables import (
    audit_actions,
    audit_payloads,
    audit_targets,
    contact_erasures,
    contacts,
    identities,
)

ERASED = "[erased]"
#: Calls whose own payload must not be stored: action id -> contact id (set by the handler, taken by
#: ``krabs.audit.log.append`` in the same call).
_pending: dict[str, str] = {}
_lock = threading.Lock()


def erase_contact(uow: UnitOfWork, contact_id: str) -> int:
    """Erase the contact's personal data from its row, its identities and the audit payloads;
    returns how many earlier payloads were erased."""
    ident_rows = uow.execute(
        sa.select(identities).where(
            identities.c.account_id == uow.account_id, identities.c.contact_id == contact_id
        )
    ).all()
    for ident in ident_rows:
        scrubbed = f"erased:{ident.id}"
        uow.update(
            identities,
            dict(ident._mapping),
            {
                "value": scrubbed,
                "normalized": scrubbed,
                "norm_hash": hashlib.sha256(scrubbed.encode()).hexdigest(),
                "source": None,
            },
        )
    row = uow.fetch(contacts, contact_id)
    if row is not None:
        uow.update(
            contacts,
            row,
            {
                "display_name": ERASED,
                "given_name": None,
                "family_name": None,
                "company": None,
                "title": None,
                "owner": None,
                "attributes": {},
            },
        )
    targets = [contact_id, *(i.id for i in ident_rows)]
    a, t = audit_actions, audit_targets
    digests = (
        uow.execute(
            sa.select(a.c.payload_digest)
            .distinct()
            .select_from(t.join(a, (a.c.account_id == t.c.account_id) & (a.c.seq == t.c.seq)))
            .where(t.c.account_id == uow.account_id, t.c.target_id.in_(targets))
        )
        .scalars()
        .all()
    )
    erased = 0
    for digest in digests:
        if _erase_payload(uow.conn, uow.account_id, contact_id, digest, uow.action_id or ""):
            erased += 1
    if uow.action_id:
        with _lock:
            _pending[uow.action_id] = contact_id
    return erased


def _erase_payload(
    conn: sa.Connection, account_id: str, contact_id: str, digest: str, action_id: str
) -> bool:
    p, e = audit_payloads, contact_erasures
    gone = conn.execute(
        p.delete().where(p.c.account_id == account_id, p.c.digest == digest)
    ).rowcount
    if not gone:
        return False
    conn.execute(
        e.insert().values(
            account_id=account_id,
            payload_digest=digest,
            contact_id=contact_id,
            action_id=action_id,
            erased_seq=None,
        )
    )
    return True


def take_pending(action_id: str) -> str | None:
    """The contact whose erasure this action is, once (the append path asks)."""
    with _lock:
        return _pending.pop(action_id, None)


def record_erasure(
    conn: sa.Connection, account_id: str, contact_id: str, action_id: str, seq: int, digest: str
) -> None:
    """The erasing action's record is appended: its own payload is erased too, and every payload it
    erased gets its seq ("erased at #seq")."""
    e = contact_erasures
    conn.execute(
        e.insert().values(
            account_id=account_id,
            payload_digest=digest,
            contact_id=contact_id,
            action_id=action_id,
            erased_seq=seq,
        )
    )
    conn.execute(
        e.update()
        .where(e.c.account_id == account_id, e.c.action_id == action_id)
        .values(erased_seq=seq)
    )


def erased_by(conn: sa.Connection, account_id: str, digest: str) -> Any:
    e = contact_erasures
    return conn.execute(
        sa.select(e.c.action_id, e.c.erased_seq).where(
            e.c.account_id == account_id, e.c.payload_digest == digest
        )
    ).first()
