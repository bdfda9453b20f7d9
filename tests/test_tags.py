"""Tags through the real engine, on SQLite and PostgreSQL: unique names compared case-insensitively,
colours, the list order and cursor, attach/detach on every taggable noun, undo of detach and delete,
the `tag` filter of contact.list, account isolation and hostile input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Caller, err, ok, snapshot
from krabs.accounts import NewAccount, create_account
from krabs.contract.ids import new_id
from krabs.engine import Engine
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import deals, notes, tag_links, tasks

UNKNOWN_TAG = "tg_01HG7Z4X9Q8M2N7P3R5T6V8W"
UNKNOWN_CONTACT = "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"
BOOKKEEPING = ("audit_", "idempotency_keys", "runs", "api_keys")


def data(store: Store, account_id: str) -> dict[str, Any]:
    """The account's database without the tables every call writes to (audit, idempotency, runs,
    keys)."""
    return {k: v for k, v in snapshot(store, account_id).items() if not k.startswith(BOOKKEEPING)}


def contact(call: Caller, key: str | None = None, **fields: Any) -> dict[str, Any]:
    email = f"t-{uuid.uuid4().hex[:10]}@example.com"
    return ok(
        call(
            "contact.create",
            {"display_name": "Tagged", **fields, "identities": [{"kind": "email", "value": email}]},
            key=key,
        )
    )


def tag(call: Caller, name: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    return ok(call("tag.create", {"name": name, **fields}, key=key))


def insert(store: Store, account_id: str, table: sa.Table, **values: Any) -> str:
    """A deal, task or note row written directly (their operations live elsewhere)."""
    now = utcnow()
    noun = {"deals": "deal", "tasks": "task", "notes": "note"}[str(table.name)]
    defaults: dict[str, Any] = {
        "deals": {
            "title": "Deal",
            "amount": 1000,
            "currency": "EUR",
            "stage": "lead",
            "status": "open",
            "recurring_interval": "none",
            "attributes": {},
        },
        "tasks": {"title": "Task", "status": "open", "priority": "normal"},
        "notes": {"body": "A note", "author": "agent:test"},
    }[str(table.name)]
    row_id = new_id(noun)
    row = {
        "id": row_id,
        "account_id": account_id,
        **defaults,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
        **values,
    }
    with store.transaction() as conn:
        conn.execute(table.insert().values(**row))
    return row_id


def link_count(store: Store, tag_id: str) -> int:
    with store.connect(write=False) as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(tag_links)
                .where(tag_links.c.tag_id == tag_id)
            ).scalar_one()
        )


def names(call: Caller, **args: Any) -> list[str]:
    return [t["name"] for t in ok(call("tag.list", args))["data"]]


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


# -- tag.create ------------------------------------------------------------------------------------


def test_create_returns_the_tag_with_a_lower_case_colour(call: Caller) -> None:
    t = tag(call, "VIP", color="#FF88aA", description="Top accounts")
    assert t["object"] == "tag" and t["id"].startswith("tg_")
    assert (t["name"], t["color"], t["description"]) == ("VIP", "#ff88aa", "Top accounts")
    assert t["usage_count"] == 0 and t["created_at"] == t["updated_at"]
    [listed] = ok(call("tag.list", {}))["data"]
    assert listed == t


@pytest.mark.parametrize("same", ["VIP", "vip", "  ViP ", "Vip"])
def test_names_collide_case_insensitively(call: Caller, same: str) -> None:
    t = tag(call, "VIP")
    e = err(call("tag.create", {"name": same}), "conflict")
    assert e["param"] == "name" and t["id"] in e["message"]
    assert e["tag_id"] == t["id"]


def test_inner_whitespace_is_collapsed_for_uniqueness(call: Caller) -> None:
    tag(call, "Key  Account")
    err(call("tag.create", {"name": "key account"}), "conflict")
    tag(call, "Key Accounts")  # a different name


def test_a_deleted_tag_frees_its_name(call: Caller) -> None:
    t = tag(call, "Cold")
    ok(call("tag.delete", {"id": t["id"]}))
    again = tag(call, "cold")
    assert again["id"] != t["id"]


def test_names_are_per_account(call: Caller, other: NewAccount) -> None:
    tag(call, "VIP")
    tag(call, "VIP", key=other.secret)


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ß" * 60}, "name"),  # 120 characters once case-folded
        ({"name": "two\nlines"}, "name"),
        ({"name": "tg_looks_like_an_id"}, "name"),
        ({"name": 7}, "name"),
        ({"name": None}, "name"),
        ({}, "name"),
        ({"name": "ok", "color": "red"}, "color"),
        ({"name": "ok", "color": "#12345"}, "color"),
        ({"name": "ok", "color": "#1234567"}, "color"),
        ({"name": "ok", "color": "#gggggg"}, "color"),
        ({"name": "ok", "color": 0xFF8800}, "color"),
        ({"name": "ok", "description": "d" * 1001}, "description"),
        ({"name": "ok", "colour": "#ffffff"}, "colour"),
    ],
)
def test_create_rejects_hostile_input(call: Caller, args: dict[str, Any], param: str) -> None:
    e = err(call("tag.create", args), "invalid_argument")
    assert e["param"] == param
    assert ok(call("tag.list", {}))["data"] == []


def test_colour_error_says_what_is_accepted(call: Caller) -> None:
    e = err(call("tag.create", {"name": "x", "color": "orange"}), "invalid_argument")
    assert "#rrggbb" in e["message"]


# -- tag.list --------------------------------------------------------------------------------------


def test_list_orders_by_name_case_insensitively_with_a_cursor(call: Caller) -> None:
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"]:
        tag(call, name)
    assert names(call) == ["Alpha", "Bravo", "charlie", "delta", "echo"]
    first = ok(call("tag.list", {"limit": 2}))
    assert [t["name"] for t in first["data"]] == ["Alpha", "Bravo"] and first["has_more"]
    second = ok(call("tag.list", {"limit": 2, "starting_after": first["next_cursor"]}))
    assert [t["name"] for t in second["data"]] == ["charlie", "delta"] and second["has_more"]
    third = ok(call("tag.list", {"limit": 2, "starting_after": second["next_cursor"]}))
    assert [t["name"] for t in third["data"]] == ["echo"]
    assert not third["has_more"] and third["next_cursor"] is None


def test_list_by_id_is_newest_first(call: Caller) -> None:
    made = [tag(call, n)["id"] for n in ["b", "a", "c"]]
    page = ok(call("tag.list", {"order": "id", "limit": 2}))
    assert [t["id"] for t in page["data"]] == made[::-1][:2]
    rest = ok(call("tag.list", {"order": "id", "starting_after": page["next_cursor"]}))
    assert [t["id"] for t in rest["data"]] == [made[0]]


def test_list_q_is_a_case_insensitive_prefix_with_wildcards_escaped(call: Caller) -> None:
    for name in ["Lead source", "lead-magnet", "Misled", "50% off", "50x off", "a_b", "axb"]:
        tag(call, name)
    assert names(call, q="LEAD") == ["Lead source", "lead-magnet"]  # " " sorts before "-"
    assert names(call, q="50%") == ["50% off"]
    assert names(call, q="a_") == ["a_b"]
    assert names(call, q="zzz") == []


def test_list_target_id_shows_a_records_tags(call: Caller) -> None:
    a, b = contact(call), contact(call)
    vip, cold = tag(call, "VIP"), tag(call, "Cold")
    tag(call, "Unused")
    ok(call("tag.attach", {"tag": "vip", "target_id": a["id"]}))
    ok(call("tag.attach", {"tag": cold["id"], "target_id": a["id"]}))
    ok(call("tag.attach", {"tag": cold["id"], "target_id": b["id"]}))
    assert names(call, target_id=a["id"]) == ["Cold", "VIP"]
    assert names(call, target_id=b["id"]) == ["Cold"]
    counts = {t["name"]: t["usage_count"] for t in ok(call("tag.list", {}))["data"]}
    assert counts == {"Cold": 2, "Unused": 0, "VIP": 1}
    assert ok(call("contact.get", {"id": a["id"]}))["tags"] == [
        {"id": cold["id"], "name": "Cold", "color": None},
        {"id": vip["id"], "name": "VIP", "color": None},
    ]


def test_usage_count_ignores_deleted_records(call: Caller) -> None:
    a, b = contact(call), contact(call)
    ok(
        call(
            "tag.attach",
            {
                "tag": "VIP",
                "create": True,
                "targets": [{"target_id": a["id"]}, {"target_id": b["id"]}],
            },
        )
    )
    ok(call("contact.delete", {"id": b["id"]}))
    [t] = ok(call("tag.list", {}))["data"]
    assert t["usage_count"] == 1


def test_list_hostile_input(call: Caller, other: NewAccount) -> None:
    theirs = contact(call, key=other.secret)
    tag(call, "Theirs", key=other.secret)
    assert names(call) == []
    assert err(call("tag.list", {"target_id": theirs["id"]}), "not_found")["param"] == "target_id"
    assert (
        err(call("tag.list", {"target_id": UNKNOWN_CONTACT}), "not_found")["param"] == "target_id"
    )
    for bad in ({"target_id": "xx_1"}, {"order": "color"}, {"limit": 0}, {"q": ""}, {"tag": "x"}):
        err(call("tag.list", bad), "invalid_argument")
    e = err(call("tag.list", {"starting_after": UNKNOWN_TAG}), "invalid_argument")
    assert e["param"] == "starting_after"


# -- tag.update ------------------------------------------------------------------------------------


def test_update_renames_and_recolours(call: Caller) -> None:
    t = tag(call, "VIP", color="#000000", description="d")
    changed = ok(call("tag.update", {"id": t["id"], "name": "Very Important", "color": "#ABCDEF"}))
    assert (changed["name"], changed["color"], changed["description"]) == (
        "Very Important",
        "#abcdef",
        "d",
    )
    assert changed["updated_at"] >= t["updated_at"]
    cleared = ok(call("tag.update", {"id": t["id"], "color": None, "description": None}))
    assert (cleared["color"], cleared["description"]) == (None, None)
    err(call("tag.create", {"name": "very important"}), "conflict")
    tag(call, "VIP")  # the old name is free


def test_update_rename_collision_and_own_case_change(call: Caller) -> None:
    a, b = tag(call, "Alpha"), tag(call, "Bravo")
    e = err(call("tag.update", {"id": b["id"], "name": "ALPHA"}), "conflict")
    assert e["param"] == "name" and a["id"] in e["message"]
    assert ok(call("tag.update", {"id": a["id"], "name": "ALPHA"}))["name"] == "ALPHA"


def test_update_hostile_input(call: Caller, other: NewAccount) -> None:
    t = tag(call, "Mine")
    theirs = tag(call, "Theirs", key=other.secret)
    assert (
        err(call("tag.update", {"id": theirs["id"], "color": "#ffffff"}), "not_found")["param"]
        == "id"
    )
    err(call("tag.update", {"id": UNKNOWN_TAG, "color": "#ffffff"}), "not_found")
    err(call("tag.update", {"id": t["id"]}), "invalid_argument")
    assert (
        err(call("tag.update", {"id": t["id"], "name": None}), "invalid_argument")["param"]
        == "name"
    )
    assert (
        err(call("tag.update", {"id": t["id"], "color": "blue"}), "invalid_argument")["param"]
        == "color"
    )
    err(call("tag.update", {"id": "ct_123", "color": "#ffffff"}), "invalid_argument")
    ok(call("tag.delete", {"id": t["id"]}))
    err(call("tag.update", {"id": t["id"], "color": "#ffffff"}), "not_found")


# -- tag.attach / tag.detach -----------------------------------------------------------------------


def test_attach_to_every_taggable_noun(call: Caller, engine: Engine, account: NewAccount) -> None:
    c = contact(call)
    d = insert(engine.store, account.account_id, deals, contact_id=c["id"])
    t = insert(engine.store, account.account_id, tasks)
    n = insert(engine.store, account.account_id, notes)
    out = ok(
        call(
            "tag.attach",
            {
                "tag": "Q3",
                "create": True,
                "targets": [
                    {"target_type": "contact", "target_id": c["id"]},
                    {"target_id": d},
                    {"target_type": "task", "target_id": t},
                    {"target_id": n},
                ],
            },
        )
    )
    assert out["object"] == "tag" and out["tag_created"] is True and out["usage_count"] == 4
    assert [(r["target_type"], r["changed"]) for r in out["targets"]] == [
        ("contact", True),
        ("deal", True),
        ("task", True),
        ("note", True),
    ]
    for target in (c["id"], d, t, n):
        assert names(call, target_id=target) == ["Q3"]


def test_attach_twice_is_a_no_op(call: Caller, engine: Engine, account: NewAccount) -> None:
    c = contact(call)
    t = tag(call, "VIP")
    first = ok(call("tag.attach", {"tag": "vip", "target_id": c["id"]}))
    assert first["targets"] == [{"target_type": "contact", "target_id": c["id"], "changed": True}]
    before = data(engine.store, account.account_id)
    again = ok(call("tag.attach", {"tag": t["id"], "targets": [{"target_id": c["id"]}] * 3}))
    assert again["targets"] == [{"target_type": "contact", "target_id": c["id"], "changed": False}]
    assert again["tag_created"] is False and again["usage_count"] == 1
    assert data(engine.store, account.account_id) == before
    assert link_count(engine.store, t["id"]) == 1


def test_attach_unknown_tag_without_create_is_not_found(call: Caller) -> None:
    c = contact(call)
    e = err(call("tag.attach", {"tag": "Nope", "target_id": c["id"]}), "not_found")
    assert e["param"] == "tag" and "tag.create" in e["message"]
    err(call("tag.attach", {"tag": UNKNOWN_TAG, "target_id": c["id"], "create": True}), "not_found")
    assert ok(call("tag.list", {}))["data"] == []


def test_attach_to_missing_deleted_or_foreign_records(
    call: Caller, engine: Engine, account: NewAccount, other: NewAccount
) -> None:
    tag(call, "VIP")
    mine, gone = contact(call), contact(call)
    ok(call("contact.delete", {"id": gone["id"]}))
    theirs = contact(call, key=other.secret)
    their_deal = insert(engine.store, other.account_id, deals)
    cases = [
        ({"target_id": UNKNOWN_CONTACT}, "target_id"),
        ({"target_id": gone["id"]}, "target_id"),
        ({"target_id": theirs["id"]}, "target_id"),
        ({"target_id": "tk_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "target_id"),
        (
            {"targets": [{"target_id": mine["id"]}, {"target_id": their_deal}]},
            "targets.1.target_id",
        ),
    ]
    for target, param in cases:
        e = err(call("tag.attach", {"tag": "VIP", **target}), "not_found")
        assert e["param"] == param
    [t] = ok(call("tag.list", {}))["data"]
    assert t["usage_count"] == 0  # nothing of a failed batch lands
    e = err(
        call("tag.attach", {"tag": "Fresh", "create": True, "target_id": theirs["id"]}), "not_found"
    )
    assert names(call) == ["VIP"]  # nor the tag it would have created


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"target_type": "deal", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "target_type"),
        (
            {"targets": [{"target_type": "note", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}]},
            "targets.0.target_type",
        ),
        ({"target_type": "company", "target_id": "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "target_type"),
        ({"target_id": "ac_01HG7Z4X9Q8M2N7P3R5T6V8W"}, "target_id"),
        ({"target_id": "ct_" + "1" * 200}, "target_id"),
        ({"target_id": 12}, "target_id"),
        ({"targets": []}, "targets"),
        ({"targets": [{"target_id": "ct_1"}] * 101}, "targets"),
        ({"targets": [{"target_id": "ct_1", "extra": 1}]}, "targets.0.extra"),
        ({"target_id": "ct_1", "targets": [{"target_id": "ct_2"}]}, None),
        ({}, None),
        ({"target_id": "ct_1", "tag": ""}, "tag"),
        ({"target_id": "ct_1", "tag": "t" * 101}, "tag"),
        ({"target_id": "ct_1", "create": "yes"}, "create"),
    ],
)
def test_attach_rejects_hostile_shapes(
    call: Caller, args: dict[str, Any], param: str | None
) -> None:
    contact(call)
    e = err(call("tag.attach", {"tag": "VIP", **args}), "invalid_argument")
    assert e["param"] == param


def test_attach_create_validates_the_name(call: Caller) -> None:
    c = contact(call)
    e = err(
        call("tag.attach", {"tag": "bad\nname", "create": True, "target_id": c["id"]}),
        "invalid_argument",
    )
    assert e["param"] == "tag"
    assert ok(call("tag.list", {}))["data"] == []


def test_detach_is_undoable_exactly(call: Caller, engine: Engine, account: NewAccount) -> None:
    c = contact(call)
    t = tag(call, "VIP")
    ok(call("tag.attach", {"tag": t["id"], "target_id": c["id"]}))
    before = data(engine.store, account.account_id)
    out = ok(call("tag.detach", {"tag": "VIP", "target_type": "contact", "target_id": c["id"]}))
    assert out["undo_token"].startswith("undo_") and out["targets"][0]["changed"] is True
    assert out["usage_count"] == 0
    assert ok(call("contact.get", {"id": c["id"]}))["tags"] == []
    again = ok(call("tag.detach", {"tag": t["id"], "target_id": c["id"]}))
    assert again["targets"][0]["changed"] is False
    ok(call("action.undo", {"undo_token": out["undo_token"]}))
    assert data(engine.store, account.account_id) == before
    assert [x["name"] for x in ok(call("contact.get", {"id": c["id"]}))["tags"]] == ["VIP"]


def test_detach_hostile_input(call: Caller, other: NewAccount) -> None:
    c = contact(call)
    theirs_tag = tag(call, "Theirs", key=other.secret)
    theirs = contact(call, key=other.secret)
    tag(call, "Mine")
    assert (
        err(call("tag.detach", {"tag": theirs_tag["id"], "target_id": c["id"]}), "not_found")[
            "param"
        ]
        == "tag"
    )
    assert (
        err(call("tag.detach", {"tag": "Theirs", "target_id": c["id"]}), "not_found")["param"]
        == "tag"
    )
    assert (
        err(call("tag.detach", {"tag": "Mine", "target_id": theirs["id"]}), "not_found")["param"]
        == "target_id"
    )
    err(
        call("tag.detach", {"tag": "Mine", "target_id": c["id"], "create": True}),
        "invalid_argument",
    )


# -- tag.delete ------------------------------------------------------------------------------------


def test_delete_removes_links_and_undo_restores_tag_and_links(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    a, b = contact(call), contact(call)
    t = tag(call, "VIP", color="#00ff00")
    ok(
        call(
            "tag.attach",
            {"tag": t["id"], "targets": [{"target_id": a["id"]}, {"target_id": b["id"]}]},
        )
    )
    before = data(engine.store, account.account_id)
    out = ok(call("tag.delete", {"id": t["id"]}))
    assert out["deleted"] is True and out["links_removed"] == 2
    assert out["undo_token"].startswith("undo_")
    assert link_count(engine.store, t["id"]) == 0
    assert names(call) == []
    assert ok(call("contact.get", {"id": a["id"]}))["tags"] == []
    err(call("contact.list", {"tag": "VIP"}), "not_found")
    err(call("tag.delete", {"id": t["id"]}), "not_found")
    ok(call("action.undo", {"undo_token": out["undo_token"]}))
    assert data(engine.store, account.account_id) == before
    assert {c["id"] for c in ok(call("contact.list", {"tag": "vip"}))["data"]} == {a["id"], b["id"]}


def test_delete_undo_conflicts_when_the_name_was_taken_again(call: Caller) -> None:
    t = tag(call, "VIP")
    out = ok(call("tag.delete", {"id": t["id"]}))
    tag(call, "vip")
    err(call("action.undo", {"undo_token": out["undo_token"]}), "undo_conflict")


def test_delete_hostile_input(call: Caller, other: NewAccount) -> None:
    theirs = tag(call, "Theirs", key=other.secret)
    assert err(call("tag.delete", {"id": theirs["id"]}), "not_found")["param"] == "id"
    err(call("tag.delete", {"id": UNKNOWN_TAG}), "not_found")
    err(call("tag.delete", {"id": "VIP"}), "invalid_argument")
    err(call("tag.delete", {"id": UNKNOWN_TAG, "force": True}), "invalid_argument")


# -- contact.list by tag ---------------------------------------------------------------------------


def test_contact_list_filters_by_tag_name_or_id(call: Caller) -> None:
    a, b, c = contact(call), contact(call), contact(call)
    vip = tag(call, "VIP")
    tag(call, "Empty")
    ok(
        call(
            "tag.attach",
            {"tag": "VIP", "targets": [{"target_id": a["id"]}, {"target_id": c["id"]}]},
        )
    )
    by_name = ok(call("contact.list", {"tag": "vip"}))["data"]
    assert [x["id"] for x in by_name] == [c["id"], a["id"]]
    assert by_name[0]["tags"] == [{"id": vip["id"], "name": "VIP", "color": None}]
    assert [x["id"] for x in ok(call("contact.list", {"tag": vip["id"]}))["data"]] == [
        c["id"],
        a["id"],
    ]
    assert ok(call("contact.list", {"tag": "Empty"}))["data"] == []
    assert b["id"] in [x["id"] for x in ok(call("contact.list", {}))["data"]]
    page = ok(call("contact.list", {"tag": "VIP", "limit": 1}))
    assert page["has_more"] and page["data"][0]["id"] == c["id"]


def test_contact_list_unknown_tag_is_not_found(call: Caller, other: NewAccount) -> None:
    theirs = tag(call, "Theirs", key=other.secret)
    for ref in ("Nope", UNKNOWN_TAG, theirs["id"], "Theirs"):
        e = err(call("contact.list", {"tag": ref}), "not_found")
        assert e["param"] == "tag"
    err(call("contact.list", {"tag": ""}), "invalid_argument")
    err(call("contact.list", {"tag": "x" * 101}), "invalid_argument")


# -- over HTTP -------------------------------------------------------------------------------------


def test_tags_over_http(http: Any) -> None:
    c = http.post("/v1/contact.create", json={"display_name": "Web"}).json()
    made = http.post("/v1/tag.create", json={"name": "Web Lead", "color": "#ABCDEF"})
    assert made.status_code == 200 and made.json()["color"] == "#abcdef"
    clash = http.post("/v1/tag.create", json={"name": "web  lead"})
    assert clash.status_code == 409
    assert clash.json()["error"]["param"] == "name"
    assert clash.json()["error"]["op"] == "tag.create"
    missing = http.post("/v1/tag.attach", json={"tag": "Web Lead", "target_id": UNKNOWN_CONTACT})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "target_id"
    attached = http.post("/v1/tag.attach", json={"tag": "web lead", "target_id": c["id"]})
    assert attached.status_code == 200 and attached.json()["usage_count"] == 1
    listed = http.post("/v1/contact.list", json={"tag": "WEB LEAD"}).json()
    assert [x["id"] for x in listed["data"]] == [c["id"]]
