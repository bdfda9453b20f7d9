"""GDPR erasure without breaking proofs: ``contact.delete`` with ``erase: true``.

The hashed records hold ids and salted commitments only; the personal data is in the sealed
payloads (``krabs.audit.sealing``: arguments, results, row images encrypted under the contact's data
key) and in the rows themselves. Erasing a contact destroys its data key, deletes every payload
sealed under it (or, for payloads from before sealing, of every action that touched the contact or
one of its identities), scrubs the contact's and identities' personal fields, drops the stored
responses and run-event bodies of those actions, and drops the erasing call's own payload (its row
images hold what was just scrubbed). The erasing call is followed in the log by a separate
``contact.erased`` record; ``contact_erasures`` remembers each erased payload's commitment and that
record's seq, so ``krabs audit verify`` still verifies every leaf, root and signature and reports
those payloads as "erased at #N" instead of missing. An erased action cannot be read in full or
undone."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from krabs.audit.verify_work import ERASED_OP, erased_set_digest
from krabs.contract.ids import new_id
from krabs.engine.uow import UnitOfWork
from krabs.normalize import norm_hash
from krabs.store.tables import (
    approvals,
    audit_actions,
    audit_data_keys,
    audit_payloads,
    audit_targets,
    contact_erasures,
    contacts,
    idempotency_keys,
    identities,
    jobs,
    run_events,
)

ERASED = "[erased]"
#: An erasure ran since the last WAL truncation: SQLite's write-ahead log may still hold pages
#: with the erased bytes until it is checkpointed and truncated (``krabs.audit.periodic``).
wal_dirty = False


def erase_contact(uow: UnitOfWork, contact_id: str) -> int:
    """Erase the contact's personal data from its row, its identities and the audit payloads, and
    the same for every contact merged into it (duplicates of the same person); returns how many
    earlier payloads were erased."""
    c = contacts
    folded = uow.execute(
        sa.select(c.c.id).where(c.c.account_id == uow.account_id, c.c.merged_into == contact_id)
    ).scalars()
    erased = sum(_erase_one(uow, cid) for cid in [contact_id, *sorted(folded)])
    uow.erasing = contact_id  # the audit step keeps no payload of this call
    global wal_dirty
    wal_dirty = True
    return erased


def _erase_one(uow: UnitOfWork, contact_id: str) -> int:
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
                "norm_hash": norm_hash(uow.account_id, ident.kind, scrubbed),
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
    _scrub_mentions(
        uow, [contact_id, *{str(v) for i in ident_rows for v in (i.value, i.normalized) if v}]
    )
    targets = [contact_id, *(i.id for i in ident_rows)]
    digests = set(_legacy_digests(uow, targets)) | set(_sealed_digests(uow, contact_id))
    erased = 0
    for digest in sorted(digests):
        if _erase_payload(uow.conn, uow.account_id, contact_id, digest, uow.action_id or ""):
            erased += 1
    k = audit_data_keys
    uow.execute(k.delete().where(k.c.account_id == uow.account_id, k.c.subject_id == contact_id))
    _drop_copies(uow, sorted(digests))
    return erased


def _legacy_digests(uow: UnitOfWork, targets: list[str]) -> list[str]:
    """Payloads of actions that touched these rows (how payloads from before sealing are found)."""
    a, t = audit_actions, audit_targets
    return list(
        uow.execute(
            sa.select(a.c.payload_digest)
            .distinct()
            .select_from(t.join(a, (a.c.account_id == t.c.account_id) & (a.c.seq == t.c.seq)))
            .where(t.c.account_id == uow.account_id, t.c.target_id.in_(targets))
        )
        .scalars()
        .all()
    )


def _sealed_digests(uow: UnitOfWork, contact_id: str) -> list[str]:
    """Payloads sealed under the contact's key (a scan of the account's payloads: erasure is rare,
    and the write path stays one row per payload)."""
    p = audit_payloads
    return list(
        uow.execute(
            sa.select(p.c.digest).where(
                p.c.account_id == uow.account_id, p.c.subjects.contains(contact_id, autoescape=True)
            )
        )
        .scalars()
        .all()
    )


def _drop_copies(uow: UnitOfWork, digests: list[str]) -> None:
    """The erased actions' personal data outside the log: their stored idempotent responses are
    dropped and their run events keep only op and action id."""
    a = audit_actions
    ids: list[tuple[str, str]] = []
    for start in range(0, len(digests), 500):
        ids += [
            (r.id, r.op)
            for r in uow.execute(
                sa.select(a.c.id, a.c.op).where(
                    a.c.account_id == uow.account_id,
                    a.c.payload_digest.in_(digests[start : start + 500]),
                )
            )
        ]
    i, e = idempotency_keys, run_events
    for action_id, op in ids:
        uow.execute(i.delete().where(i.c.account_id == uow.account_id, i.c.action_id == action_id))
        body = json.dumps({"op": op, "action_id": action_id, "erased": True})
        uow.execute(
            e.update()
            .where(e.c.account_id == uow.account_id, e.c.action_id == action_id)
            .values(data=body)
        )


def _scrub_mentions(uow: UnitOfWork, needles: list[str]) -> None:
    """Copies of the contact's data outside the log and its payloads: held calls' arguments
    (approvals), finished jobs' calls and results, and run events (failed calls', and those of
    calls that named the contact without writing its rows), found by the contact's id and identity
    values in their JSON text. A name alone is not searched: it would match strangers."""
    needles = [n for n in needles if len(n) >= 3]
    if not needles:
        return
    acct = uow.account_id

    def mentions(col: Any) -> Any:
        text = sa.cast(col, sa.Text)
        return sa.or_(*(text.contains(n, autoescape=True) for n in needles))

    a, j, e = approvals, jobs, run_events
    uow.execute(
        a.update()
        .where(a.c.account_id == acct, mentions(a.c.args))
        .values(args={"erased": True}, note=None)
    )
    finished = j.c.status.notin_(("queued", "running"))
    for column in (j.c.payload, j.c.result):
        uow.execute(
            j.update()
            .where(j.c.account_id == acct, finished, mentions(column))
            .values(payload={"erased": True}, result={"erased": True})
        )
    events = uow.execute(
        sa.select(e.c.id, e.c.op).where(e.c.account_id == acct, mentions(e.c.data))
    ).all()
    for event in events:
        body = json.dumps({"op": event.op, "erased": True})
        uow.execute(e.update().where(e.c.id == event.id).values(data=body))


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


AppendFn = Callable[..., dict[str, Any]]


def append_erased(
    uow: UnitOfWork, contact_id: str, action_id: str, erasing: dict[str, Any], append: AppendFn
) -> dict[str, Any]:
    """After the erasing call's record: the ``contact.erased`` record (ids only, and the digest of
    the set of payloads it erased), and every payload the call erased, its own included, is "erased
    at" that record's seq."""
    e = contact_erasures
    earlier = uow.conn.execute(
        sa.select(e.c.payload_digest).where(
            e.c.account_id == uow.account_id, e.c.action_id == action_id
        )
    ).scalars()
    erased = {str(d) for d in earlier} | {str(erasing["payload_digest"])}
    record = append(
        uow,
        new_id("action"),
        ERASED_OP,
        {"contact_id": contact_id},
        {"object": "erasure", "contact_id": contact_id, "erased_by": action_id},
        [],
        None,
        None,
        None,
        extra={"erased": {"count": len(erased), "digest": erased_set_digest(erased)}},
    )
    uow.conn.execute(
        e.insert().values(
            account_id=uow.account_id,
            payload_digest=erasing["payload_digest"],
            contact_id=contact_id,
            action_id=action_id,
            erased_seq=record["seq"],
        )
    )
    uow.conn.execute(
        e.update()
        .where(e.c.account_id == uow.account_id, e.c.action_id == action_id)
        .values(erased_seq=record["seq"])
    )
    return record


def erased_by(conn: sa.Connection, account_id: str, digest: str) -> Any:
    e = contact_erasures
    return conn.execute(
        sa.select(e.c.action_id, e.c.erased_seq).where(
            e.c.account_id == account_id, e.c.payload_digest == digest
        )
    ).first()
