"""API keys: secrets shown once and stored hashed, scopes, revocation takes effect at once."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import err, ok
from krabs.auth import hash_secret
from krabs.engine import CallRequest
from krabs.store.tables import api_keys


def test_create_returns_secret_once_and_stores_only_its_hash(call, engine):
    created = ok(
        call(
            "api_key.create",
            {"name": "agent", "scopes": ["read", "write"], "agent_id": "agent_drafts"},
        )
    )
    secret = created["secret"]
    assert secret.startswith("krabs_sk_") and len(secret) > 30
    assert created["agent_id"] == "agent_drafts" and created["scopes"] == ["read", "write"]
    with engine.store.connect(write=False) as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == created["id"])).one()
        dump = repr(tuple(row))
    assert secret not in dump and row.secret_hash == hash_secret(secret)
    listed = ok(call("api_key.list"))
    assert created["id"] in [k["id"] for k in listed["data"]]
    assert all("secret" not in k for k in listed["data"])
    action = ok(call("action.list", {"op": "api_key.create"}))["data"][0]
    assert secret not in str(ok(call("action.get", {"id": action["id"]})))


def test_scopes(call):
    reader = ok(call("api_key.create", {"name": "r", "scopes": ["read"]}))["secret"]
    writer = ok(call("api_key.create", {"name": "w", "scopes": ["write"]}))["secret"]
    ok(call("contact.list", key=reader))
    e = err(call("contact.create", {"display_name": "x"}, key=reader), "forbidden")
    assert "write" in e["message"]
    ok(call("contact.create", {"display_name": "x"}, key=writer))
    err(call("api_key.create", {"name": "escalate", "scopes": ["admin"]}, key=writer), "forbidden")
    err(call("api_key.list", key=writer), "forbidden")


def test_revoke_is_immediate_and_undoable(call):
    key = ok(call("api_key.create", {"name": "temp"}))
    ok(call("contact.list", key=key["secret"]))  # cached as valid
    revoked = ok(call("api_key.revoke", {"id": key["id"]}))
    assert revoked["revoked"] and revoked["undo_token"]
    e = err(call("contact.list", key=key["secret"]), "unauthenticated")
    assert "revoked" in e["message"]
    err(call("api_key.revoke", {"id": key["id"]}), "not_found")
    ok(call("action.undo", {"undo_token": revoked["undo_token"]}))
    ok(call("contact.list", key=key["secret"]))


def test_a_key_cannot_revoke_itself(call, account):
    err(call("api_key.revoke", {"id": account.key_id}), "conflict")


def test_expired_key(call, engine):
    key = ok(call("api_key.create", {"name": "soon", "expires_at": "2999-01-01"}))
    assert key["expires_at"] == "2999-01-01T00:00:00.000000Z"
    with engine.store.transaction() as conn:
        conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key["id"])
            .values(expires_at="2001-01-01T00:00:00.000000Z")
        )
    err(call("contact.list", key=key["secret"]), "unauthenticated")


def test_a_key_born_expired_is_refused_and_not_created(call, engine):
    with engine.store.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar()
    for past in ("2001-01-01T00:00:00Z", "2001-01-01", "2000-02-29T23:59:59+05:00"):
        error = err(call("api_key.create", {"name": "old", "expires_at": past}), "invalid_argument")
        assert error["param"] == "expires_at"
    with engine.store.engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar()
    assert after == before


def test_bad_keys(engine):
    for secret in (
        None,
        "",
        "nope",
        "krabs_sk_unknown",
        "krabs_sk_" + "x" * 500,
        "Bearer krabs_sk_x",
    ):
        err(engine.call(CallRequest(op="contact.list", args={}, api_key=secret)), "unauthenticated")


def test_secret_is_redacted_on_idempotent_replay(call):
    first = ok(call("api_key.create", {"name": "once"}, idem="key-once"))
    replay = call("api_key.create", {"name": "once"}, idem="key-once")
    assert (
        replay.replayed and ok(replay)["secret"] == "[redacted]" and ok(replay)["id"] == first["id"]
    )


def test_keys_of_other_accounts_are_invisible(call, engine):
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    mine = ok(call("api_key.create", {"name": "mine"}))
    err(call("api_key.revoke", {"id": mine["id"]}, key=other.secret), "not_found")
    assert mine["id"] not in [k["id"] for k in ok(call("api_key.list", key=other.secret))["data"]]
