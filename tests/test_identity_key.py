"""The live-identity key (migration 0007): one short hash of (account, kind, normalized) as the unique
index. The migration re-keys existing identities both ways, uniqueness still holds per account and
kind only, and actions recorded under the old key still undo cleanly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import err, make_store, ok
from conftest import test_settings as settings_with
from krabs.accounts import create_account
from krabs.audit.undo import images_rekeyed
from krabs.engine import CallRequest, Engine, Outcome
from krabs.normalize import norm_hash
from krabs.ops import identity as identity_ops
from krabs.store.db import Store
from krabs.store.migrate import downgrade, migrate
from krabs.store.tables import identities


def old_key(account_id: str, kind: str, normalized: str) -> str:
    """The key before 0007: SHA-256 of the normalized value alone."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Iterator[Store]:
    s, cleanup = make_store(backend, tmp_path)
    migrate(s)
    yield s
    cleanup()


def caller(engine: Engine, secret: str) -> Any:
    def call(op: str, args: dict[str, Any]) -> Outcome:
        return engine.call(CallRequest(op=op, args=args, api_key=secret, transport="test"))

    return call


def keys(store: Store) -> dict[str, tuple[str, str, str, str]]:
    with store.connect(write=False) as conn:
        rows = conn.execute(
            sa.select(
                identities.c.id,
                identities.c.account_id,
                identities.c.kind,
                identities.c.normalized,
                identities.c.norm_hash,
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def test_the_key_folds_account_and_kind_into_32_hex_characters() -> None:
    key = norm_hash("acct_1", "email", "ada@x.dev")
    assert len(key) == 32 and int(key, 16) >= 0
    assert key != norm_hash("acct_2", "email", "ada@x.dev")
    assert key != norm_hash("acct_1", "phone", "ada@x.dev")
    # The separator keeps the parts apart: moving a character across a boundary changes the key.
    assert norm_hash("acct_1", "email", "x") != norm_hash("acct_1e", "mail", "x")


def test_the_migration_rekeys_existing_identities_and_back(fresh: Store, tmp_path: Path) -> None:
    engine = Engine(fresh, settings_with(data_dir=tmp_path))
    a, b = create_account(fresh, "A"), create_account(fresh, "B")
    for acct in (a, b):  # the same email in two accounts: two live identities
        ok(
            caller(engine, acct.secret)(
                "contact.create",
                {
                    "identities": [
                        {"kind": "email", "value": "Ada@X.dev"},
                        {"kind": "phone", "value": "+14155552671"},
                    ]
                },
            )
        )
    downgrade(fresh, "0006")
    before = keys(fresh)
    assert len(before) == 4
    assert all(h == old_key(acct, kind, norm) for acct, kind, norm, h in before.values())
    migrate(fresh)
    after = keys(fresh)
    assert after.keys() == before.keys()
    assert all(h == norm_hash(acct, kind, norm) for acct, kind, norm, h in after.values())
    # The re-keyed rows are found and still refuse a second owner, per account.
    engine = Engine(fresh, settings_with(data_dir=tmp_path))
    call_a = caller(engine, a.secret)
    found = ok(
        call_a("contact.find_by_identity", {"identity": {"kind": "email", "value": "ada@x.dev"}})
    )
    assert found["id"]
    err(
        call_a("contact.create", {"identities": [{"kind": "email", "value": "ada@x.dev"}]}),
        "conflict",
    )
    with pytest.raises(sa.exc.IntegrityError), fresh.connect(write=True) as conn:
        row = {**next(iter(_rows(conn, a.account_id))), "id": "id_duplicate"}
        conn.execute(identities.insert(), row)


def _rows(conn: sa.Connection, account_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(sa.select(identities).where(identities.c.account_id == account_id))
    ]


def test_an_action_recorded_under_the_old_key_undoes_cleanly(
    fresh: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(fresh, settings_with(data_dir=tmp_path))
    acct = create_account(fresh, "A")
    call = caller(engine, acct.secret)
    # Written by the code before 0007 (old keys in the rows and in the audit images)...
    downgrade(fresh, "0006")
    monkeypatch.setattr(identity_ops, "norm_hash", old_key)
    ada = ok(call("contact.create", {"identities": [{"kind": "email", "value": "ada@x.dev"}]}))
    added = ok(
        call("identity.add", {"contact_id": ada["id"], "kind": "phone", "value": "+1 415 555 2671"})
    )
    deleted = ok(call("contact.delete", {"id": ada["id"]}))
    monkeypatch.undo()
    # ...then the upgrade re-keys the rows; the images keep the old keys.
    migrate(fresh)
    ok(call("action.undo", {"undo_token": deleted["undo_token"]}))
    assert ok(call("contact.get", {"id": ada["id"]}))["id"] == ada["id"]
    ident = ok(call("identity.list", {"contact_id": ada["id"]}))["data"]
    assert {i["id"] for i in ident} >= {added["id"]}
    assert all(h == norm_hash(*rest) for *rest, h in keys(fresh).values())
    found = ok(
        call("contact.find_by_identity", {"identity": {"kind": "phone", "value": "+14155552671"}})
    )
    assert found["id"] == ada["id"]


def test_images_of_other_tables_and_erased_identities_are_left_alone() -> None:
    image = {"account_id": "acct_1", "kind": "email", "normalized": "a@x.dev", "norm_hash": "x"}
    payload = {
        "changes": [
            {"table": "contacts", "id": "ct_1", "before": None, "after": {"norm_hash": "keep"}},
            {"table": "identities", "id": "id_1", "before": None, "after": dict(image)},
            {"table": "identities", "id": "id_2", "before": {"norm_hash": "y"}, "after": None},
        ]
    }
    out = images_rekeyed(payload)["changes"]
    assert out[0]["after"] == {"norm_hash": "keep"}
    assert out[1]["after"]["norm_hash"] == norm_hash("acct_1", "email", "a@x.dev")
    assert out[2]["before"] == {"norm_hash": "y"} and out[2]["after"] is None
