"""Notes through the real engine, on SQLite and PostgreSQL: the author comes from the calling key,
links are live when set and tombstones after, filters, tags, the cursor, soft delete with undo,
hostile arguments and account isolation."""

from __future__ import annotations

from typing import Any

import pytest

from activity_helpers import (
    UNKNOWN_CONTACT,
    UNKNOWN_DEAL,
    count,
    delete_contact,
    ids,
    insert_deal,
    insert_tag,
    new_contact,
    soft_delete_deal,
    walk,
)
from conftest import Caller, err, ok
from krabs.accounts import NewAccount, create_account
from krabs.auth import DEFAULT_AGENT
from krabs.engine import Engine
from krabs.store.tables import notes

BODY = "# Call notes\n\nPrefers **email**. Budget approved for Q3.\n\n- [ ] send deck"


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


def create(call: Caller, body: str = BODY, **args: Any) -> dict[str, Any]:
    return ok(call("note.create", {"body": body, **args}))


def listed(call: Caller, **args: Any) -> list[str]:
    return ids(ok(call("note.list", args)))


def test_create_round_trips_and_names_the_author(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ada = new_contact(call)
    deal = insert_deal(engine.store, account.account_id)
    created = create(call, contact_id=ada, deal_id=deal)
    assert created["object"] == "note" and created["id"].startswith("nt_")
    assert created["body"] == BODY
    assert (created["contact_id"], created["deal_id"]) == (ada, deal)
    assert created["author"] == DEFAULT_AGENT
    assert created["author_key_id"] == account.key_id
    assert created["tags"] == []
    assert created["created_at"] == created["updated_at"]
    assert ok(call("note.get", {"id": created["id"]})) == created


def test_author_is_the_calling_keys_agent_and_survives_edits(call: Caller) -> None:
    key = ok(
        call(
            "api_key.create",
            {"name": "drafts", "scopes": ["read", "write"], "agent_id": "agent_drafts"},
        )
    )
    note = ok(call("note.create", {"body": "from the drafts agent"}, key=key["secret"]))
    assert (note["author"], note["author_key_id"]) == ("agent_drafts", key["id"])
    # Edited by another key, the author stays the writer.
    edited = ok(call("note.update", {"id": note["id"], "body": "edited by admin"}))
    assert (edited["author"], edited["author_key_id"]) == ("agent_drafts", key["id"])
    assert edited["body"] == "edited by admin"


def test_author_cannot_be_passed(call: Caller) -> None:
    e = err(call("note.create", {"body": "x", "author": "agent_evil"}), "invalid_argument")
    assert e["param"] == "author"


def test_update_links_and_body(call: Caller, engine: Engine, account: NewAccount) -> None:
    ada, bob = new_contact(call, "Ada"), new_contact(call, "Bob")
    deal = insert_deal(engine.store, account.account_id)
    note = create(call, contact_id=ada)
    moved = ok(call("note.update", {"id": note["id"], "contact_id": bob, "deal_id": deal}))
    assert (moved["contact_id"], moved["deal_id"], moved["body"]) == (bob, deal, BODY)
    unlinked = ok(call("note.update", {"id": note["id"], "contact_id": None}))
    assert unlinked["contact_id"] is None and unlinked["deal_id"] == deal
    same = ok(call("note.update", {"id": note["id"], "body": BODY}))
    assert same == unlinked  # nothing changed, nothing written
    e = err(call("note.update", {"id": note["id"], "body": None}), "invalid_argument")
    assert e["param"] == "body"
    err(call("note.update", {"id": note["id"]}), "invalid_argument")


def test_links_must_be_live_records_of_this_account(
    call: Caller, engine: Engine, account: NewAccount, other: NewAccount
) -> None:
    gone = new_contact(call)
    delete_contact(call, gone)
    theirs = new_contact(lambda op, a: call(op, a, key=other.secret))
    for bad in (UNKNOWN_CONTACT, gone, theirs):
        assert err(call("note.create", {"body": "x", "contact_id": bad}), "not_found")["param"] == (
            "contact_id"
        )
    dead_deal = insert_deal(engine.store, account.account_id, deleted=True)
    for bad in (UNKNOWN_DEAL, dead_deal, insert_deal(engine.store, other.account_id)):
        assert err(call("note.create", {"body": "x", "deal_id": bad}), "not_found")["param"] == (
            "deal_id"
        )
    note = create(call)
    err(call("note.update", {"id": note["id"], "contact_id": gone}), "not_found")
    err(call("note.update", {"id": note["id"], "deal_id": dead_deal}), "not_found")
    assert count(engine.store, notes, account.account_id) == 1


def test_deleted_contact_and_deal_stay_as_tombstone_links(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ada = new_contact(call)
    deal = insert_deal(engine.store, account.account_id)
    note = create(call, contact_id=ada, deal_id=deal)
    delete_contact(call, ada)
    soft_delete_deal(engine.store, account.account_id, deal)
    assert ok(call("note.get", {"id": note["id"]})) == note
    assert listed(call, contact_id=ada) == [note["id"]]
    assert listed(call, deal_id=deal) == [note["id"]]
    edited = ok(call("note.update", {"id": note["id"], "body": "still here", "deal_id": deal}))
    assert (edited["contact_id"], edited["deal_id"]) == (ada, deal)
    err(call("note.create", {"body": "x", "contact_id": ada}), "not_found")
    err(call("note.create", {"body": "x", "deal_id": deal}), "not_found")


def test_list_filters_tags_and_cursor(call: Caller, engine: Engine, account: NewAccount) -> None:
    ada = new_contact(call)
    deal = insert_deal(engine.store, account.account_id)
    a = create(call, "a", contact_id=ada)
    b = create(call, "b", deal_id=deal)
    c = create(call, "c", contact_id=ada, deal_id=deal)
    assert listed(call) == [c["id"], b["id"], a["id"]]
    assert listed(call, contact_id=ada) == [c["id"], a["id"]]
    assert listed(call, deal_id=deal) == [c["id"], b["id"]]
    assert listed(call, contact_id=ada, deal_id=deal) == [c["id"]]
    assert listed(call, contact_id=UNKNOWN_CONTACT) == []
    tag = insert_tag(engine.store, account.account_id, "VIP", ("note", a["id"]), ("note", b["id"]))
    assert listed(call, tag="vip") == [b["id"], a["id"]]
    assert listed(call, tag=tag, contact_id=ada) == [a["id"]]
    got = ok(call("note.get", {"id": a["id"]}))
    assert got["tags"] == [{"id": tag, "name": "VIP", "color": "#ff0000"}]
    assert err(call("note.list", {"tag": "nope"}), "not_found")["param"] == "tag"
    more = [create(call, f"n{i}")["id"] for i in range(4)]
    expected = list(reversed([a["id"], b["id"], c["id"], *more]))
    assert walk(call, "note.list", {}, limit=3) == expected


def test_delete_is_soft_and_undoable(call: Caller, engine: Engine, account: NewAccount) -> None:
    kept, gone = create(call, "kept"), create(call, "gone")
    removed = ok(call("note.delete", {"id": gone["id"]}))
    assert removed == {
        "id": gone["id"],
        "deleted": True,
        "undo_token": removed["undo_token"],
        "undo_expires_at": removed["undo_expires_at"],
    }
    err(call("note.get", {"id": gone["id"]}), "not_found")
    err(call("note.delete", {"id": gone["id"]}), "not_found")
    assert listed(call) == [kept["id"]]
    assert count(engine.store, notes, account.account_id) == 2
    ok(call("action.undo", {"undo_token": removed["undo_token"]}))
    assert ok(call("note.get", {"id": gone["id"]})) == gone


def test_other_accounts_see_nothing(call: Caller, other: NewAccount) -> None:
    note = create(call)
    for op, args in (
        ("note.get", {"id": note["id"]}),
        ("note.update", {"id": note["id"], "body": "mine now"}),
        ("note.delete", {"id": note["id"]}),
    ):
        err(call(op, args, key=other.secret), "not_found")
    assert ok(call("note.list", {}, key=other.secret))["data"] == []
    assert ok(call("note.get", {"id": note["id"]})) == note


@pytest.mark.parametrize(
    ("op", "args", "param"),
    [
        ("note.create", {}, "body"),
        ("note.create", {"body": ""}, "body"),
        ("note.create", {"body": "   \n  "}, "body"),
        ("note.create", {"body": "x" * 100_001}, "body"),
        ("note.create", {"body": ["x"]}, "body"),
        ("note.create", {"body": "x", "contact_id": "ct_"}, "contact_id"),
        ("note.create", {"body": "x", "deal_id": "dl_" + "A" * 41}, "deal_id"),
        ("note.create", {"body": "x", "author_key_id": "key_1"}, "author_key_id"),
        ("note.create", {"body": "x\u0000y"}, "body"),
        ("note.get", {}, "id"),
        ("note.get", {"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "id"),
        ("note.update", {"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W", "title": "x"}, "title"),
        ("note.list", {"tag": "t" * 101}, "tag"),
        ("note.list", {"starting_after": "x" * 65}, "starting_after"),
        ("note.delete", {"id": ["nt_01HG7Z4X9Q8M2N7P3R5T6V8W"]}, "id"),
    ],
)
def test_hostile_arguments(
    call: Caller,
    engine: Engine,
    account: NewAccount,
    op: str,
    args: dict[str, Any],
    param: str,
) -> None:
    assert err(call(op, args), "invalid_argument")["param"] == param
    assert count(engine.store, notes, account.account_id) == 0


@pytest.mark.parametrize("op", ["note.get", "note.delete"])
def test_unknown_note_is_not_found(call: Caller, op: str) -> None:
    assert err(call(op, {"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")["param"] == "id"


def test_http_round_trip(http: Any) -> None:
    created = http.post("/v1/note.create", json={"body": "over *HTTP*"})
    assert created.status_code == 200, created.text
    note_id = created.json()["id"]
    assert http.post("/v1/note.get", json={"id": note_id}).json()["body"] == "over *HTTP*"
    deleted = http.post("/v1/note.delete", json={"id": note_id})
    assert deleted.status_code == 200 and deleted.json()["undo_token"].startswith("undo_")
    assert http.post("/v1/note.get", json={"id": note_id}).status_code == 404
