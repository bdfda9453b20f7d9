"""Undo: before-images restored exactly, single use, 24 h, conflicts refused unless forced, audited."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from conftest import err, ok, snapshot
from krabs.store.tables import audit_actions


def email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


def _contact(call, **extra):
    return ok(
        call(
            "contact.create",
            {
                "display_name": "Undo me",
                "identities": [{"kind": "email", "value": email()}],
                **extra,
            },
        )
    )


def _without_audit(snap):
    return {k: v for k, v in snap.items() if not k.startswith("audit_") and k != "idempotency_keys"}


def test_undo_delete_restores_contact_and_identities_exactly(call, engine, account):
    c = _contact(call, company="Engines", attributes={"plan": "pro", "seats": 3})
    before = _without_audit(snapshot(engine.store, account.account_id))
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    assert deleted["undo_token"].startswith("undo_") and deleted["undo_expires_at"]
    err(call("contact.get", {"id": c["id"]}), "not_found")
    undo = ok(call("action.undo", {"undo_token": deleted["undo_token"]}))
    assert undo["undone_action_id"] and {r["table"] for r in undo["restored"]} == {
        "contacts",
        "identities",
    }
    assert _without_audit(snapshot(engine.store, account.account_id)) == before
    assert ok(call("contact.get", {"id": c["id"]})) == c


def test_undo_is_single_use_and_itself_undoable(call):
    c = _contact(call)
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    undo = ok(call("action.undo", {"undo_token": deleted["undo_token"]}))
    err(call("action.undo", {"undo_token": deleted["undo_token"]}), "undo_used")
    ok(call("action.undo", {"undo_token": undo["undo_token"]}))  # redo: deleted again
    err(call("contact.get", {"id": c["id"]}), "not_found")


def test_undo_conflict_unless_forced(call):
    c = _contact(call)
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    token = deleted["undo_token"]
    redo = ok(call("action.undo", {"undo_token": token}))
    ok(call("contact.update", {"id": c["id"], "title": "Changed since"}))
    e = err(call("action.undo", {"undo_token": redo["undo_token"]}), "undo_conflict")
    assert (
        e["param"] == "force"
        and e["conflicts"][0]["id"] == c["id"]
        and "title" in e["conflicts"][0]["fields"]
    )
    ok(call("action.undo", {"undo_token": redo["undo_token"], "force": True}))
    err(call("contact.get", {"id": c["id"]}), "not_found")


def test_undo_refused_when_identity_was_claimed_meanwhile(call, engine, account):
    value = email()
    c = ok(call("contact.create", {"identities": [{"kind": "email", "value": value}]}))
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    ok(call("contact.create", {"identities": [{"kind": "email", "value": value}]}))
    before = snapshot(engine.store, account.account_id)
    err(call("action.undo", {"undo_token": deleted["undo_token"], "force": True}), "undo_conflict")
    assert snapshot(engine.store, account.account_id) == before


def test_expired_and_unknown_tokens(call, engine):
    c = _contact(call)
    deleted = call("contact.delete", {"id": c["id"]})
    with engine.store.transaction() as conn:
        conn.execute(
            audit_actions.update()
            .where(audit_actions.c.id == deleted.action_id)
            .values(undo_expires_at="2000-01-01T00:00:00.000000Z")
        )
    err(call("action.undo", {"undo_token": ok(deleted)["undo_token"]}), "undo_expired")
    err(call("action.undo", {"undo_token": "undo_nope"}), "not_found")
    err(call("action.undo", {}), "invalid_argument")
    err(call("action.undo", {"undo_token": "a", "action_id": "act_x"}), "invalid_argument")


def test_undo_by_action_id_needs_admin(call, engine):
    writer = ok(call("api_key.create", {"name": "w", "scopes": ["read", "write"]}))
    c = _contact(call)
    upd = call("contact.update", {"id": c["id"], "stage": "customer"})
    err(call("action.undo", {"action_id": upd.action_id}, key=writer["secret"]), "forbidden")
    ok(call("action.undo", {"action_id": upd.action_id}))
    assert ok(call("contact.get", {"id": c["id"]}))["stage"] is None


def test_undo_of_create_removes_the_rows(call, engine):
    c = call("contact.create", {"identities": [{"kind": "email", "value": email()}]})
    ok(call("action.undo", {"action_id": c.action_id}))
    err(call("contact.get", {"id": ok(c)["id"]}), "not_found")
    with engine.store.connect(write=False) as conn:
        from krabs.store.tables import contacts

        assert conn.execute(sa.select(contacts).where(contacts.c.id == ok(c)["id"])).first() is None


def test_undo_of_another_accounts_action_is_not_found(call, engine):
    from krabs.accounts import create_account

    other = create_account(engine.store, "other")
    c = _contact(call)
    deleted = ok(call("contact.delete", {"id": c["id"]}))
    err(call("action.undo", {"undo_token": deleted["undo_token"]}, key=other.secret), "not_found")


def test_undo_by_action_id_restores_the_account_row(call, engine, account):
    """The accounts table has no account_id column: undo must scope it by id."""
    ok(call("action.list", {"limit": 1}))  # the key's last use and the day's run are bookkeeping
    before = _without_audit(snapshot(engine.store, account.account_id))
    updated = call("account.update", {"name": "Renamed by mistake"})
    ok(updated)
    undone = ok(call("action.undo", {"action_id": updated.action_id}))
    assert undone["undone_action_id"] == updated.action_id
    assert _without_audit(snapshot(engine.store, account.account_id)) == before


def test_unknown_argument_error_lists_aliases(call):
    e = err(
        call("finance.summary", {"from": "2026-01-01", "to": "2026-02-01", "frm": 1}),
        "invalid_argument",
    )
    assert "from" in e["message"] and "first" not in e["message"]


def test_undo_restores_json_columns_byte_for_byte(call, engine, account):
    """Undo writes rows back from key-sorted audit images; JSON is stored key-sorted so the restored
    row equals the original exactly, whatever order the caller sent its keys in."""
    c = _contact(call, attributes={"zeta": 1, "alpha": {"y": 2, "b": 3}})
    before = _without_audit(snapshot(engine.store, account.account_id))
    updated = call("contact.update", {"id": c["id"], "attributes": {"m": 0}})
    ok(updated)
    ok(call("action.undo", {"action_id": updated.action_id}))
    assert _without_audit(snapshot(engine.store, account.account_id)) == before


def test_identical_no_op_writes_share_one_payload(call):
    """A repeated no-op write (same args, result and changes) has the same payload digest; the
    payload table is content-addressed, so the second and third writes must not collide."""
    c = _contact(call)
    for _ in range(3):
        ok(call("contact.update", {"id": c["id"], "title": "Same"}))
    actions = ok(call("action.list", {"target": c["id"]}))["data"]
    assert len(actions) >= 2
