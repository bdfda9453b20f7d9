"""Tasks through the real engine, on SQLite and PostgreSQL: defaults, completion timestamps, partial
updates, contact and deal links (live when set, tombstones after), filters, tags, the cursor, soft
delete with undo, hostile arguments and account isolation."""

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
from krabs.engine import Engine
from krabs.store.tables import tasks


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


def create(call: Caller, title: str = "Send the proposal", **args: Any) -> dict[str, Any]:
    return ok(call("task.create", {"title": title, **args}))


def update(call: Caller, task_id: str, **args: Any) -> dict[str, Any]:
    return ok(call("task.update", {"id": task_id, **args}))


def listed(call: Caller, **args: Any) -> list[str]:
    return ids(ok(call("task.list", args)))


# -- create and get --------------------------------------------------------------------------------


def test_create_round_trips_every_field(call: Caller, engine: Engine, account: NewAccount) -> None:
    ada = new_contact(call)
    deal = insert_deal(engine.store, account.account_id)
    fields: dict[str, Any] = {
        "title": "Send the proposal",
        "description": "Include the *annual* plan.",
        "due_at": "2026-05-20T19:00:00+02:00",
        "status": "open",
        "priority": "high",
        "assignee": "agent_sales",
        "contact_id": ada,
        "deal_id": deal,
    }
    created = create(call, **fields)
    assert created["object"] == "task" and created["id"].startswith("tk_")
    assert created["due_at"] == "2026-05-20T17:00:00.000000Z"
    assert {k: created[k] for k in fields if k != "due_at"} == {
        k: v for k, v in fields.items() if k != "due_at"
    }
    assert created["completed_at"] is None and created["tags"] == []
    assert created["created_at"] == created["updated_at"]
    assert ok(call("task.get", {"id": created["id"]})) == created


def test_defaults(call: Caller) -> None:
    created = create(call)
    assert (created["status"], created["priority"]) == ("open", "normal")
    for name in ("description", "due_at", "assignee", "contact_id", "deal_id", "completed_at"):
        assert created[name] is None


def test_created_done_is_completed(call: Caller) -> None:
    created = create(call, status="done")
    assert created["completed_at"] == created["created_at"]


# -- update ----------------------------------------------------------------------------------------


def test_completion_is_set_kept_and_cleared(call: Caller) -> None:
    task = create(call)
    done = update(call, task["id"], status="done")
    assert done["completed_at"] is not None and done["completed_at"] == done["updated_at"]
    renamed = update(call, task["id"], title="Send the signed proposal", status="done")
    assert renamed["completed_at"] == done["completed_at"]
    reopened = update(call, task["id"], status="open")
    assert reopened["completed_at"] is None
    update(call, task["id"], status="done")
    cancelled = update(call, task["id"], status="cancelled")
    assert cancelled["completed_at"] is None and cancelled["status"] == "cancelled"


def test_update_changes_only_what_is_sent_and_null_clears(call: Caller) -> None:
    task = create(
        call, description="d", due_at="2026-06-01", assignee="ada", priority="low", status="open"
    )
    changed = update(call, task["id"], due_at=None, assignee="bob", priority="urgent")
    assert changed["due_at"] is None and changed["assignee"] == "bob"
    assert changed["priority"] == "urgent"
    assert changed["description"] == "d" and changed["title"] == task["title"]
    assert changed["updated_at"] >= task["updated_at"]
    assert ok(call("task.get", {"id": task["id"]})) == changed


def test_update_with_the_same_values_writes_nothing(call: Caller) -> None:
    task = create(call, assignee="ada")
    same = update(call, task["id"], assignee="ada", title=task["title"])
    assert same == task


@pytest.mark.parametrize(
    ("args", "param"),
    [({"title": None}, "title"), ({"status": None}, "status"), ({"priority": None}, "priority")],
)
def test_required_fields_cannot_be_cleared(call: Caller, args: dict[str, Any], param: str) -> None:
    task = create(call)
    assert (
        err(call("task.update", {"id": task["id"], **args}), "invalid_argument")["param"] == param
    )


def test_empty_update_is_invalid(call: Caller) -> None:
    task = create(call)
    e = err(call("task.update", {"id": task["id"]}), "invalid_argument")
    assert "title" in e["message"] and "status" in e["message"]


# -- links and tombstones --------------------------------------------------------------------------


def test_links_must_be_live_records_of_this_account(
    call: Caller, engine: Engine, account: NewAccount, other: NewAccount
) -> None:
    gone = new_contact(call)
    delete_contact(call, gone)
    theirs = new_contact(lambda op, a: call(op, a, key=other.secret))
    for bad in (UNKNOWN_CONTACT, gone, theirs):
        e = err(call("task.create", {"title": "t", "contact_id": bad}), "not_found")
        assert e["param"] == "contact_id" and bad in e["message"]
    dead_deal = insert_deal(engine.store, account.account_id, deleted=True)
    their_deal = insert_deal(engine.store, other.account_id)
    for bad in (UNKNOWN_DEAL, dead_deal, their_deal):
        e = err(call("task.create", {"title": "t", "deal_id": bad}), "not_found")
        assert e["param"] == "deal_id"
    task = create(call)
    err(call("task.update", {"id": task["id"], "contact_id": gone}), "not_found")
    err(call("task.update", {"id": task["id"], "deal_id": dead_deal}), "not_found")
    assert count(engine.store, tasks, account.account_id) == 1


def test_deleted_contact_and_deal_stay_as_tombstone_links(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ada = new_contact(call)
    deal = insert_deal(engine.store, account.account_id)
    task = create(call, contact_id=ada, deal_id=deal)
    delete_contact(call, ada)
    soft_delete_deal(engine.store, account.account_id, deal)
    got = ok(call("task.get", {"id": task["id"]}))
    assert (got["contact_id"], got["deal_id"]) == (ada, deal)
    assert listed(call, contact_id=ada) == [task["id"]]
    assert listed(call, deal_id=deal) == [task["id"]]
    # Other edits keep working, and resending the same dead link is no change.
    edited = update(call, task["id"], title="Still to do", contact_id=ada)
    assert edited["contact_id"] == ada and edited["title"] == "Still to do"
    # A new record cannot link to them.
    err(call("task.create", {"title": "t", "contact_id": ada}), "not_found")
    err(call("task.create", {"title": "t", "deal_id": deal}), "not_found")
    # Unlinking is allowed.
    assert update(call, task["id"], contact_id=None, deal_id=None)["contact_id"] is None


# -- list ------------------------------------------------------------------------------------------


def test_list_filters(call: Caller, engine: Engine, account: NewAccount) -> None:
    ada, bob = new_contact(call, "Ada"), new_contact(call, "Bob")
    deal = insert_deal(engine.store, account.account_id)
    a = create(call, "a", assignee="ada", due_at="2026-05-01T09:00:00Z", contact_id=ada)
    b = create(call, "b", assignee="bob", due_at="2026-05-10T09:00:00Z", deal_id=deal)
    c = create(call, "c", assignee="ada", status="done", contact_id=bob, deal_id=deal)
    d = create(call, "d", due_at="2026-06-01T00:00:00Z", status="cancelled")
    assert listed(call) == [d["id"], c["id"], b["id"], a["id"]]
    assert listed(call, status="open") == [b["id"], a["id"]]
    assert listed(call, status="done") == [c["id"]]
    assert listed(call, assignee="ada") == [c["id"], a["id"]]
    assert listed(call, assignee="nobody") == []
    assert listed(call, due_after="2026-05-10T09:00:00Z") == [d["id"], b["id"]]
    assert listed(call, due_before="2026-05-10T09:00:00Z") == [a["id"]]
    assert listed(call, due_after="2026-05-01", due_before="2026-06-01") == [b["id"], a["id"]]
    assert listed(call, contact_id=ada) == [a["id"]]
    assert listed(call, deal_id=deal) == [c["id"], b["id"]]
    assert listed(call, deal_id=deal, status="open") == [b["id"]]
    assert listed(call, contact_id=UNKNOWN_CONTACT) == []


def test_tags_filter_and_show(call: Caller, engine: Engine, account: NewAccount) -> None:
    a, b, c = create(call, "a"), create(call, "b"), create(call, "c")
    urgent = insert_tag(
        engine.store, account.account_id, "Urgent", ("task", a["id"]), ("task", c["id"])
    )
    insert_tag(engine.store, account.account_id, "Billing", ("task", c["id"]))
    assert listed(call, tag="urgent") == [c["id"], a["id"]]
    assert listed(call, tag=urgent) == [c["id"], a["id"]]
    assert listed(call, tag="billing", status="open") == [c["id"]]
    got = ok(call("task.get", {"id": c["id"]}))
    assert [t["name"] for t in got["tags"]] == ["Billing", "Urgent"]
    assert got["tags"][1] == {"id": urgent, "name": "Urgent", "color": "#ff0000"}
    [listed_c] = [t for t in ok(call("task.list", {}))["data"] if t["id"] == c["id"]]
    assert listed_c == got
    assert ok(call("task.get", {"id": b["id"]}))["tags"] == []
    e = err(call("task.list", {"tag": "no such tag"}), "not_found")
    assert e["param"] == "tag"


def test_list_pages_with_a_cursor(call: Caller) -> None:
    made = [create(call, f"t{i}")["id"] for i in range(7)]
    assert walk(call, "task.list", {}, limit=2) == list(reversed(made))
    assert walk(call, "task.list", {"status": "open"}, limit=100) == list(reversed(made))


# -- delete ----------------------------------------------------------------------------------------


def test_delete_is_soft_and_undoable(call: Caller, engine: Engine, account: NewAccount) -> None:
    kept, gone = create(call, "kept"), create(call, "gone")
    removed = ok(call("task.delete", {"id": gone["id"]}))
    assert removed["deleted"] is True and removed["undo_token"].startswith("undo_")
    err(call("task.get", {"id": gone["id"]}), "not_found")
    err(call("task.update", {"id": gone["id"], "title": "x"}), "not_found")
    err(call("task.delete", {"id": gone["id"]}), "not_found")
    assert listed(call) == [kept["id"]]
    assert count(engine.store, tasks, account.account_id) == 2
    ok(call("action.undo", {"undo_token": removed["undo_token"]}))
    assert ok(call("task.get", {"id": gone["id"]})) == gone
    assert listed(call) == [gone["id"], kept["id"]]


# -- isolation and hostile input -------------------------------------------------------------------


def test_other_accounts_see_nothing(call: Caller, other: NewAccount) -> None:
    task = create(call)
    for op, args in (
        ("task.get", {"id": task["id"]}),
        ("task.update", {"id": task["id"], "title": "mine now"}),
        ("task.delete", {"id": task["id"]}),
    ):
        err(call(op, args, key=other.secret), "not_found")
    assert ok(call("task.list", {}, key=other.secret))["data"] == []
    assert ok(call("task.get", {"id": task["id"]})) == task


@pytest.mark.parametrize(
    ("op", "args", "param"),
    [
        ("task.create", {}, "title"),
        ("task.create", {"title": ""}, "title"),
        ("task.create", {"title": "t" * 401}, "title"),
        ("task.create", {"title": "two\nlines"}, "title"),
        ("task.create", {"title": 5}, "title"),
        ("task.create", {"title": "t", "status": "blocked"}, "status"),
        ("task.create", {"title": "t", "priority": "critical"}, "priority"),
        ("task.create", {"title": "t", "due_at": "tomorrow"}, "due_at"),
        ("task.create", {"title": "t", "due_at": "2026-02-30"}, "due_at"),
        ("task.create", {"title": "t", "description": "x" * 100_001}, "description"),
        ("task.create", {"title": "t", "assignee": "a" * 201}, "assignee"),
        ("task.create", {"title": "t", "contact_id": "dl_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "contact_id"),
        ("task.create", {"title": "t", "deal_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "deal_id"),
        ("task.create", {"title": "t", "owner": "me"}, "owner"),
        ("task.create", {"title": "t", "completed_at": "2026-01-01"}, "completed_at"),
        ("task.get", {"id": "nt_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "id"),
        ("task.update", {"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W", "status": "closed"}, "status"),
        ("task.list", {"status": "all"}, "status"),
        ("task.list", {"due_before": "soon"}, "due_before"),
        ("task.list", {"tag": ""}, "tag"),
        ("task.list", {"limit": -1}, "limit"),
        ("task.delete", {"id": None}, "id"),
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
    assert count(engine.store, tasks, account.account_id) == 0


@pytest.mark.parametrize("op", ["task.get", "task.delete"])
def test_unknown_task_is_not_found(call: Caller, op: str) -> None:
    e = err(call(op, {"id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W"}), "not_found")
    assert e["param"] == "id"
