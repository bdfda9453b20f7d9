"""Key rotation: every account's log gets an ``audit.key_rotated`` record signed by the old key whose
result names the new one (so the hashed log itself introduces it), the old key's range closes there,
the new one's opens at the next record, and a checkpoint at the rotation is signed by both. Then the
key registry retires the old key and the new key file replaces the old one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from krabs.audit import log
from krabs.audit.checkpoint import make_checkpoint
from krabs.audit.signing import (
    SigningKey,
    b64,
    key_path,
    open_range,
    read_key_file,
    signer_for,
    write_key_file,
)
from krabs.audit.verify import ROTATION_OP, rotation_result
from krabs.contract.ids import new_id
from krabs.engine.context import Principal
from krabs.engine.uow import UnitOfWork, utcnow
from krabs.store.db import Store
from krabs.store.tables import audit_account_keys, audit_heads, audit_signing_keys

AGENT = "krabs-audit-rotate-key"


def rotate_key(store: Store, data_dir: Path) -> dict[str, Any]:
    """Rotate the deployment's signing key; returns the old and new key names and the accounts."""
    path = key_path(data_dir)
    old = read_key_file(path)
    signer = signer_for(data_dir)
    if signer is None:
        raise RuntimeError("no signing key in the data directory; nothing to rotate")
    new = SigningKey.generate()
    staged = path.with_name(path.name + ".new")
    staged.unlink(missing_ok=True)
    write_key_file(staged, new)
    accounts: list[str] = []
    with store.transaction(write=True) as conn:
        signer.bind(conn)
        for (account_id,) in conn.execute(sa.select(audit_heads.c.account_id)).all():
            _rotate_account(conn, account_id, old, new, data_dir)
            accounts.append(account_id)
        t = audit_signing_keys
        now = utcnow()
        conn.execute(t.update().where(t.c.name == old.name).values(retired_at=now))
        conn.execute(t.insert().values(name=new.name, public_key=b64(new.public), created_at=now))
    os.replace(staged, path)
    signer.reload()
    return {"old_key": old.name, "new_key": new.name, "accounts": accounts}


def _rotate_account(
    conn: sa.Connection, account_id: str, old: SigningKey, new: SigningKey, data_dir: Path
) -> None:
    principal = Principal(account_id, None, AGENT, frozenset({"admin"}))
    uow = UnitOfWork(
        conn=conn,
        principal=principal,
        run_id=None,
        dialect=conn.dialect.name,
        data_dir=data_dir,
        signing_dir=data_dir,
    )
    result = rotation_result(old.name, new.name, b64(new.public))
    log.prepare(
        uow,
        action_id=new_id("action"),
        op=ROTATION_OP,
        args={"new_key": new.name, "public_key": b64(new.public)},
        result=result,
        undo_token_hash=None,
        undo_expires_at=None,
    )
    record = log.link(uow)  # at once: the new key's range starts after this record
    assert record is not None
    seq = int(record["seq"])
    k = audit_account_keys
    conn.execute(
        k.update().where(k.c.account_id == account_id, k.c.name == old.name).values(to_seq=seq)
    )
    open_range(conn, account_id, new, seq + 1)
    make_checkpoint(conn, account_id, [old, new], reason="rotation", size=seq, resign=True)
